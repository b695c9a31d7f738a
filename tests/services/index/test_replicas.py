"""Several index replicas over one Redis (single and Cluster): shared, versioned LSH config, a
write lease with fencing tokens, and the stores consistent after concurrent writers.

The replicas that write one collection together are two engines with their own Redis clients,
caches, locks and leases over one vector store: in production that store is a Qdrant server,
which cannot run on this machine, and an embedded shard opens in one process only (tested
below). The lease itself is tested across real processes, one of them stopped by SIGSTOP past
its lease's time to live.
"""

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import redis

from devtools.embedded_redis import EmbeddedRedis
from devtools.redis_cluster import EmbeddedRedisCluster
from imsearch.core.errors import Unavailable
from imsearch.core.index_kind import IndexKind
from imsearch.core.metrics import ServiceMetrics
from services.index.engine import IndexEngine
from services.index.lease import CollectionLeases
from services.index.stores.base import StoredPoint
from services.index.stores.qdrant_edge import QdrantEdgeStore
from services.index.stores.redis_lsh import LshParams, RedisClient, RedisLshStore

DIM = 64
SIZE = 3000  # past the LSH centre threshold (1,000) and the HNSW build (optimize_min_points)
ROOT = Path(__file__).resolve().parents[3]


def embeddings(n: int, seed: int) -> np.ndarray:
    """Clustered, non-negative vectors, like ReLU features: planes through the origin split
    them badly, so a point hashed without the centre lands in buckets no query probes."""
    rng = np.random.default_rng(seed)
    centres = np.abs(rng.standard_normal((40, DIM)))
    return np.abs(centres[rng.integers(0, 40, n)] + 0.35 * rng.standard_normal((n, DIM))).astype(np.float32)


Connect = Callable[[], RedisClient]


@pytest.fixture(params=["single", "cluster"])
def connect(request: pytest.FixtureRequest) -> Iterator[Connect]:
    """A new client of one shared Redis (or Redis Cluster) per call: one per replica."""
    clients: list[RedisClient] = []
    if request.param == "single":
        server: EmbeddedRedis = request.getfixturevalue("redis_server")
        redis.Redis.from_url(server.url).flushdb()

        def new() -> RedisClient:
            clients.append(redis.Redis.from_url(server.url))
            return clients[-1]
    else:
        cluster: EmbeddedRedisCluster = request.getfixturevalue("redis_cluster")
        cluster.flush()

        def new() -> RedisClient:
            clients.append(cluster.client())
            return clients[-1]

    yield new
    for client in clients:
        client.close()


@pytest.fixture
def replicas(tmp_path: Path, connect: Connect) -> Iterator[tuple[IndexEngine, IndexEngine]]:
    store = QdrantEdgeStore(tmp_path / "qdrant")
    engines = tuple(
        IndexEngine(store, RedisLshStore(connect(), LshParams()), ServiceMetrics("index")) for _ in range(2)
    )
    yield engines[0], engines[1]
    for engine in engines:
        engine.close()


def lsh_recall(engine: IndexEngine, collection: str, queries: np.ndarray) -> float:
    found = 0
    for query in queries:
        exact = {h.id for h in engine.search(collection, query, 10, IndexKind.EXACT, None, False).hits}
        lsh = {h.id for h in engine.search(collection, query, 10, IndexKind.LSH, None, False).hits}
        found += len(exact & lsh)
    return found / (10 * len(queries))


def upsert(engine: IndexEngine, collection: str, vectors: np.ndarray, ids: range, batch: int = 500) -> None:
    for start in range(ids.start, ids.stop, batch):
        chunk = range(start, min(start + batch, ids.stop))
        engine.upsert(collection, [(f"p{i}", vectors[i], {"i": i}) for i in chunk])


