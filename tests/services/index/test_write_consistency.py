"""The two-store write under real Redis faults: a transaction Redis runs after we gave up on
it, digests that find replaced points at start-up, and points stored before digests existed.
The engine runs in-process over embedded Qdrant on disk and a real redis-server."""

import hashlib
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
from services.index.stores.lsh_write import UPSERT
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


UPSERT_SHA = hashlib.sha1(UPSERT.encode()).hexdigest()


class StallingRedis(redis.Redis):
    """A client whose next write (a transaction, or the LSH store's upsert script) meets a Redis
    that stalls for `stall_s` just before it arrives: the only thing arranged is when the real
    stall starts."""

    stall_s = 0.0
    let_through = 0  # writes that pass before the stall
    stall: threading.Thread | None = None

    def _stall_now(self) -> bool:
        if not self.stall_s:
            return False
        if self.let_through:
            self.let_through -= 1
            return False
        seconds, self.stall_s = self.stall_s, 0.0
        settings = {**self.connection_pool.connection_kwargs, "socket_timeout": None}
        admin = redis.Redis(connection_pool=redis.ConnectionPool(**settings))
        self.stall = threading.Thread(target=admin.eval, args=(SPIN, 0, int(seconds * 1e6)))
        self.stall.start()
        time.sleep(0.1)  # the script is running: Redis answers no one until it ends
        return True

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
        pipe = super().pipeline(transaction, shard_hint)
        if transaction:
            execute = pipe.execute

            def stalled_execute(raise_on_error: bool = True) -> Any:
                self._stall_now()
                return execute(raise_on_error)

            pipe.execute = stalled_execute  # type: ignore[method-assign]
        return pipe

    def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Any:
        if sha == UPSERT_SHA:  # the LSH store's writes; not the lease's scripts
            self._stall_now()
        return super().evalsha(sha, numkeys, *keys_and_args)


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

    def opener(client: redis.Redis | None = None, shards: int = 0, **options: Any) -> IndexEngine:
        client = client or redis.Redis.from_url(redis_server.url)
        lsh = RedisLshStore(client, LshParams(), shards=shards)
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
    # An id in p3's shard, so both go in the one transaction that meets the stall.
    new = next(
        f"new{i}"
        for i in range(1000)
        if RedisLshStore.shard_of(f"new{i}", 1) == RedisLshStore.shard_of("p3", 1)
    )
    client.stall_s = 1.0
    with pytest.raises(Unavailable):  # the transaction times out in the stall ...
        engine.upsert("c", [("p3", vec(103), {}), (new, vec(101), {})])
    assert [p.id for p in engine.get_vectors("c", ["p3", new])] == ["p3"]  # Qdrant undone
    assert engine.in_doubt() == 2
    assert client.stall is not None
    client.stall.join()
    raw = redis.Redis.from_url(redis_server.url)
    # ... and Redis runs it once the stall ends: the old bug's ghost, for now.
    assert raw.hexists(RedisLshStore(raw, LshParams()).point_key("c", new, "vec"), new)
    assert lsh_ids(engine, 101)[0] == new
    deadline = time.monotonic() + 10
    while engine.in_doubt() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert engine.in_doubt() == 0  # the repairer settled it, with no write and no restart
    audit = engine.verify("c")
    assert (audit.consistent, audit.points, audit.lsh_points) == (True, 20, 20)
    assert new not in lsh_ids(engine, 101)
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
    raw = redis.Redis.from_url(redis_server.url)
    assert not raw.hexists(RedisLshStore(raw, LshParams()).point_key("c", "p4", "vec"), "p4")  # ran late
    engine.upsert("c", [("other", vec(200), {})])
    assert engine.in_doubt() == 0
    audit = engine.verify("c")
    assert (audit.consistent, audit.points, audit.lsh_points) == (True, 21, 21)
    assert lsh_ids(engine, 4)[0] == "p4"


