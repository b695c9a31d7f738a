"""An ensemble model through the real encoder: its embedding is its members' unit embeddings
concatenated (1/sqrt(k) each), so its cosine is their mean cosine; it is listed and served like
any model, and a spec that does not add up is refused at start."""

import shutil
from pathlib import Path

import grpc
import numpy as np
import pytest

from imsearch.core.metrics import ServiceMetrics
from imsearch.v1 import encoder_pb2, encoder_pb2_grpc
from lab.zoo.variants import write_ensemble
from services.encoder.app import start_encoder
from services.encoder.engine import Encoder
from services.encoder.model_spec import SPEC_FILE, ModelSpec
from services.encoder.settings import EncoderSettings
from tests.helpers import MODEL_REPOSITORY, jpeg

MEMBERS = ("efficientnet_lite0", "color_histogram")


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    for member in MEMBERS:
        shutil.copytree(MODEL_REPOSITORY / member, tmp_path / member)
    spec = write_ensemble(tmp_path, "pair", MEMBERS)
    assert spec.dim == 1280 + 512
    return tmp_path


def test_the_ensemble_is_its_members_joined(repository: Path) -> None:
    encoder = Encoder(EncoderSettings(metrics_port=-1, model_repository=repository), ServiceMetrics("t"))
    images = [jpeg(1), jpeg(2)]
    spec, joined = encoder.encode("pair", images)
    assert (spec.name, joined.shape) == ("pair", (2, 1280 + 512))
    parts = [encoder.encode(member, images)[1] for member in MEMBERS]
    np.testing.assert_allclose(joined, np.concatenate(parts, axis=1) / np.sqrt(2), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(joined, axis=1), 1.0, atol=1e-5)
    mean_cosine = np.mean([float(p[0] @ p[1]) for p in parts])
    assert float(joined[0] @ joined[1]) == pytest.approx(mean_cosine, abs=1e-5)
    encoder.close()


def test_serving_only_the_ensemble_loads_its_members(repository: Path) -> None:
    settings = EncoderSettings(
        metrics_port=-1, model_repository=repository, models=["pair"], default_model="pair"
    )
    encoder = Encoder(settings, ServiceMetrics("t"))
    assert set(encoder.specs()) == {"pair", *MEMBERS}
    assert encoder.encode("", [jpeg(4)])[0].name == "pair"
    encoder.close()


def test_the_ensemble_is_listed_and_served(repository: Path) -> None:
    app = start_encoder(EncoderSettings(listen="127.0.0.1:0", metrics_port=-1, model_repository=repository))
    try:
        stub = encoder_pb2_grpc.EncoderServiceStub(grpc.insecure_channel(app.address))
        listed = {m.name: (m.dim, m.backend) for m in stub.ListModels(encoder_pb2.ListModelsRequest()).models}
        assert listed["pair"] == (1792, "ensemble")
        answer = stub.Encode(encoder_pb2.EncodeRequest(images=[jpeg(3)], model="pair"))
        assert (answer.model, len(answer.embeddings[0].values)) == ("pair", 1792)
    finally:
        app.stop()


def test_an_ensemble_that_does_not_add_up_is_refused(repository: Path) -> None:
    spec = ModelSpec.load(repository / "pair")
    (repository / "pair" / SPEC_FILE).write_text(spec.model_copy(update={"dim": 1000}).model_dump_json())
    with pytest.raises(ValueError, match="is not its members'"):
        Encoder(EncoderSettings(metrics_port=-1, model_repository=repository), ServiceMetrics("t"))
    shutil.rmtree(repository / "color_histogram")
    (repository / "pair" / SPEC_FILE).write_text(spec.model_dump_json())
    with pytest.raises(ValueError, match="color_histogram are not served here"):
        Encoder(EncoderSettings(metrics_port=-1, model_repository=repository), ServiceMetrics("t"))
    with pytest.raises(ValueError, match="two or more different members"):
        write_ensemble(repository, "one", ("efficientnet_lite0",))
