"""The two-store write under real Redis faults: a transaction Redis runs after we gave up on
it, digests that find replaced points at start-up, and points stored before digests existed.
The engine runs in-process over embedded Qdrant on disk and a real redis-server."""

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import qdrant_edge as qe
import redis

from devtools.embedded_redis import EmbeddedRedis
from imsearch.core.errors import Unavailable
from imsearch.core.filters import Filter
from imsearch.core.index_kind import IndexKind
from imsearch.core.metrics import ServiceMetrics
from services.index.engine import IndexEngine
from services.index.stores.base import StoredPoint
from services.index.stores.qdrant_edge import QdrantEdgeStore
from services.index.stores.qdrant_payload import ID_KEY, METADATA_KEY, point_uuid
from services.index.stores.redis_lsh import LshParams, RedisLshStore

DIM = 16
# Holds the Redis event loop for ARGV[1] microseconds: a real stall, as a slow disk or a long
# command would cause (DEBUG SLEEP is disabled in Redis 7 by default).
SPIN = (
    "local t0 = redis.call('TIME') repeat local t = redis.call('TIME') "
    "until (t[1] - t0[1]) * 1000000 + (t[2] - t0[2]) > tonumber(ARGV[1]) return 1"
)


class StallingRedis(redis.Redis):
    """A client whose next transaction meets a Redis that stalls for `stall_s` just before it
    arrives: the only thing arranged is when the real stall starts."""

    stall_s = 0.0
    stall: threading.Thread | None = None

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
        pipe = super().pipeline(transaction, shard_hint)
        if transaction and self.stall_s:
            seconds, self.stall_s = self.stall_s, 0.0
            execute = pipe.execute

            def stalled_execute(raise_on_error: bool = True) -> Any:
                settings = {**self.connection_pool.connection_kwargs, "socket_timeout": None}
                admin = redis.Redis(connection_pool=redis.ConnectionPool(**settings))
                self.stall = threading.Thread(target=admin.eval, args=(SPIN, 0, int(seconds * 1e6)))
                self.stall.start()
                time.sleep(0.1)  # the script is running: Redis answers no one until it ends
                return execute(raise_on_error)

            pipe.execute = stalled_execute  # type: ignore[method-assign]
        return pipe


def stalling(server: EmbeddedRedis) -> StallingRedis:
    return StallingRedis(connection_pool=redis.ConnectionPool.from_url(server.url, socket_timeout=0.3))


def vec(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path / "redis")
    yield server
    server.stop()


Open = Callable[..., IndexEngine]


@pytest.fixture
def open_engine(tmp_path: Path, redis_server: EmbeddedRedis) -> Iterator[Open]:
    engines: list[IndexEngine] = []

    def opener(client: redis.Redis | None = None, **options: Any) -> IndexEngine:
        client = client or redis.Redis.from_url(redis_server.url)
        lsh = RedisLshStore(client, LshParams())
        engine = IndexEngine(QdrantEdgeStore(tmp_path / "qdrant"), lsh, ServiceMetrics("index"), **options)
        engines.append(engine)
        return engine

    yield opener
    for engine in engines:
        engine.close()


def fill(engine: IndexEngine, n: int) -> None:
    engine.ensure_collection("c", DIM)
    engine.upsert("c", [(f"p{i}", vec(i), {"group": i % 3}) for i in range(n)])


def lsh_ids(engine: IndexEngine, seed: int) -> list[str]:
    return [h.id for h in engine.search("c", vec(seed), 3, IndexKind.LSH, None, False).hits]


def test_a_write_redis_runs_after_we_gave_up_on_it_is_settled_without_a_restart(
    open_engine: Open, redis_server: EmbeddedRedis
) -> None:
    client = stalling(redis_server)
    engine = open_engine(client, repair_interval_s=2.0)
    fill(engine, 20)
    client.stall_s = 1.0
    with pytest.raises(Unavailable):  # the transaction times out in the stall ...
        engine.upsert("c", [("p3", vec(103), {}), ("new", vec(101), {})])
    assert [p.id for p in engine.get_vectors("c", ["p3", "new"])] == ["p3"]  # Qdrant undone
    assert engine.in_doubt() == 2
    assert client.stall is not None
    client.stall.join()
    raw = redis.Redis.from_url(redis_server.url)
    # ... and Redis runs it once the stall ends: the old bug's ghost, for now.
    assert raw.hexists("imsearch:lsh:c:vec", "new")
    assert lsh_ids(engine, 101)[0] == "new"
    deadline = time.monotonic() + 10
    while engine.in_doubt() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert engine.in_doubt() == 0  # the repairer settled it, with no write and no restart
    audit = engine.verify("c")
    assert (audit.consistent, audit.points, audit.lsh_points) == (True, 20, 20)
    assert "new" not in lsh_ids(engine, 101)
    assert lsh_ids(engine, 3)[0] == "p3"  # the old vector is back in both stores


