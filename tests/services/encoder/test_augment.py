"""Test-time augmentation through the real encoder and ONNX model: a mirrored image embeds as
the original does, and the embedding is the normalised mean of the two views' embeddings."""

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from imsearch.core.metrics import ServiceMetrics
from lab.zoo.variants import write_augmented_variant
from services.encoder.engine import Encoder
from services.encoder.model_spec import ModelSpec
from services.encoder.settings import EncoderSettings
from tests.helpers import MODEL_REPOSITORY, jpeg

BASE = "efficientnet_lite0"


def mirrored(data: bytes) -> bytes:
    out = io.BytesIO()
    ImageOps.mirror(Image.open(io.BytesIO(data))).save(out, format="PNG")  # lossless: only the flip
    return out.getvalue()


@pytest.fixture(scope="module")
def encoder(tmp_path_factory: pytest.TempPathFactory) -> Encoder:
    repository = tmp_path_factory.mktemp("repository")
    shutil.copytree(MODEL_REPOSITORY / BASE, repository / BASE)
    variant = write_augmented_variant(repository, BASE, ("hflip",))
    assert (variant.name, variant.runs) == (f"{BASE}_hflip", BASE)
    assert not (repository / variant.name / "1").exists()  # only a spec: it runs the base's ONNX
    settings = EncoderSettings(metrics_port=-1, model_repository=repository, intra_op_threads=1)
    return Encoder(settings, ServiceMetrics("test"))


def test_the_flip_variant_is_the_mean_of_both_views(encoder: Encoder) -> None:
    image = io.BytesIO()
    Image.open(io.BytesIO(jpeg(3, size=(320, 240)))).save(image, format="PNG")
    original = image.getvalue()
    _, plain = encoder.encode(BASE, [original, mirrored(original)])
    _, both = encoder.encode(f"{BASE}_hflip", [original, mirrored(original)])
    expected = (plain[0] + plain[1]) / np.linalg.norm(plain[0] + plain[1])
    # Equal but for resampling: the centre crop of a mirror may sit a pixel off the mirrored crop.
    assert float(both[0] @ expected) > 0.9995
    assert float(both[0] @ both[1]) > 0.999  # a mirrored query embeds as the original
    assert float(plain[0] @ plain[1]) < float(both[0] @ both[1])  # the plain model tells them apart


def test_variants_of_variants_and_other_runtimes_are_refused(tmp_path: Path) -> None:
    shutil.copytree(MODEL_REPOSITORY / BASE, tmp_path / BASE)
    write_augmented_variant(tmp_path, BASE, ("hflip",))
    with pytest.raises(ValueError, match="itself a variant"):
        write_augmented_variant(tmp_path, f"{BASE}_hflip", ("hflip",))
    spec = ModelSpec.load(MODEL_REPOSITORY / "color_histogram").model_dump()
    with pytest.raises(ValueError, match="for ONNX image models"):
        ModelSpec.model_validate({**spec, "test_time_augmentation": ["hflip"]})
