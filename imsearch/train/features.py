"""Backbone features of a list of images, computed once and cached: heads train on these.

The backbone is the pretrained model's exported ONNX file run by onnxruntime (the same runtime
and preprocessing the encoder service uses), so a head trained here sees exactly the features
it will get when the backbone + head are exported and served. Each image gives two views,
as is and mirrored left-right, a cheap augmentation for training.
"""

import hashlib
import logging
from pathlib import Path

import numpy as np
from PIL import Image

from services.encoder.backends.onnxruntime import OnnxRuntimeBackend
from services.encoder.images import preprocess
from services.encoder.model_spec import ModelSpec, Preprocessing

log = logging.getLogger(__name__)
VIEWS = ("original", "mirrored")


def pixels_of(path: Path, preprocessing: Preprocessing) -> np.ndarray:
    """The encoder's preprocessing of one image file (JPEG decoded at a reduced scale)."""
    with Image.open(path) as image:
        image.draft("RGB", (preprocessing.resize, preprocessing.resize))
        return preprocess(image.convert("RGB"), preprocessing)


def _cache_key(model_dir: Path, paths: list[Path]) -> str:
    digest = hashlib.sha256((model_dir / "1" / "model.onnx").read_bytes()[-1 << 20 :])
    for path in paths:
        digest.update(str(path.resolve()).encode())
    return digest.hexdigest()[:16]


def backbone_features(
    repository: Path, model: str, paths: list[Path], cache_dir: Path | None = None, batch: int = 32
) -> np.ndarray:
    """(n, 2, dim) float32 features: view 0 as is, view 1 mirrored. Cached by model + paths."""
    cache = None
    if cache_dir is not None:
        cache = cache_dir / f"{model}-{_cache_key(repository / model, paths)}.npy"
        if cache.is_file():
            cached: np.ndarray = np.load(cache)
            return cached
    spec = ModelSpec.load(repository / model)
    backend = OnnxRuntimeBackend(model, spec.onnx_path(repository))
    width_axis = 3 if spec.preprocessing.layout == "NCHW" else 2
    parts = []
    try:
        for start in range(0, len(paths), batch):
            pixels = np.stack([pixels_of(p, spec.preprocessing) for p in paths[start : start + batch]])
            mirrored = np.ascontiguousarray(np.flip(pixels, axis=width_axis))
            parts.append(np.stack([backend.infer(pixels), backend.infer(mirrored)], axis=1))
            if start // batch % 20 == 0:
                log.info("%s features: %d / %d images", model, start + len(parts[-1]), len(paths))
    finally:
        backend.close()
    features = np.concatenate(parts).astype(np.float32)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, features)
    return features
