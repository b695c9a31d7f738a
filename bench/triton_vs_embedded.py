"""Encoding through Triton vs embedded onnxruntime, same model, same decode and preprocessing.

    python -m bench.triton_vs_embedded [--images 64] [--rounds 3]

Starts the bundled tritonserver on the CPU repository (build/triton-cpu, made by `make setup`).
Prints batch-1 latency p50/p99 (the two backends interleaved request by request) and
throughput with 16 concurrent single-image clients (rounds alternate between backends).
"""

import argparse
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from bench.queries import gallery_and_queries
from devtools.triton.cpu_repository import build_repository
from devtools.triton.server import TritonServer
from imsearch.core.metrics import ServiceMetrics
from services.encoder.engine import Encoder
from services.encoder.settings import EncoderSettings

CLIENTS = 16


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    _, images, source = gallery_and_queries(0, args.images)
    with tempfile.TemporaryDirectory() as tmp:
        repository = Path(tmp) / "triton-cpu"
        build_repository(Path("model_repository"), repository)
        server = TritonServer(repository, work_dir=Path(tmp))
        encoders = {
            "embedded onnxruntime": Encoder(EncoderSettings(metrics_port=-1), ServiceMetrics("a")),
            "triton (CPU, python backend)": Encoder(
                EncoderSettings(metrics_port=-1, backend="triton", triton_url=server.url), ServiceMetrics("b")
            ),
        }
        try:
            latency: dict[str, list[float]] = {name: [] for name in encoders}
            for image in images[:4]:  # warm-up
                for encoder in encoders.values():
                    encoder.encode("", [image])
            for _ in range(args.rounds):
                for image in images:
                    for name, encoder in encoders.items():
                        began = time.perf_counter()
                        encoder.encode("", [image])
                        latency[name].append(time.perf_counter() - began)
            throughput: dict[str, list[float]] = {name: [] for name in encoders}
            for _ in range(args.rounds):
                for name, encoder in encoders.items():
                    began = time.perf_counter()
                    with ThreadPoolExecutor(CLIENTS) as pool:
                        list(pool.map(lambda image, e=encoder: e.encode("", [image]), images))
                    throughput[name].append(len(images) / (time.perf_counter() - began))
        finally:
            for encoder in encoders.values():
                encoder.close()
            server.stop()
    print(
        f"{source}; batch-1 latency over {len(images) * args.rounds} requests, "
        f"throughput median of {args.rounds} rounds"
    )
    for name in encoders:
        values = np.asarray(latency[name]) * 1000
        print(
            f"  {name:30s} p50 {np.median(values):6.1f} ms  p99 {np.percentile(values, 99):6.1f} ms  "
            f"{CLIENTS} clients {np.median(throughput[name]):6.1f} images/s"
        )


if __name__ == "__main__":
    main()
