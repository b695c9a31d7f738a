"""Static int8 quantization of the default model: a real QDQ model, calibrated on gallery
images only, close to the float32 one, and served by the encoder like any model."""

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from imsearch.core.metrics import ServiceMetrics
from lab.eval.protocol import split
from lab.zoo.quantize import calibration_images, quantize
from services.encoder.engine import Encoder
from services.encoder.settings import EncoderSettings
from tests.helpers import MODEL_REPOSITORY, jpeg

BASE = "efficientnet_lite0"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three classes of four photos-like images (smooth random JPEGs)."""
    root = tmp_path_factory.mktemp("labelled")
    for c, label in enumerate(("a", "b", "c")):
        (root / label).mkdir()
        for i in range(4):
            (root / label / f"{i}.jpg").write_bytes(jpeg(10 * c + i))
    return root


def test_calibration_reads_the_gallery_never_the_queries(dataset: Path) -> None:
    chosen = calibration_images(dataset, 100, queries_per_class=1, seed=0)
    queries = {item.path for item in split(dataset, 1, 0).queries}
    assert len(chosen) == 9 and not queries & set(chosen)


def test_the_int8_model_is_quantized_close_and_served(dataset: Path, tmp_path: Path) -> None:
    shutil.copytree(MODEL_REPOSITORY / BASE, tmp_path / BASE)
    result = quantize(tmp_path, BASE, calibration_images(dataset, 8, 1, 0))
    assert result.spec.name == f"{BASE}_int8" and result.calibration_images == 8
    graph = onnx.load(str(result.onnx_path)).graph
    operators = {node.op_type for node in graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= operators
    int8_weights = [t for t in graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert len(int8_weights) > 30  # every convolution's weights, per channel
    assert result.min_cosine > 0.9, result.describe()
    assert (tmp_path / result.spec.name / "config.pbtxt").is_file()

    settings = EncoderSettings(metrics_port=-1, model_repository=tmp_path, intra_op_threads=1)
    encoder = Encoder(settings, ServiceMetrics("test"))
    try:
        images = [jpeg(s) for s in (1, 2, 3)]
        _, full = encoder.encode(BASE, images)
        _, small = encoder.encode(result.spec.name, images)
        assert small.shape == full.shape
        cosines = np.sum(full * small, axis=1)
        assert cosines.min() > 0.9, cosines
        assert not np.allclose(full, small, atol=1e-4)  # really another network
    finally:
        encoder.close()
