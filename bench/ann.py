"""HNSW and LSH against exact search at 100,000 vectors, through the index service's own engine.

    python -m bench.ann [--size 100000] [--queries 500]

Prints recall@10 (against numpy brute force), queries per second (one client, serial, median
of per-query latency) and, for LSH, the fraction of the collection in the probed buckets (ranked
by signature distance) and the fraction re-scored exactly against stored vectors. The
three searches run interleaved query by query, so machine noise hits them alike.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import redis

from bench.vectors import build
from devtools.embedded_redis import EmbeddedRedis
from imsearch.core.index_kind import IndexKind
from imsearch.core.metrics import ServiceMetrics
from services.index.engine import IndexEngine
from services.index.stores.qdrant_edge import QdrantEdgeStore
from services.index.stores.redis_lsh import LshParams, RedisLshStore

K = 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=500)
    args = parser.parse_args()
    data = build(args.size, args.queries)
    print(data.description, flush=True)
    truth = np.argsort(-(data.queries @ data.gallery.T), axis=1)[:, :K]
    ids = [str(i) for i in range(len(data.gallery))]

    with tempfile.TemporaryDirectory() as tmp:
        redis_server = EmbeddedRedis(Path(tmp) / "redis")
        lsh = RedisLshStore(redis.Redis.from_url(redis_server.url), LshParams())
        engine = IndexEngine(QdrantEdgeStore(Path(tmp) / "qdrant"), lsh, ServiceMetrics("bench"))
        engine.ensure_collection("bench", data.gallery.shape[1])
        start = time.perf_counter()
        for i in range(0, len(ids), 1000):
            engine.upsert("bench", [(ids[j], data.gallery[j], {}) for j in range(i, min(i + 1000, len(ids)))])
        load_s = time.perf_counter() - start
        engine.wait_for_optimize()
        start = time.perf_counter()
        engine.optimize("bench")  # the final graph over everything (the engine builds as it grows)
        optimize_s = time.perf_counter() - start
        info = engine.info("bench")
        print(
            f"loaded in {load_s:.0f}s (both stores), final HNSW build {optimize_s:.0f}s, "
            f"hnsw_built={info.hnsw_built}, lsh_points={info.lsh_points}",
            flush=True,
        )

        latency: dict[IndexKind, list[float]] = {kind: [] for kind in IndexKind}
        recall: dict[IndexKind, list[float]] = {kind: [] for kind in IndexKind}
        candidates: list[float] = []
        scored: list[float] = []
        for q, query in enumerate(data.queries):
            expected = {str(i) for i in truth[q]}
            for index in latency:
                began = time.perf_counter()
                outcome = engine.search("bench", query.tolist(), K, index, None, False)
                latency[index].append(time.perf_counter() - began)
                recall[index].append(len(expected & {h.id for h in outcome.hits}) / K)
                if index is IndexKind.LSH:
                    candidates.append(outcome.candidates / len(ids))
                    scored.append(outcome.candidates_scored / len(ids))
        memory = redis.Redis.from_url(redis_server.url).info("memory")["used_memory"]
        engine.close()
        redis_server.stop()

    qps = {index: 1.0 / float(np.median(values)) for index, values in latency.items()}
    results = {
        "dataset": data.description,
        "recall_at_10": {index: float(np.mean(values)) for index, values in recall.items()},
        "median_qps": qps,
        "hnsw_speedup_vs_exact": qps[IndexKind.HNSW] / qps[IndexKind.EXACT],
        "lsh_speedup_vs_exact": qps[IndexKind.LSH] / qps[IndexKind.EXACT],
        "lsh_fraction_in_buckets_mean": float(np.mean(candidates)),
        "lsh_fraction_rescored_mean": float(np.mean(scored)),
        "lsh_redis_memory_mb": memory / 2**20,
        "lsh_params": LshParams().__dict__,
    }
    print(json.dumps(results, indent=2))
    out = Path(__file__).resolve().parent / "out"
    out.mkdir(exist_ok=True)
    (out / "ann.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
