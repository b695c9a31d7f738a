"""Static int8 quantization of an exported CNN with onnxruntime: a faster encoder on CPUs.

    imsearch models export efficientnet_lite0 --int8 --calibration ../shared/data/caltech101

Writes `<name>_int8/` beside `<name>/`: the same preprocessing, a QDQ model with per-channel
int8 weights and uint8 activations whose ranges come from gallery images (never queries of
the evaluation split with the same --queries-per-class and --seed). Weights use 7 bits
(`reduce_range`): on CPUs without VNNI (AVX2 only, as the development machine) the int8 dot
products saturate with 8-bit weights, which cost 0.034 P@10 on cosplay there, while 7-bit
weights keep P@10 within noise.
"""

import random
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quant_pre_process,
    quantize_static,
)

from lab.eval.protocol import split
from lab.zoo.export import TRITON_CONFIG, parity_images
from services.encoder.images import decode_image, preprocess
from services.encoder.model_spec import SPEC_FILE, ModelSpec
from services.encoder.settings import EncoderSettings

SUFFIX = "_int8"
CALIBRATION_BATCH = 8


@dataclass(frozen=True)
class QuantizeResult:
    spec: ModelSpec
    onnx_path: Path
    calibration_images: int
    min_cosine: float  # fp32 vs int8 embeddings of the parity images
    mean_cosine: float

    def describe(self) -> str:
        return (
            f"int8 vs float32 embeddings of the parity images: cosine min {self.min_cosine:.4f}, "
            f"mean {self.mean_cosine:.4f}; calibrated on {self.calibration_images} gallery images"
        )


def calibration_images(dataset: Path, count: int, queries_per_class: int, seed: int) -> list[Path]:
    """`count` gallery images of the evaluation split (queries left out), spread over classes."""
    gallery = [item.path for item in split(dataset, queries_per_class, seed).gallery]
    return sorted(random.Random(seed).sample(gallery, min(count, len(gallery))))


class _Reader(CalibrationDataReader):  # type: ignore[misc]
    """Preprocessed batches of the calibration images, as the encoder preprocesses them."""

    def __init__(self, spec: ModelSpec, paths: Sequence[Path]) -> None:
        self._batches = self._read(spec, paths)

    @staticmethod
    def _read(spec: ModelSpec, paths: Sequence[Path]) -> Iterator[dict[str, np.ndarray]]:
        prep, limits = spec.image_preprocessing, EncoderSettings()  # decoded as the encoder would
        for start in range(0, len(paths), CALIBRATION_BATCH):
            pixels = [
                preprocess(
                    decode_image(
                        path.read_bytes(), limits.max_image_bytes, limits.max_image_pixels, prep.resize
                    ),
                    prep,
                )
                for path in paths[start : start + CALIBRATION_BATCH]
            ]
            yield {"images": np.stack(pixels)}

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def _embed(onnx_path: Path, pixels: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"images": pixels})
    features = np.asarray(out, dtype=np.float32)
    normalized: np.ndarray = features / np.linalg.norm(features, axis=1, keepdims=True)
    return normalized


def quantize(repository: Path, name: str, calibration: Sequence[Path], max_batch: int = 64) -> QuantizeResult:
    """Writes `<repository>/<name>_int8` from the exported `<name>` and checks it against it."""
    source = ModelSpec.load(repository / name)
    if source.runtime != "onnx" or source.modality != "image" or source.runs:
        raise ValueError(f"{name} is not an exported image network (runtime {source.runtime!r})")
    if not calibration:
        raise ValueError("no calibration images")
    spec = source.model_copy(
        update={
            "name": f"{name}{SUFFIX}",
            "weights": f"{source.weights}; int8 (QDQ, per-channel 7-bit weights, "
            f"calibrated on {len(calibration)} gallery images)",
        }
    )
    target = spec.onnx_path(repository)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(source.onnx_path(repository)), str(prepared))  # fold, infer shapes
        quantize_static(
            str(prepared),
            str(target),
            _Reader(source, calibration),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            reduce_range=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )
    images, _ = parity_images()
    pixels = np.stack([preprocess(image, source.image_preprocessing) for image in images])
    cosines = np.sum(_embed(source.onnx_path(repository), pixels) * _embed(target, pixels), axis=1)
    folder = repository / spec.name
    (folder / SPEC_FILE).write_text(spec.model_dump_json(indent=2) + "\n")
    crop = spec.image_preprocessing.crop_size
    (folder / "config.pbtxt").write_text(
        TRITON_CONFIG.format(name=spec.name, max_batch=max_batch, size=crop, dim=spec.dim, instances=1)
    )
    return QuantizeResult(spec, target, len(calibration), float(cosines.min()), float(cosines.mean()))
