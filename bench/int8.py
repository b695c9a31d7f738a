"""Inference time of a model and its int8 variant, side by side (`imsearch models export
NAME --int8` writes the variant).

    python -m bench.int8 [--repository model_repository] [--model efficientnet_lite0] [--rounds 7]

Both onnxruntime sessions run with the encoder's settings (2 intra-op threads, all graph
optimisations) on real preprocessed images, batch 1 and 16. The two alternate within each
round (the machine is shared and noisy); printed: the median milliseconds per batch of each and
the median of the rounds' speed-ups.
"""

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from lab.zoo.export import parity_images
from lab.zoo.quantize import SUFFIX
from services.encoder.images import preprocess
from services.encoder.model_spec import ModelSpec


def session(path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def seconds_per_run(model: ort.InferenceSession, pixels: np.ndarray, runs: int) -> float:
    model.run(None, {"images": pixels})  # warm
    began = time.perf_counter()
    for _ in range(runs):
        model.run(None, {"images": pixels})
    return (time.perf_counter() - began) / runs


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repository", type=Path, default=Path("model_repository"))
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    spec = ModelSpec.load(args.repository / args.model)
    quantized = ModelSpec.load(args.repository / f"{args.model}{SUFFIX}")
    models = {
        "float32": session(spec.onnx_path(args.repository), args.threads),
        "int8": session(quantized.onnx_path(args.repository), args.threads),
    }
    images, source = parity_images(16)
    pixels = np.stack([preprocess(image, spec.image_preprocessing) for image in images])
    print(f"{args.model}: {source}, {args.threads} threads, {args.rounds} rounds")
    for batch, runs in ((1, 40), (16, 4)):
        times: dict[str, list[float]] = {name: [] for name in models}
        for _ in range(args.rounds):
            for name, model in models.items():
                times[name].append(seconds_per_run(model, pixels[:batch], runs))
        speedups = [f / q for f, q in zip(times["float32"], times["int8"], strict=True)]
        medians = {name: 1000 * statistics.median(t) for name, t in times.items()}
        print(
            f"batch {batch:2d}: float32 {medians['float32']:.2f} ms, int8 {medians['int8']:.2f} ms; "
            f"speed-up {statistics.median(speedups):.2f}x (median of rounds)"
        )


if __name__ == "__main__":
    main()
