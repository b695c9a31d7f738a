"""Write throughput of the index's stores, side by side: the Qdrant edge shard alone, our LSH
store alone, and IndexEngine.upsert (both, with its undo read), on random unit vectors.

    python -m bench.ingest [--points 4000] [--dim 1280] [--batch 500] [--rounds 3]

Each round loads a fresh collection into each of the three in turn (the machine is shared and
noisy, so they alternate); printed: the median vectors/s of each and the median of the
rounds' ratios to Qdrant alone (issue 14's goal for the engine: >= 0.8x). The LSH store's
collection is past its full-scan threshold, so its buckets are written, not only its vectors.
No HNSW graph is built during the load, by Qdrant alone or by the engine.
"""

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import redis

from devtools.embedded_redis import EmbeddedRedis
from imsearch.core.metrics import ServiceMetrics
from services.index.engine import IndexEngine
from services.index.stores.base import CollectionSpec, StoredPoint
from services.index.stores.qdrant_edge import QdrantEdgeStore
from services.index.stores.redis_lsh import LshParams, RedisLshStore


def unit_vectors(count: int, dim: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((count, dim)).astype(np.float32)
    normalized: np.ndarray = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return normalized


def rate(load: Callable[[list[StoredPoint]], None], points: list[StoredPoint], batch: int) -> float:
    began = time.perf_counter()
    for start in range(0, len(points), batch):
        load(points[start : start + batch])
    return len(points) / (time.perf_counter() - began)


def one_round(
    tmp: Path, client: redis.Redis, params: LshParams, points: list[StoredPoint], batch: int, n: int
) -> dict[str, float]:
    """Vectors/s of each of the three, each into a fresh collection."""
    dim = points[0].vector.shape[0]
    qdrant = QdrantEdgeStore(tmp / f"q{n}")
    qdrant.create_collection("alone", CollectionSpec(dim))
    rates = {"qdrant": rate(partial(qdrant.upsert, "alone"), points, batch)}
    qdrant.close()
    lsh = RedisLshStore(client, params, prefix=f"bench{n}")
    lsh.ensure_collection("alone", dim)
    rates["lsh"] = rate(partial(lsh.upsert, "alone"), points, batch)
    engine = IndexEngine(
        QdrantEdgeStore(tmp / f"e{n}"),
        RedisLshStore(client, params, prefix=f"engine{n}"),
        ServiceMetrics("bench"),
    )
    engine.ensure_collection("both", dim)

    def upsert(chunk: list[StoredPoint]) -> None:
        engine.upsert("both", [(p.id, p.vector, p.metadata) for p in chunk])

    rates["engine"] = rate(upsert, points, batch)
    engine.close()
    client.flushdb()
    return rates


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--points", type=int, default=4000)
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    vectors = unit_vectors(args.points, args.dim, 0)
    points = [StoredPoint(f"p{i}", v, {"n": i % 7}) for i, v in enumerate(vectors)]
    rounds = []
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedRedis(Path(tmp) / "redis")
        try:
            client = redis.Redis.from_url(server.url)
            params = LshParams(full_scan_threshold=min(1000, args.points // 4))
            for n in range(args.rounds):
                rounds.append(one_round(Path(tmp), client, params, points, args.batch, n))
        finally:
            server.stop()
    shape = f"{args.points} random unit vectors of dimension {args.dim}, batches of {args.batch}"
    print(f"{shape}, {args.rounds} rounds")
    for name in ("qdrant", "lsh", "engine"):
        values = [r[name] for r in rounds]
        ratios = [r[name] / r["qdrant"] for r in rounds]
        print(
            f"{name:7s} {statistics.median(values):8.0f} vectors/s  "
            f"({statistics.median(ratios):.2f}x Qdrant alone, median of rounds)"
        )


if __name__ == "__main__":
    main()
