"""Synthetic query images, for load tests and benchmarks when no real images are at hand."""

import io

import numpy as np
from PIL import Image


def synthetic_image(seed: int = 0, size: int = 320) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = (rng.random((size, size, 3)) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()
