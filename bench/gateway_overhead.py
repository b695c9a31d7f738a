"""Search through the three gRPC services vs the same pipeline called in-process.

    python -m bench.gateway_overhead [--gallery 1000] [--queries 50] [--rounds 3]

Both paths use the same running suite (same model, same Qdrant shard); they alternate query by
query. Prints median latency of each and their ratio (goal: gateway p50 <= 1.25x in-process).
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.queries import gallery_and_queries
from imsearch.client import SearchClient
from imsearch.suite import start_suite


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gallery", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--index", default="hnsw", choices=["hnsw", "exact", "lsh"])
    args = parser.parse_args()
    gallery, queries, source = gallery_and_queries(args.gallery, args.queries)
    with tempfile.TemporaryDirectory() as tmp:
        suite = start_suite(Path(tmp), "127.0.0.1:0", free_metrics_ports=True)
        client = SearchClient(suite.address)
        client.add_images((image_id, data, {}) for image_id, data in gallery)
        encoder, engine = suite.encoder.encoder, suite.index.engine
        collection = suite.gateway.pipeline.collection

        def in_process(image: bytes) -> None:
            _, vectors = encoder.encode("", [image])
            engine.search(collection, vectors[0].tolist(), 10, args.index, None, False)

        def through_gateway(image: bytes) -> None:
            client.search(image, top_k=10, index=args.index, rerank=False)

        timings: dict[str, list[float]] = {"in_process": [], "gateway": []}
        for image in queries[:5]:  # warm-up
            in_process(image)
            through_gateway(image)
        for _ in range(args.rounds):
            for image in queries:
                for name, call in (("in_process", in_process), ("gateway", through_gateway)):
                    began = time.perf_counter()
                    call(image)
                    timings[name].append(time.perf_counter() - began)
        client.close()
        suite.stop()
    p50 = {name: float(np.median(values)) * 1000 for name, values in timings.items()}
    p95 = {name: float(np.percentile(values, 95)) * 1000 for name, values in timings.items()}
    print(f"{source}; index {args.index}, top_k 10, {len(timings['gateway'])} searches per path")
    for name in timings:
        print(f"  {name:10s} p50 {p50[name]:7.2f} ms   p95 {p95[name]:7.2f} ms")
    print(f"  gateway / in-process p50 ratio: {p50['gateway'] / p50['in_process']:.3f} (goal <= 1.25)")


if __name__ == "__main__":
    main()