def test_a_write_over_several_shards_that_fails_in_one_is_undone_in_all(
    open_engine: Open, redis_server: EmbeddedRedis
) -> None:
    """One batch is one transaction per shard: the first shards' land, a later one fails. The
    write is refused, Qdrant undone, and the repair takes the landed shards back out."""
    client = stalling(redis_server)
    engine = open_engine(client, shards=16, repair_interval_s=3600)  # the next write repairs
    fill(engine, 20)
    batch: list[tuple[str, Any, dict[str, Any]]] = [(f"wide{i}", vec(300 + i), {}) for i in range(40)]
    assert len({RedisLshStore.shard_of(point_id, 16) for point_id, _, _ in batch}) > 8
    client.stall_s, client.let_through = 1.0, 3
    with pytest.raises(Unavailable):
        engine.upsert("c", batch)
    assert engine.get_vectors("c", [point_id for point_id, _, _ in batch]) == []  # Qdrant undone
    assert client.stall is not None
    client.stall.join()
    landed = engine.info("c").lsh_points - 20
    assert landed > 0  # the shards before the failing one (and maybe it, late) hold ghosts
    engine.upsert("c", [("after", vec(999), {})])  # settles the ids in doubt first
    audit = engine.verify("c")
    assert (audit.consistent, audit.points, audit.lsh_points) == (True, 21, 21)
    assert not set(lsh_ids(engine, 300)) & {point_id for point_id, _, _ in batch}


def test_a_fence_aborts_a_write_that_read_before_it(redis_server: EmbeddedRedis) -> None:
    """What makes a late transaction harmless: one that read the epoch before a fence never lands."""
    client = redis.Redis.from_url(redis_server.url)
    store = RedisLshStore(client, LshParams())
    store.ensure_collection("c", DIM)
    other = RedisLshStore(redis.Redis.from_url(redis_server.url), LshParams())  # another connection

    vec_key = store.point_key("c", "late", "vec")

    def build_after_a_fence(pipe: Any, old: list[np.ndarray | None]) -> None:
        other.fence("c")  # between the transaction's read and its EXEC
        pipe.hset(vec_key, "late", b"x")

    with pytest.raises(redis.exceptions.WatchError):
        store._transact("c", store.shard_of("late", 1), ["late"], build_after_a_fence)
    assert not client.hexists(vec_key, "late")
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
        raw.hdel(stale.point_key("c", f"p{i}", "dig"), f"p{i}")
    assert engine.search("c", vec(5), 30, IndexKind.EXACT, Filter.of({"group": 2}), False).hits[0].id != "p5"
    engine.close()

    engine = open_engine()  # start-up reconciles by digest
    audit = engine.verify("c")
    assert (audit.consistent, audit.undigested, audit.points, audit.lsh_points) == (True, 0, 30, 30)
    assert lsh_ids(engine, 2)[0] == "p2" and lsh_ids(engine, 900)[0] != "p2"
    # Backfilled: the old points now filter like every other (typed match keywords) on each index.
    for kind in (IndexKind.EXACT, IndexKind.HNSW, IndexKind.LSH):
        assert engine.search("c", vec(5), 1, kind, Filter.of({"group": 2}), False).hits[0].id == "p5"


def test_an_lsh_store_in_the_layout_before_shards_is_rebuilt_at_start_up(
    open_engine: Open, redis_server: EmbeddedRedis
) -> None:
    engine = open_engine()
    fill(engine, 30)
    engine.close()
    raw = redis.Redis.from_url(redis_server.url)
    raw.flushdb()
    # What the layout before shards left (`<prefix>:<collection>:...`), now unreadable.
    raw.hset("imsearch:lsh:c:config", mapping={"dim": DIM, "tables": 64, "bits": 13, "seed": 0})
    raw.hset("imsearch:lsh:c:vec", "p1", b"\0" * 2 * DIM)
    raw.sadd("imsearch:lsh:c:b:0:17", "p1")
    engine = open_engine()  # start-up: the old keys go, the collection is rewritten from Qdrant
    assert raw.keys("imsearch:lsh:c:*") == []
    audit = engine.verify("c")
    assert (audit.consistent, audit.points, audit.lsh_points) == (True, 30, 30)
    assert lsh_ids(engine, 7)[0] == "p7"
