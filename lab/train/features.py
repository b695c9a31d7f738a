"""Backbone features of a list of images, computed once and cached: heads train on these.

The backbone is the pretrained model's exported ONNX file run by onnxruntime (the same runtime
and preprocessing the encoder service uses), so a head trained here sees exactly the features
it will get when the backbone + head are exported and served. Each image gives two views,
as is and mirrored left-right, a cheap augmentation for training.
"""

import hashlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from services.encoder.backends.onnxruntime import OnnxRuntimeBackend
from services.encoder.images import preprocess
from services.encoder.model_spec import ModelSpec, Preprocessing

log = logging.getLogger(__name__)


def pixels_of(path: Path, preprocessing: Preprocessing) -> np.ndarray:
    """The encoder's preprocessing of one image file (JPEG decoded at a reduced scale)."""
    with Image.open(path) as image:
        image.draft("RGB", (preprocessing.resize, preprocessing.resize))
        return preprocess(image.convert("RGB"), preprocessing)


def two_view_outputs(
    run: Callable[[np.ndarray], np.ndarray],
    paths: list[Path],
    preprocessing: Preprocessing,
    label: str,
    dtype: type[np.floating[Any]] = np.float32,
    batch: int = 32,
) -> np.ndarray:
    """(n, 2, ...) outputs of `run` on each image's pixels as is (view 0) and mirrored (view 1),
    cast to `dtype` batch by batch (so float16 outputs never exist whole as float32)."""
    width_axis = 3 if preprocessing.layout == "NCHW" else 2
    parts = []
    for start in range(0, len(paths), batch):
        pixels = np.stack([pixels_of(p, preprocessing) for p in paths[start : start + batch]])
        mirrored = np.ascontiguousarray(np.flip(pixels, axis=width_axis))
        parts.append(np.stack([run(pixels), run(mirrored)], axis=1).astype(dtype))
        if start // batch % 20 == 0:
            log.info("%s: %d / %d images", label, start + len(parts[-1]), len(paths))
    return np.concatenate(parts)


def paths_digest(paths: list[Path], seed: bytes) -> str:
    digest = hashlib.sha256(seed)
    for path in paths:
        digest.update(str(path.resolve()).encode())
    return digest.hexdigest()[:16]


def cached(path: Path | None, compute: Callable[[], np.ndarray]) -> np.ndarray:
    """`compute()`, kept in the .npy file `path` (when given) and read from it next time."""
    if path is not None and path.is_file():
        loaded: np.ndarray = np.load(path)
        return loaded
    array = compute()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, array)
    return array


def backbone_features(
    repository: Path, model: str, paths: list[Path], cache_dir: Path | None = None
) -> np.ndarray:
    """(n, 2, dim) float32 features: view 0 as is, view 1 mirrored. Cached by model + paths."""
    model_file = repository / model / "1" / "model.onnx"
    key = paths_digest(paths, model_file.read_bytes()[-1 << 20 :])
    cache = cache_dir / f"{model}-{key}.npy" if cache_dir is not None else None

    def compute() -> np.ndarray:
        spec = ModelSpec.load(repository / model)
        backend = OnnxRuntimeBackend(model, spec.onnx_path(repository))
        try:
            return two_view_outputs(backend.infer, paths, spec.image_preprocessing, f"{model} features")
        finally:
            backend.close()

    return cached(cache, compute)
