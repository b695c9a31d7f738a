"""ORB bag of visual words: the codebook is learned from images, then served like a model."""

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from imsearch.core.metrics import ServiceMetrics
from lab.zoo.codebook import NAME, fit_codebook
from services.encoder.engine import Encoder
from services.encoder.settings import EncoderSettings


def texture(seed: int, size: int = 360) -> Image.Image:
    """Random polygons and lines: plenty of corners for ORB."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (size, size), tuple(int(c) for c in rng.integers(0, 255, 3)))
    draw = ImageDraw.Draw(image)
    for _ in range(40):
        points = [tuple(int(v) for v in rng.integers(0, size, 2)) for _ in range(3)]
        draw.polygon(points, fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
    return image


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_codebook_is_learned_and_served(tmp_path: Path) -> None:
    dataset = tmp_path / "textures" / "all"
    dataset.mkdir(parents=True)
    for seed in range(12):
        texture(seed).save(dataset / f"{seed}.png")
    repository = tmp_path / "repository"
    spec = fit_codebook(tmp_path / "textures", repository, words=32)
    assert spec.dim == 33
    encoder = Encoder(
        EncoderSettings(model_repository=repository, default_model=NAME, metrics_port=-1), ServiceMetrics("t")
    )
    try:
        gallery = [png(texture(seed)) for seed in range(100, 106)]
        shifted = texture(103).crop((12, 8, 352, 348)).resize((360, 360))  # a mildly cropped copy of #3
        _, vectors = encoder.encode(NAME, [*gallery, png(shifted), png(Image.new("RGB", (300, 300), "grey"))])
    finally:
        encoder.close()
    assert vectors.shape == (8, 33)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert int(np.argmax(vectors[:6] @ vectors[6])) == 3  # the copy finds its original
    assert vectors[7, -1] == 1.0  # a flat image has no keypoints: the "none" bin
