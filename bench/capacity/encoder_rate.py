"""Encoder images/s per CPU core: end to end, and inference alone on pixels made beforehand."""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.capacity.pinning import pinned, two_cores
from bench.capacity.rates import Rate, measure_rate
from bench.queries import gallery_and_queries
from imsearch.core.metrics import ServiceMetrics
from services.encoder.engine import Encoder
from services.encoder.images import decode_image, preprocess
from services.encoder.settings import EncoderSettings

REPO = Path(__file__).resolve().parent.parent.parent
BATCH = 16


@dataclass
class EncoderFigures:
    source: str
    images: int
    core: int
    end_to_end_rate: Rate  # decode + preprocess + inference
    inference_rate: Rate  # pixels made beforehand

    @property
    def end_to_end(self) -> float:
        return self.end_to_end_rate.cpu

    @property
    def inference(self) -> float:
        return self.inference_rate.cpu

    @property
    def cpu_side(self) -> float:
        """Images/s per core of decode + preprocess alone (what stays on CPU beside a GPU)."""
        return 1.0 / max(1.0 / self.end_to_end - 1.0 / self.inference, 1e-9)


def pixels_of(encoder: Encoder, images: Sequence[bytes]) -> np.ndarray:
    """The model's input for each image, made as Encoder.encode makes it."""
    settings, prep = encoder.settings, encoder.model("").spec.image_preprocessing
    decoded = [
        decode_image(
            data,
            settings.max_image_bytes,
            settings.max_image_pixels,
            prep.resize,
            settings.max_image_aspect_ratio,
        )
        for data in images
    ]
    return np.stack([preprocess(image, prep) for image in decoded])


def measure_encoder(count: int) -> EncoderFigures:
    gallery, _, source = gallery_and_queries(count, 0)
    images = [data for _, data in gallery]
    chunks = [images[i : i + BATCH] for i in range(0, len(images), BATCH)]
    settings = EncoderSettings(
        metrics_port=-1, intra_op_threads=1, model_repository=REPO / "model_repository"
    )
    core, _ = two_cores()
    with pinned(core):
        encoder = Encoder(settings, ServiceMetrics("bench"))
        try:
            encoder.encode("", chunks[0])  # warm-up: first-call allocations
            end_to_end = measure_rate(len(images), lambda: [encoder.encode("", c) for c in chunks])
            pixels = pixels_of(encoder, images)
            backend = encoder.model("").backend
            blocks = [pixels[i : i + BATCH] for i in range(0, len(pixels), BATCH)]
            inference = measure_rate(len(images), lambda: [backend.infer(b) for b in blocks])
        finally:
            encoder.close()
    return EncoderFigures(source, len(images), core, end_to_end, inference)
