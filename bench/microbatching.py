"""Encoder throughput: 16 concurrent clients (micro-batched) vs one client sending batch-1 requests.

    python -m bench.microbatching [--images 64] [--rounds 3]

Three encoder servers over gRPC, all with the real model: the default (micro-batching on), and
the same with max_batch=1 to show what concurrency alone gives. Rounds alternate between the
modes; prints the median images/s of each and the ratio to serial (goal: >= 2x). Then the model
alone: the runtime called directly with batches of 1, 4 and 16, in ms per image, which bounds
what batching can win on this hardware.
"""

import argparse
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np

from bench.queries import gallery_and_queries
from imsearch.core.metrics import ServiceMetrics
from imsearch.v1 import encoder_pb2, encoder_pb2_grpc
from services.encoder.app import start_encoder
from services.encoder.engine import Encoder
from services.encoder.settings import EncoderSettings

CLIENTS = 16


def throughput(stub: encoder_pb2_grpc.EncoderServiceStub, images: list[bytes], clients: int) -> float:
    def encode(image: bytes) -> None:
        stub.Encode(encoder_pb2.EncodeRequest(images=[image]))

    began = time.perf_counter()
    if clients == 1:
        for image in images:
            encode(image)
    else:
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(encode, images))
    return len(images) / (time.perf_counter() - began)


def model_alone(
    settings: EncoderSettings, batches: tuple[int, ...], images: int, rounds: int
) -> dict[int, float]:
    """Median ms per image of the default model's runtime called directly, per batch size."""
    encoder = Encoder(settings, ServiceMetrics("bench"))
    loaded = encoder.model("")
    prep = loaded.spec.image_preprocessing
    size = prep.crop_size
    shape = (3, size, size) if prep.layout == "NCHW" else (size, size, 3)
    pixels = np.random.default_rng(0).standard_normal((max(batches), *shape)).astype(np.float32)
    loaded.backend.infer(pixels[:1])  # warm-up
    per_image: dict[int, list[float]] = {batch: [] for batch in batches}
    for _ in range(rounds):  # rounds alternate the batch sizes, so noise hits all alike
        for batch in batches:
            began = time.perf_counter()
            for _ in range(images // batch):
                loaded.backend.infer(pixels[:batch])
            per_image[batch].append((time.perf_counter() - began) / (images // batch * batch) * 1000)
    encoder.close()
    return {batch: float(np.median(values)) for batch, values in per_image.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-wait-ms", type=float, default=None, help="encoder setting to try")
    parser.add_argument("--workers", type=int, default=None, help="encoder batch_workers to try")
    parser.add_argument("--threads", type=int, default=None, help="encoder intra_op_threads to try")
    args = parser.parse_args()
    tuning = {
        k: v
        for k, v in {
            "max_wait_ms": args.max_wait_ms,
            "batch_workers": args.workers,
            "intra_op_threads": args.threads,
        }.items()
        if v is not None
    }
    _, images, source = gallery_and_queries(0, args.images)
    batched = start_encoder(EncoderSettings(listen="127.0.0.1:0", metrics_port=-1, **tuning))
    unbatched = start_encoder(EncoderSettings(listen="127.0.0.1:0", metrics_port=-1, **tuning, max_batch=1))
    stubs = {
        name: encoder_pb2_grpc.EncoderServiceStub(grpc.insecure_channel(app.address))
        for name, app in (("batched", batched), ("unbatched", unbatched))
    }
    modes = {
        "serial batch-1 (1 client)": (stubs["batched"], 1),
        f"{CLIENTS} clients, micro-batching": (stubs["batched"], CLIENTS),
        f"{CLIENTS} clients, max_batch=1": (stubs["unbatched"], CLIENTS),
    }
    for stub, clients in modes.values():  # warm-up
        throughput(stub, images[:16], clients)
    results: dict[str, list[float]] = {name: [] for name in modes}
    for _ in range(args.rounds):
        for name, (stub, clients) in modes.items():
            results[name].append(throughput(stub, images, clients))
    batched.stop()
    unbatched.stop()
    serial = float(np.median(results["serial batch-1 (1 client)"]))
    print(
        f"{source}; {args.images} images per run, {args.rounds} rounds, medians; "
        f"settings {tuning or 'default'}"
    )
    for name, values in results.items():
        median = float(np.median(values))
        print(f"  {name:34s} {median:7.1f} images/s  ({median / serial:.2f}x serial)")
    alone = model_alone(EncoderSettings(metrics_port=-1, **tuning), (1, 4, 16), args.images, args.rounds)
    print("model alone (runtime called directly, no decoding or gRPC):")
    for batch, ms in alone.items():
        print(f"  batch {batch:2d}: {ms:6.2f} ms per image  ({alone[1] / ms:.2f}x batch 1)")


if __name__ == "__main__":
    main()
