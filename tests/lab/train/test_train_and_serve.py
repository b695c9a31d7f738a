"""`imsearch train` end to end on a small image set: split, train, checkpoint, curves, export, serve."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from imsearch.core.metrics import ServiceMetrics
from lab.eval.protocol import split
from lab.train.runner import Kind, TrainJob, train
from lab.train.splits import training_split
from lab.zoo.recipes import RECIPES
from services.encoder.engine import Encoder
from services.encoder.settings import EncoderSettings
from tests.helpers import MODEL_REPOSITORY

SHAPES = ("disc", "bar", "cross")


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three classes of drawn shapes on random backgrounds, 14 images each."""
    root = tmp_path_factory.mktemp("shapes")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:96, 0:128]
    for name in SHAPES:
        (root / name).mkdir()
        for i in range(14):
            pixels = (rng.random((96, 128, 3)) * 120).astype(np.uint8)
            cy, cx = rng.integers(35, 60), rng.integers(45, 85)
            mask = {
                "disc": (yy - cy) ** 2 + (xx - cx) ** 2 < 400,
                "bar": (abs(yy - cy) < 6) & (abs(xx - cx) < 35),
                "cross": ((abs(yy - cy) < 4) & (abs(xx - cx) < 25))
                | ((abs(xx - cx) < 4) & (abs(yy - cy) < 25)),
            }[name]
            pixels[mask] = (240, 240, 60)
            Image.fromarray(pixels).save(root / name / f"{i}.jpg", quality=92)
    return root


def test_training_split_keeps_every_query_out(shapes: Path) -> None:
    data = split(shapes, queries_per_class=3, seed=4)
    parts = training_split(data, seed=4)
    queries = {item.path for item in data.queries}
    assert not queries & {item.path for item in parts.train + parts.validation}
    assert sorted(item.path for item in parts.train + parts.validation) == sorted(
        item.path for item in data.gallery
    )
    assert {item.label for item in parts.validation} == set(SHAPES)


@pytest.mark.parametrize(
    ("kind", "tune_blocks"), [("head", 0), ("triplet", 0), ("autoencoder", 0), ("head", 1)],
    ids=["head", "triplet", "autoencoder", "head-tuning-a-block"],
)  # fmt: skip
def test_trained_model_is_exported_and_served(
    shapes: Path, tmp_path: Path, kind: Kind, tune_blocks: int
) -> None:
    repository = tmp_path / "models"
    repository.mkdir()
    (repository / "efficientnet_lite0").symlink_to(MODEL_REPOSITORY / "efficientnet_lite0")
    job = TrainJob(kind, shapes, f"{kind}_shapes", repository, tmp_path / "out", "efficientnet_lite0",
                   queries_per_class=3, cache=tmp_path / "cache", tune_blocks=tune_blocks)  # fmt: skip
    result = train(job)
    assert result.checkpoint.is_file() and (tmp_path / "out" / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert result.train_images + result.validation_images == 3 * 11
    assert "max |torch - onnxruntime|" in result.export_check
    if tune_blocks:  # the exported backbone carries the tuned weights of its last block only
        saved = torch.load(result.checkpoint, weights_only=True)["backbone_state"]
        pretrained = RECIPES["efficientnet_lite0"].build("pretrained").state_dict()
        parts = [key.split(".") for key, value in saved.items() if not torch.equal(value, pretrained[key])]
        changed = {".".join(p[1:3]) if p[1] == "_blocks" else p[1] for p in parts}
        assert changed == {"_blocks.15", "_conv_head", "_bn1"}, changed
    encoder = Encoder(
        EncoderSettings(
            model_repository=repository, models=[job.name], default_model=job.name, metrics_port=-1
        ),
        ServiceMetrics("test"),
    )
    try:
        images = [p.read_bytes() for p in sorted((shapes / "disc").iterdir())[:2]]
        _, vectors = encoder.encode(job.name, images)
        assert vectors.shape == (2, 512 if kind != "autoencoder" else 256)
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
        assert encoder.model(job.name).spec.weights == f"checkpoint {job.name}.pt"
    finally:
        encoder.close()
