"""Every model family exports to ONNX that matches PyTorch, in Triton's layout, and serves.

Models whose real weights are installed here use them; the others are the real architecture
with random weights (export, parity and serving only: no accuracy is claimed for them).
The heaviest (ViT-B/16, DINOv2-B/14, CLIP ViT-B/32) are marked slow: `pytest -m slow`.
"""

from pathlib import Path

import numpy as np
import pytest

from imsearch.core.metrics import ServiceMetrics
from lab.zoo.export import ExportResult, export
from lab.zoo.recipes import RECIPES
from services.encoder.engine import Encoder
from services.encoder.model_spec import ModelSpec
from services.encoder.settings import EncoderSettings
from tests.helpers import jpeg

FAST = sorted(name for name, recipe in RECIPES.items() if not recipe.slow)
SLOW = sorted(name for name, recipe in RECIPES.items() if recipe.slow)


def weights_for(name: str) -> str:
    return "pretrained" if RECIPES[name].has_offline_weights() else "random"


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, ExportResult]]:
    out = tmp_path_factory.mktemp("zoo")
    return out, {
        name: export(RECIPES[name], out, weights_for(name), max_batch=32, instances=2) for name in FAST
    }


@pytest.mark.parametrize("name", FAST)
def test_export_matches_pytorch_and_writes_triton_layout(
    exported: tuple[Path, dict[str, ExportResult]], name: str
) -> None:
    out, results = exported
    result = results[name]
    assert result.max_abs_diff <= 1e-4
    assert result.onnx_path == out / name / "1" / "model.onnx"
    config = (out / name / "config.pbtxt").read_text()
    for line in (
        'platform: "onnxruntime_onnx"',
        "max_batch_size: 32",
        "dynamic_batching",
        "count: 2, kind: KIND_GPU",
    ):
        assert line in config
    spec = ModelSpec.load(out / name)
    assert spec.dim == RECIPES[name].dim
    assert ("RANDOM INIT" in spec.weights) == (weights_for(name) == "random")


def test_every_exported_model_serves_through_the_encoder(
    exported: tuple[Path, dict[str, ExportResult]],
) -> None:
    out, _ = exported
    encoder = Encoder(EncoderSettings(model_repository=out, metrics_port=-1), ServiceMetrics("zoo"))
    try:
        assert sorted(encoder.models) == FAST  # the export folder holds only these
        for name in FAST:
            spec, vectors = encoder.encode(name, [jpeg(1), jpeg(2), jpeg(3)])  # batch 3: dynamic axis
            assert vectors.shape == (3, spec.dim)
            np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    finally:
        encoder.close()


def test_fp16_export_stays_close_to_fp32(tmp_path: Path) -> None:
    result = export(RECIPES["efficientnet_lite0"], tmp_path, "pretrained", fp16=True)
    assert result.max_abs_diff <= 5e-2 * result.output_scale


@pytest.mark.slow
@pytest.mark.parametrize("name", SLOW)
def test_heavy_exports(tmp_path: Path, name: str) -> None:
    result = export(RECIPES[name], tmp_path, weights_for(name))
    print(f"{name}: {result.describe()}")
    assert result.max_abs_diff <= 1e-4


@pytest.mark.slow
def test_clip_text_tower_export(tmp_path: Path) -> None:
    from lab.zoo.text import export_text_tower

    result = export_text_tower(tmp_path, "random")
    print(f"clip_vit_b32_text: {result.describe()}")
    assert result.max_abs_diff <= 1e-4
    assert "TYPE_INT64" in (tmp_path / "clip_vit_b32_text" / "config.pbtxt").read_text()


def test_a_torchvision_style_checkpoint_loads_by_path(tmp_path: Path) -> None:
    """MobileNetV3 from a checkpoint with torchvision's keys, classifier included (and dropped)."""
    import torch

    from lab.zoo.mobilenet_v3 import build_mobilenet_v3

    source = build_mobilenet_v3("random")
    for parameter in source.parameters():
        torch.nn.init.normal_(parameter, std=0.05)  # weights unlike a fresh random build
    state = {**source.state_dict(), "classifier.0.weight": torch.zeros(1280, 960)}
    torch.save(state, tmp_path / "mobilenet_v3_large.pth")
    loaded = build_mobilenet_v3(str(tmp_path / "mobilenet_v3_large.pth"))
    images = torch.rand(2, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(loaded(images), source(images))
        assert not torch.equal(build_mobilenet_v3("random")(images), source(images))
