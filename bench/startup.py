"""Start-up and repair of the index at catalog size: how long the digest reconcile takes, and
how much memory it needs (it reads a batch at a time, so it should not grow with the collection).

    python -m bench.startup [--size 100000] [--dim 1280]

Fills an index (embedded Qdrant + a redis-server) with random unit vectors, then opens it in a
fresh process three times and prints the start-up time and the rise in resident memory:
stores consistent (digests compared), the LSH store wiped (every point rewritten from Qdrant),
and a deep `verify` (vectors and metadata compared).
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import redis

from devtools.embedded_redis import EmbeddedRedis
from imsearch.core.metrics import ServiceMetrics
from services.index.engine import IndexEngine
from services.index.stores.qdrant_edge import QdrantEdgeStore
from services.index.stores.redis_lsh import LshParams, RedisLshStore

COLLECTION = "bench"


def open_engine(data_dir: Path, redis_url: str) -> IndexEngine:
    lsh = RedisLshStore(redis.Redis.from_url(redis_url), LshParams())
    return IndexEngine(QdrantEdgeStore(data_dir / "qdrant"), lsh, ServiceMetrics("index"))


def rss_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(field)


def child(data_dir: Path, redis_url: str, deep: bool, store_only: bool) -> None:
    """Runs in the fresh process: opens the engine (the start-up reconcile), optionally verifies;
    or, as the baseline, opens only the Qdrant shard (whose vectors it holds in memory)."""
    before = rss_mb("VmRSS")
    began = time.perf_counter()
    if store_only:
        store = QdrantEdgeStore(data_dir / "qdrant")
        print(json.dumps({"open_s": time.perf_counter() - began, "peak_rise_mb": rss_mb("VmHWM") - before}))
        store.close()
        return
    engine = open_engine(data_dir, redis_url)
    opened = time.perf_counter() - began
    result = {"open_s": opened, "rss_before_mb": before}
    if deep:
        began = time.perf_counter()
        audit = engine.verify(COLLECTION)
        result.update(verify_s=time.perf_counter() - began, consistent=audit.consistent)
    result["peak_rise_mb"] = rss_mb("VmHWM") - before
    engine.close()
    print(json.dumps(result))


def measure(data_dir: Path, redis_url: str, deep: bool = False, store_only: bool = False) -> dict[str, float]:
    command = [sys.executable, "-m", "bench.startup", "--child", str(data_dir), redis_url]
    flags = [*(["--deep"] if deep else []), *(["--store-only"] if store_only else [])]
    output = subprocess.run([*command, *flags], capture_output=True, check=True, text=True)
    result: dict[str, float] = json.loads(output.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--child", nargs=2, metavar=("DATA_DIR", "REDIS_URL"), help=argparse.SUPPRESS)
    parser.add_argument("--deep", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--store-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(Path(args.child[0]), args.child[1], args.deep, args.store_only)
        return
    with tempfile.TemporaryDirectory() as folder:
        data_dir = Path(folder)
        redis_server = EmbeddedRedis(data_dir / "redis")
        try:
            engine = open_engine(data_dir, redis_server.url)
            engine.ensure_collection(COLLECTION, args.dim)
            rng = np.random.default_rng(0)
            began = time.perf_counter()
            for start in range(0, args.size, 1000):
                vectors = rng.standard_normal((min(1000, args.size - start), args.dim)).astype(np.float32)
                engine.upsert(
                    COLLECTION, [(f"p{start + i}", v, {"n": start + i}) for i, v in enumerate(vectors)]
                )
            filled = time.perf_counter() - began
            engine.close()
            print(
                f"{args.size} points of dimension {args.dim}: "
                f"filled in {filled:.0f} s ({args.size / filled:.0f}/s)"
            )
            alone = measure(data_dir, redis_server.url, store_only=True)
            print(
                f"baseline, the Qdrant shard alone: {alone['open_s']:.1f} s, "
                f"memory +{alone['peak_rise_mb']:.0f} MB"
            )
            consistent = measure(data_dir, redis_server.url)
            print(
                f"start-up, stores consistent: {consistent['open_s']:.1f} s, "
                f"memory +{consistent['peak_rise_mb']:.0f} MB"
            )
            redis.Redis.from_url(redis_server.url).flushall()
            rebuilt = measure(data_dir, redis_server.url)
            print(
                f"start-up, LSH store lost (all {args.size} rewritten): {rebuilt['open_s']:.1f} s, "
                f"memory +{rebuilt['peak_rise_mb']:.0f} MB"
            )
            deep = measure(data_dir, redis_server.url, deep=True)
            print(
                f"verify (deep, vectors and metadata): {deep['verify_s']:.1f} s, "
                f"consistent={deep['consistent']}, memory +{deep['peak_rise_mb']:.0f} MB"
            )
        finally:
            redis_server.stop()


if __name__ == "__main__":
    main()