def test_a_failed_write_in_doubt_is_settled_before_the_next_write(
    open_engine: Open, redis_server: EmbeddedRedis
) -> None:
    client = stalling(redis_server)
    engine = open_engine(client, repair_interval_s=3600)  # no background repair: the write does it
    fill(engine, 20)
    client.stall_s = 1.0
    with pytest.raises(Unavailable):
        engine.delete("c", ["p4"])
    assert client.stall is not None
    client.stall.join()
    time.sleep(0.1)
    assert not redis.Redis.from_url(redis_server.url).hexists("imsearch:lsh:c:vec", "p4")  # ran late
    engine.upsert("c", [("other", vec(200), {})])
    assert engine.in_doubt() == 0
    audit = engine.verify("c")
    assert (audit.consistent, audit.points, audit.lsh_points) == (True, 21, 21)
    assert lsh_ids(engine, 4)[0] == "p4"


def test_a_fence_aborts_a_write_that_read_before_it(redis_server: EmbeddedRedis) -> None:
    """What makes a late transaction harmless: one that read the epoch before a fence never lands."""
    client = redis.Redis.from_url(redis_server.url)
    store = RedisLshStore(client, LshParams())
    store.ensure_collection("c", DIM)
    other = RedisLshStore(redis.Redis.from_url(redis_server.url), LshParams())  # another connection

    def build_after_a_fence(pipe: Any, old: list[np.ndarray | None]) -> None:
        other.fence("c")  # between the transaction's read and its EXEC
        pipe.hset("imsearch:lsh:c:vec", "late", b"x")

    with pytest.raises(redis.exceptions.WatchError):
        store._transact("c", ["late"], build_after_a_fence)
    assert not client.hexists("imsearch:lsh:c:vec", "late")
    store.upsert("c", [StoredPoint("b", vec(3) / np.linalg.norm(vec(3)))])  # later writes land
    assert [i for batch in store.iter_ids("c") for i in batch] == ["b"]


def test_start_up_finds_replaced_points_by_digest_and_backfills_old_points(
    open_engine: Open, redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    engine = open_engine()
    fill(engine, 30)
    raw = redis.Redis.from_url(redis_server.url)
    # A replaced id whose LSH copy kept the old vector (a lost second half of a write).
    stale = RedisLshStore(raw, LshParams())
    stale.upsert("c", [StoredPoint("p2", vec(900) / np.linalg.norm(vec(900)), {"group": 2})])
    # Points written before digests (and typed match keywords) existed, in both stores.
    shard = engine._vectors._shard("c")  # type: ignore[attr-defined]
    for i in (5, 6):
        unit = vec(i) / np.linalg.norm(vec(i))
        shard.update(
            qe.UpdateOperation.upsert_points(
                [
                    qe.Point(
                        point_uuid(f"p{i}"), unit.tolist(), {ID_KEY: f"p{i}", METADATA_KEY: {"group": i % 3}}
                    )
                ]
            )
        )
        raw.hdel("imsearch:lsh:c:dig", f"p{i}")
    assert engine.search("c", vec(5), 30, IndexKind.EXACT, Filter.of({"group": 2}), False).hits[0].id != "p5"
    engine.close()

    engine = open_engine()  # start-up reconciles by digest
    audit = engine.verify("c")
    assert (audit.consistent, audit.undigested, audit.points, audit.lsh_points) == (True, 0, 30, 30)
    assert lsh_ids(engine, 2)[0] == "p2" and lsh_ids(engine, 900)[0] != "p2"
    # Backfilled: the old points now filter like every other (typed match keywords) on each index.
    for kind in (IndexKind.EXACT, IndexKind.HNSW, IndexKind.LSH):
        assert engine.search("c", vec(5), 1, kind, Filter.of({"group": 2}), False).hits[0].id == "p5"
