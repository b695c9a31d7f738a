#!/usr/bin/env bash
# GPU check (under 5 minutes): serves the default model on a GPU and prints throughput at
# batch 1/16/64 in fp32 and fp16.
#
# UNTESTED: no session of this project has had a GPU yet. It uses onnxruntime's CUDA provider
# (the bundled tritonserver on PyPI has only the Python backend, so Triton's own onnxruntime
# GPU backend is not available without NVIDIA's container).
#
# Usage on a GPU machine, from the repository root, after `make setup`:
#   bash bench/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
# The GPU build replaces the CPU one (both install the `onnxruntime` package).
$PY -m pip uninstall -q -y onnxruntime
$PY -m pip install -q onnxruntime-gpu==1.31.1 || { echo "onnxruntime-gpu did not install"; exit 1; }
$PY -m lab.zoo.export --model efficientnet_lite0 --out build/gpu/fp32
$PY -m lab.zoo.export --model efficientnet_lite0 --fp16 --out build/gpu/fp16
$PY - <<'PYEOF'
import time
import numpy as np
import onnxruntime as ort

providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
for precision in ("fp32", "fp16"):
    session = ort.InferenceSession(f"build/gpu/{precision}/efficientnet_lite0/1/model.onnx", providers=providers)
    print(precision, "providers:", session.get_providers())
    for batch in (1, 16, 64):
        x = np.random.rand(batch, 3, 224, 224).astype(np.float32)
        for _ in range(10):
            session.run(None, {"images": x})
        runs, began = 0, time.perf_counter()
        while time.perf_counter() - began < 5:
            session.run(None, {"images": x})
            runs += 1
        seconds = time.perf_counter() - began
        print(f"  {precision} batch {batch:3d}: {batch * runs / seconds:9.1f} images/s, {1000 * seconds / runs:7.2f} ms/batch")
PYEOF
