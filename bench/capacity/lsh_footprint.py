"""Redis LSH: bytes per point, recall and QPS (the redis-server's CPU counted), the scale model."""

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import redis

from bench.capacity.pinning import pinned, two_cores
from bench.capacity.rates import RUNS, Rate
from bench.capacity.search_figures import SearchFigures
from bench.capacity.vector_set import K, Vectors, point_id, recall
from bench.process_cpu import cpu_seconds
from devtools.embedded_redis import EmbeddedRedis
from services.index.stores.base import StoredPoint
from services.index.stores.redis_lsh import LshParams, RedisLshStore

LSH_QPS_QUERIES = 200  # LSH is ~100x slower than HNSW: fewer queries keep its runs short
PROBE_IDS = 5000  # ids in the big set that prices an id in a bucket set at catalog scale
COLLECTION, HALF_COLLECTION = "capacity", "capacity_half"


@dataclass
class LshFigures:
    redis_version: str
    bytes_per_point: float  # used_memory after - before, over the points
    hash_bytes_per_point: float  # the per-point hashes (vector, signature, metadata, digest)
    bucket_keys: int
    member_bytes: float  # one id in a big bucket set (as at catalog scale)
    key_bytes: float  # a bucket key's own cost: what the ids and hashes leave of used_memory
    load_s: float
    search: SearchFigures
    size: int
    params: LshParams

    def scale_bytes_per_point(self, points: int, shards: int) -> float:
        """At `points`: every bucket key of every shard exists, each holding many ids."""
        keys = self.params.tables * (1 << self.params.bits) * shards
        return (
            self.hash_bytes_per_point
            + self.params.tables * self.member_bytes
            + keys * self.key_bytes / points
        )

    def query_seconds(self, points: int) -> tuple[float, float]:
        """(seconds per query at `points`, the fixed part) from the two measured sizes:
        t = fixed + slope x N. A fixed share of the collection is in the probed buckets, so the
        slope is their ranking and fetching. If noise hides the slope, all of it is taken as
        growing with N (the pessimistic reading)."""
        t_half, t_full = 1.0 / self.search.qps_half, 1.0 / self.search.qps
        slope = (t_full - t_half) / (self.size - self.size // 2)
        if slope <= 0:
            return t_full * points / self.size, 0.0
        fixed = max(t_full - slope * self.size, 0.0)
        return fixed + slope * points, fixed


def memory_usage(client: redis.Redis, keys: Sequence[str]) -> int:
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.memory_usage(key, samples=0)  # samples=0: every element counted
    return sum(int(v or 0) for v in pipe.execute())


def member_cost(client: redis.Redis) -> float:
    """Bytes per id in one big set of the same ids (Redis' encoding for big sets)."""
    key = "capacity:probe"
    for start in range(0, PROBE_IDS, 1000):
        client.sadd(key, *[point_id(i) for i in range(start, min(start + 1000, PROBE_IDS))])
    cost = memory_usage(client, [key]) / PROBE_IDS
    client.delete(key)
    return cost


def load_lsh(store: RedisLshStore, collection: str, gallery: np.ndarray) -> float:
    """Seconds to upsert the gallery, 1,000 points a call (as bench.ann does)."""
    store.ensure_collection(collection, gallery.shape[1])
    began = time.perf_counter()
    for first in range(0, len(gallery), 1000):
        batch = range(first, min(first + 1000, len(gallery)))
        store.upsert(collection, [StoredPoint(point_id(i), gallery[i]) for i in batch])
    return time.perf_counter() - began


def searches(store: RedisLshStore, collection: str, queries: np.ndarray) -> Callable[[], object]:
    return lambda: [store.search(collection, q, K, None) for q in queries]


def lsh_qps(store: RedisLshStore, queries: np.ndarray, server_pid: int) -> dict[str, Rate]:
    """Each collection's rates, counting the redis-server's CPU too. The runs are interleaved
    so machine noise hits both alike; the client and the server each get a core (sharing one,
    every round trip would wait for a context switch)."""
    subset = queries[:LSH_QPS_QUERIES]
    rates = {HALF_COLLECTION: Rate(), COLLECTION: Rate()}
    client_core, server_core = two_cores()
    with pinned(client_core), pinned(server_core, server_pid):
        for _ in range(RUNS):
            for collection, rate in rates.items():
                rate.time(len(subset), searches(store, collection, subset), lambda: cpu_seconds(server_pid))
    return rates


def lsh_recall(store: RedisLshStore, collection: str, vectors: Vectors) -> tuple[float, float]:
    """(recall@K, mean fraction of the collection in the probed buckets)."""
    results = [store.search(collection, q, K, None) for q in vectors.queries]
    found = [[int(h.id[3:]) for h in r.hits] for r in results]
    in_buckets = float(np.mean([r.candidates for r in results])) / len(vectors.gallery)
    return recall(found, vectors.truth()), in_buckets


def lsh_memory(
    client: redis.Redis, store: RedisLshStore, used: int, size: int
) -> tuple[int, float, int, float]:
    """(the per-point hashes' bytes, bytes per id in a big set, bucket keys, a key's own bytes)."""
    hashes = [store.point_key(COLLECTION, point_id(0), f) for f in ("vec", "sig", "meta", "dig")]
    hash_bytes = memory_usage(client, hashes)
    per_member = member_cost(client)
    bucket_keys = sum(1 for _ in client.scan_iter(match=f"*{{{COLLECTION}.s*}}:b:*", count=5000))
    # Every point sits in one bucket per table; what its ids do not explain is the keys' own.
    key_bytes = (used - hash_bytes - size * LshParams().tables * per_member) / bucket_keys
    return hash_bytes, per_member, bucket_keys, key_bytes


def measure_lsh(root: Path, vectors: Vectors) -> LshFigures:
    """Two collections in one fresh redis-server: half the vectors, then all of them (whose
    memory is measured)."""
    server = EmbeddedRedis(root / "redis")
    try:
        client = redis.Redis.from_url(server.url)
        store = RedisLshStore(client, LshParams())
        size = len(vectors.gallery)
        load_lsh(store, HALF_COLLECTION, vectors.half().gallery)
        before = int(client.info("memory")["used_memory"])
        load_s = load_lsh(store, COLLECTION, vectors.gallery)
        used = int(client.info("memory")["used_memory"]) - before
        hash_bytes, per_member, bucket_keys, key_bytes = lsh_memory(client, store, used, size)
        recall_half, _ = lsh_recall(store, HALF_COLLECTION, vectors.half())
        recall_full, in_buckets = lsh_recall(store, COLLECTION, vectors)
        rates = lsh_qps(store, vectors.queries, server.pid)
        search = SearchFigures(
            "LSH (CPU of the client and the redis-server)",
            recall_half,
            recall_full,
            rates[HALF_COLLECTION],
            rates[COLLECTION],
            in_buckets,
        )
        version = str(client.info("server")["redis_version"])
        return LshFigures(
            version,
            used / size,
            hash_bytes / size,
            bucket_keys,
            per_member,
            key_bytes,
            load_s,
            search,
            size,
            LshParams(),
        )
    finally:
        server.stop()