def test_a_replica_that_cached_the_config_before_the_centre_hashes_with_the_centre(
    replicas: tuple[IndexEngine, IndexEngine],
) -> None:
    first, second = replicas
    vectors = embeddings(SIZE, seed=1)
    first.ensure_collection("c", DIM)
    # The second replica learns of the collection and caches its LSH config: no centre yet.
    assert second.search("c", vectors[0], 5, IndexKind.LSH, None, False).hits == []
    upsert(first, "c", vectors, range(0, SIZE // 2))  # fixes the centre at 1,000 points
    upsert(second, "c", vectors, range(SIZE // 2, SIZE))

    # Every point of the second replica sits in the buckets the centre gives it.
    reference = RedisLshStore(second._lsh.client, LshParams())
    ids = [f"p{i}" for i in range(SIZE // 2, SIZE)]
    stored = reference.stored("c", ids)
    unit = vectors[SIZE // 2 :] / np.linalg.norm(vectors[SIZE // 2 :], axis=1, keepdims=True)
    expected = reference.signatures("c", unit)
    client = second._lsh.client
    for k, point_id in enumerate(ids[:200]):
        raw = client.hget(reference.point_key("c", point_id, "sig"), point_id)
        assert raw is not None and np.array_equal(np.frombuffer(raw, dtype=np.uint32), expected[k])
    assert len(stored) == len(ids)

    # Recall is what one writer gets for the same points.
    first.ensure_collection("solo", DIM)
    upsert(first, "solo", vectors, range(0, SIZE))
    queries = vectors[SIZE // 2 :: 30] + 0.05
    shared, alone = lsh_recall(second, "c", queries), lsh_recall(first, "solo", queries)
    assert shared >= alone - 0.02 and shared >= 0.8, (shared, alone)
    audit = first.verify("c")
    assert audit.consistent and audit.points == audit.lsh_points == SIZE


def test_concurrent_writers_and_searchers_leave_the_stores_consistent(
    replicas: tuple[IndexEngine, IndexEngine],
) -> None:
    first, second = replicas
    base = embeddings(SIZE, seed=2)
    first.ensure_collection("c", DIM)
    upsert(first, "c", base, range(0, 1200))  # centred, bucketed
    errors: list[BaseException] = []
    stop = threading.Event()

    def writer(engine: IndexEngine, seed: int) -> None:
        rng = np.random.default_rng(seed)
        try:
            for _ in range(12):  # the same 300 ids from both replicas, different vectors
                ids = rng.choice(300, 40, replace=False)
                engine.upsert("c", [(f"p{i}", base[1200 + seed * 300 + i], {"by": seed}) for i in ids])
                engine.delete("c", [f"p{i}" for i in rng.choice(300, 3, replace=False)])
        except BaseException as exc:
            errors.append(exc)

    def searcher(engine: IndexEngine) -> None:
        try:
            while not stop.is_set():
                for kind in (IndexKind.LSH, IndexKind.HNSW):
                    engine.search("c", base[7], 10, kind, None, False)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(e, s)) for s, e in enumerate(replicas)]
    searchers = [threading.Thread(target=searcher, args=(e,)) for e in replicas]
    for thread in threads + searchers:
        thread.start()
    for thread in threads:
        thread.join()
    stop.set()
    for thread in searchers:
        thread.join()
    assert errors == []
    for engine in replicas:
        audit = engine.verify("c")  # digests and content, point by point
        assert audit.consistent and audit.points == audit.lsh_points, audit
    queries = base[:1200:40] + 0.05
    assert lsh_recall(second, "c", queries) >= 0.8


def test_a_collection_made_or_dropped_by_another_replica_is_seen(
    replicas: tuple[IndexEngine, IndexEngine],
) -> None:
    first, second = replicas
    first.ensure_collection("c", DIM)
    first.upsert("c", [("a", np.ones(DIM), {})])
    assert second.search("c", np.ones(DIM), 1, IndexKind.LSH, None, False).hits[0].id == "a"
    assert "c" in second.list_collections()
    first.drop_collection("c")
    first.ensure_collection("c", 8)  # the same name, another dimension and config
    second.upsert("c", [("b", np.ones(8), {})])
    assert second.search("c", np.ones(8), 1, IndexKind.LSH, None, False).hits[0].id == "b"
    assert first.verify("c").consistent


def test_an_embedded_shard_directory_opens_in_one_process_only(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_SHARDS, str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        with pytest.raises(RuntimeError, match="in use by another index process"):
            QdrantEdgeStore(tmp_path)
    finally:
        holder.kill()
        holder.wait()
    QdrantEdgeStore(tmp_path).close()  # free again once the holder is gone


HOLD_SHARDS = """
import sys, time
from pathlib import Path
from services.index.stores.qdrant_edge import QdrantEdgeStore
store = QdrantEdgeStore(Path(sys.argv[1]))
print("open", flush=True)
time.sleep(60)
"""

# Counts to N under the lease with a read, a pause and a write: without mutual exclusion
# between the processes, increments are lost.
COUNT_UNDER_LEASE = """
import sys, time
import redis
from services.index.lease import CollectionLeases
from services.index.stores.redis_lsh import LshParams, RedisLshStore
client = redis.Redis.from_url(sys.argv[1])
store = RedisLshStore(client, LshParams())
leases = CollectionLeases(client, store.collection_key, ttl_s=5, wait_s=30)
for _ in range(int(sys.argv[2])):
    with leases.hold("c"):
        value = int(client.get("counter") or 0)
        time.sleep(0.001)
        client.set("counter", value + 1)
leases.close()
"""


def test_the_lease_excludes_writers_in_other_processes(redis_server: EmbeddedRedis) -> None:
    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    workers = [
        subprocess.Popen([sys.executable, "-c", COUNT_UNDER_LEASE, redis_server.url, "150"], cwd=ROOT)
        for _ in range(2)
    ]
    assert [w.wait(timeout=120) for w in workers] == [0, 0]
    assert int(client.get("counter") or 0) == 300


# Takes the lease (time to live 0.3 s), says so, waits for a line, then writes a point under it.
WRITE_LATE = """
import sys
import numpy as np
import redis
from services.index.lease import CollectionLeases
from services.index.stores.base import StoredPoint
from services.index.stores.redis_lsh import FencedOut, LshParams, RedisLshStore
client = redis.Redis.from_url(sys.argv[1])
store = RedisLshStore(client, LshParams())
leases = CollectionLeases(client, store.collection_key, ttl_s=0.3)
with leases.hold("c") as grant, store.fenced("c", grant.token):
    print("held", flush=True)
    sys.stdin.readline()
    try:
        store.upsert("c", [StoredPoint("late", np.ones(4, dtype=np.float32), {})])
        print("wrote", flush=True)
    except FencedOut:
        print("fenced", flush=True)
"""


def test_a_writer_stopped_past_its_lease_is_fenced_out(redis_server: EmbeddedRedis) -> None:
    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    store = RedisLshStore(client, LshParams())
    store.ensure_collection("c", 4)
    stalled = subprocess.Popen(
        [sys.executable, "-c", WRITE_LATE, redis_server.url],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert stalled.stdin is not None and stalled.stdout is not None
    try:
        assert stalled.stdout.readline().strip() == "held"
        os.kill(stalled.pid, signal.SIGSTOP)  # a real stall: its lease runs out meanwhile
        time.sleep(0.6)
        leases = CollectionLeases(client, store.collection_key, wait_s=5)
        with leases.hold("c") as grant, store.fenced("c", grant.token):
            store.upsert("c", [StoredPoint("fresh", np.ones(4, dtype=np.float32), {})])
        leases.close()
        os.kill(stalled.pid, signal.SIGCONT)
        stalled.stdin.write("\n")
        stalled.stdin.flush()
        assert stalled.stdout.readline().strip() == "fenced"
    finally:
        os.kill(stalled.pid, signal.SIGCONT)
        stalled.kill()
        stalled.wait()
    assert set(store.stored("c", ["late", "fresh"])) == {"fresh"}


def test_a_busy_lease_answers_unavailable(redis_server: EmbeddedRedis) -> None:
    client = redis.Redis.from_url(redis_server.url)
    store = RedisLshStore(client, LshParams())
    holder = CollectionLeases(client, store.collection_key)
    waiter = CollectionLeases(client, store.collection_key, wait_s=0.2)
    with (
        holder.hold("c") as first,
        pytest.raises(Unavailable, match="another index replica"),
        waiter.hold("c"),
    ):
        pass
    with waiter.hold("c") as second:
        assert second.token > first.token
    holder.close()
    waiter.close()
