"""Exports a recipe to ONNX in Triton's repository layout and checks it against PyTorch.

    python -m lab.zoo.export --model NAME [--weights pretrained|random|PATH] [--fp16]

Writes `<out>/<name>/1/model.onnx` (dynamic batch axis), `imsearch.json` (preprocessing and
where the weights came from) and `config.pbtxt` (onnxruntime platform, dynamic batching,
instance groups), and returns the largest |PyTorch - onnxruntime| difference on real images
(Caltech-101 when ../shared/data is present, else generated ones), preprocessed the way the
encoder does it.
"""

import argparse
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from PIL import Image

from lab.zoo.recipes import RECIPES, Recipe, calibrate_batch_norms, weights_label
from services.encoder.images import preprocess
from services.encoder.model_spec import SPEC_FILE, ModelSpec

FP32_TOLERANCE = 1e-4
FP16_TOLERANCE = 5e-2  # relative to the largest output value
DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "caltech101"

TRITON_CONFIG = """\
# Triton config for the GPU build of Triton (onnxruntime backend). Written by the export command.
name: "{name}"
platform: "onnxruntime_onnx"
max_batch_size: {max_batch}
input [ {{ name: "images", data_type: TYPE_FP32, dims: [ 3, {size}, {size} ] }} ]
output [ {{ name: "embedding", data_type: TYPE_FP32, dims: [ {dim} ] }} ]
dynamic_batching {{ max_queue_delay_microseconds: 2000 }}
instance_group [ {{ count: {instances}, kind: KIND_GPU }} ]
"""


@dataclass
class ExportResult:
    onnx_path: Path
    max_abs_diff: float
    output_scale: float  # largest |output| of the PyTorch model on the parity images
    images: str

    def describe(self) -> str:
        return (
            f"max |torch - onnxruntime| = {self.max_abs_diff:.2e} on {self.images} "
            f"(outputs up to {self.output_scale:.3g})"
        )


def parity_images(count: int = 6) -> tuple[list[Image.Image], str]:
    if DATA.is_dir():
        files = sorted(
            p for d in sorted(DATA.iterdir())[:count] if d.is_dir() for p in sorted(d.iterdir())[:1]
        )
        return [Image.open(f).convert("RGB") for f in files[:count]], f"{count} Caltech-101 images"
    rng = np.random.default_rng(0)
    images = []
    for _ in range(count):
        small = (rng.random((6, 8, 3)) * 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(small).resize((320, 240), Image.Resampling.BICUBIC).save(buffer, "JPEG")
        images.append(Image.open(buffer).convert("RGB"))
    return images, f"{count} generated images (no ../shared/data)"


def _to_fp16(onnx_path: Path) -> None:
    """Weights and arithmetic in float16; inputs and outputs stay float32 for the encoder."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(onnx_path)), keep_io_types=True)
    onnx.save(model, str(onnx_path))


def export(
    recipe: Recipe,
    out: Path,
    weights: str = "pretrained",
    fp16: bool = False,
    max_batch: int = 64,
    instances: int = 1,
) -> ExportResult:
    spec = ModelSpec(
        name=recipe.name,
        dim=recipe.dim,
        preprocessing=recipe.preprocessing,
        weights=weights_label(recipe, weights),
    )
    onnx_path = spec.onnx_path(out)
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    model = recipe.build(weights)
    size = spec.image_preprocessing.crop_size
    images, source = parity_images()
    pixels = np.stack(
        [preprocess(image, spec.image_preprocessing) for image in images]
    )  # batch 6: dynamic axis
    if weights == "random":
        calibrate_batch_norms(model, torch.from_numpy(pixels))
    with torch.no_grad():
        torch.onnx.export(
            model,
            (torch.rand(2, 3, size, size),),
            str(onnx_path),
            input_names=["images"],
            output_names=["embedding"],
            dynamic_axes={"images": {0: "batch"}, "embedding": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    if fp16:
        _to_fp16(onnx_path)
    with torch.no_grad():
        expected = model(torch.from_numpy(pixels)).numpy()
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"images": pixels})
    diff = float(np.abs(np.asarray(got) - expected).max())
    scale = float(np.abs(expected).max())
    if scale < 1e-6 or not np.isfinite(scale):
        raise SystemExit(f"{recipe.name}: the PyTorch model outputs {scale} everywhere; nothing to compare")
    limit = FP16_TOLERANCE * scale if fp16 else FP32_TOLERANCE
    if diff > limit:
        raise SystemExit(f"{recipe.name}: onnxruntime differs from PyTorch by {diff:.2e} (limit {limit:.2e})")
    (out / recipe.name / SPEC_FILE).write_text(spec.model_dump_json(indent=2) + "\n")
    (out / recipe.name / "config.pbtxt").write_text(
        TRITON_CONFIG.format(
            name=recipe.name, max_batch=max_batch, size=size, dim=spec.dim, instances=instances
        )
    )
    return ExportResult(onnx_path, diff, scale, source)


def export_if_missing(recipe: Recipe, out: Path) -> None:
    """Exports the recipe's pretrained weights unless `out/<name>` already holds them."""
    folder = out / recipe.name
    if not (folder / "1" / "model.onnx").is_file() or not (folder / SPEC_FILE).is_file():
        export(recipe, out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--model", choices=sorted(RECIPES), default="efficientnet_lite0")
    parser.add_argument("--weights", default="pretrained", help="pretrained, random, or a checkpoint path")
    parser.add_argument("--fp16", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("model_repository"))
    args = parser.parse_args()
    result = export(RECIPES[args.model], args.out, args.weights, args.fp16)
    print(f"exported {args.model} to {result.onnx_path}; {result.describe()}{' (fp16)' if args.fp16 else ''}")


if __name__ == "__main__":
    main()
