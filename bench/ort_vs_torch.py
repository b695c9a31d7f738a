"""Per model: onnxruntime vs PyTorch eager throughput at batch 1 and 16, and FLOPs per image.

    python -m bench.ort_vs_torch [--models a,b] [--seconds 2] [--peak-gflops 320]

Each model is exported to a temporary folder with the zoo's own export (real weights where
installed, else random weights: speed does not depend on them). Timings alternate between the
runtimes, three rounds, medians. FLOPs are counted by torch.utils.flop_counter (a multiply-add
is 2 FLOPs); "at peak" is the throughput those FLOPs would allow at --peak-gflops, by default
2 cores x 2.5 GHz x 64 FP32 FLOP/cycle (AVX-512, two FMA units): an upper bound, not a
measurement.
"""

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch.utils.flop_counter import FlopCounterMode

from lab.zoo.export import export
from lab.zoo.recipes import RECIPES, calibrate_batch_norms


def images_per_second(run: Callable[[], object], batch: int, seconds: float) -> float:
    run()  # warm-up
    began, calls = time.perf_counter(), 0
    while time.perf_counter() - began < seconds:
        run()
        calls += 1
    return batch * calls / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--models", default=",".join(sorted(n for n, r in RECIPES.items() if not r.slow)))
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--peak-gflops", type=float, default=2 * 2.5 * 64)
    args = parser.parse_args()
    print(f"{'model':18s} {'weights':10s} {'GFLOP/img':>9s} {'at peak':>8s}   images/s: " + HEADER)
    for name in args.models.split(","):
        print(measure(name, args.seconds, args.rounds, args.peak_gflops), flush=True)


HEADER = "torch b1, ort b1 (x), torch b16, ort b16 (x)"


def measure(name: str, seconds: float, rounds: int, peak_gflops: float) -> str:
    recipe = RECIPES[name]
    weights = "pretrained" if recipe.has_offline_weights() else "random"
    size = recipe.preprocessing.crop_size
    with tempfile.TemporaryDirectory() as tmp:
        result = export(recipe, Path(tmp), weights)
        session = ort.InferenceSession(str(result.onnx_path), providers=["CPUExecutionProvider"])
    model = recipe.build(weights)
    pixels = {b: np.random.default_rng(0).random((b, 3, size, size), dtype=np.float32) for b in (1, 16)}
    if weights == "random":
        calibrate_batch_norms(model, torch.from_numpy(pixels[16]))
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.from_numpy(pixels[1]))
    gflops = counter.get_total_flops() / 1e9
    speeds: dict[str, list[float]] = {}
    for _ in range(rounds):
        for batch in (1, 16):
            tensor = torch.from_numpy(pixels[batch])
            feed = {"images": pixels[batch]}
            with torch.no_grad():
                speeds.setdefault(f"torch{batch}", []).append(
                    images_per_second(lambda t=tensor: model(t), batch, seconds)  # type: ignore[misc]
                )
            speeds.setdefault(f"ort{batch}", []).append(
                images_per_second(lambda f=feed: session.run(None, f), batch, seconds)  # type: ignore[misc]
            )
    m = {k: float(np.median(v)) for k, v in speeds.items()}
    return (
        f"{name:18s} {weights:10s} {gflops:9.2f} {peak_gflops / gflops:8.0f}   "
        f"{m['torch1']:6.1f}, {m['ort1']:6.1f} ({m['ort1'] / m['torch1']:.2f}x), "
        f"{m['torch16']:6.1f}, {m['ort16']:6.1f} ({m['ort16'] / m['torch16']:.2f}x)"
    )


if __name__ == "__main__":
    main()
