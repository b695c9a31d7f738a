"""The encoder with a real Triton server (the bundled tritonserver binary, on CPU) behind it."""

import re
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as triton_grpc

from devtools.ports import free_port
from devtools.triton.cpu_repository import build_repository
from devtools.triton.server import TritonServer
from imsearch.core.errors import NotFound, Unavailable
from imsearch.core.metrics import ServiceMetrics
from services.encoder.backends.triton import TritonBackend, to_domain_error
from services.encoder.engine import Encoder
from services.encoder.settings import EncoderSettings
from tests.helpers import MODEL_REPOSITORY, jpeg, png

MODEL = "efficientnet_lite0"


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("triton-cpu")
    assert MODEL in build_repository(MODEL_REPOSITORY, out, max_batch=16, queue_delay_us=20_000)
    return out


@pytest.fixture(scope="module")
def triton(repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    server = TritonServer(repository, work_dir=tmp_path_factory.mktemp("triton-work"))
    yield server
    server.stop()


def encoder_with(backend: str, triton_url: str = "") -> Encoder:
    settings = EncoderSettings(model_repository=MODEL_REPOSITORY, backend=backend, triton_url=triton_url)
    return Encoder(settings, ServiceMetrics("test"))


def test_triton_and_embedded_give_the_same_embeddings(triton: TritonServer) -> None:
    images = [jpeg(1), jpeg(2, (640, 480)), png(3, (100, 300), "RGB")]
    embedded, served = encoder_with("onnxruntime"), encoder_with("triton", triton.url)
    try:
        assert served.models[MODEL].backend.kind == "triton"
        _, local = embedded.encode(MODEL, images)
        _, remote = served.encode(MODEL, images)
    finally:
        embedded.close()
        served.close()
    assert remote.shape == (3, 1280)
    assert float(np.abs(local - remote).max()) <= 1e-5


def test_backend_reads_names_dims_and_batch_limit_from_triton(triton: TritonServer) -> None:
    backend = TritonBackend(MODEL, triton.url)
    assert (backend.output_dim, backend.max_batch_size) == (1280, 16)
    features = backend.infer(np.zeros((40, 3, 224, 224), np.float32))  # split into 16 + 16 + 8
    assert features.shape == (40, 1280)
    backend.close()


def counter(text: str, name: str) -> float:
    match = re.search(rf'^{name}{{model="{MODEL}",version="1"}} (\S+)$', text, re.MULTILINE)
    assert match, name
    return float(match.group(1))


def test_dynamic_batching_forms_batches_under_concurrent_load(triton: TritonServer) -> None:
    def scrape() -> str:
        with urllib.request.urlopen(triton.metrics_url) as response:
            return str(response.read().decode())

    def settled() -> str:
        """Triton refreshes its counters every 200 ms: wait until earlier tests' work shows."""
        last = scrape()
        while True:
            time.sleep(0.5)
            now = scrape()
            if counter(now, "nv_inference_count") == counter(last, "nv_inference_count"):
                return now
            last = now

    before = settled()
    client = triton_grpc.InferenceServerClient(triton.url)

    def one(seed: int) -> None:
        pixels = np.random.default_rng(seed).random((1, 3, 224, 224), dtype=np.float32)
        request = triton_grpc.InferInput("images", [1, 3, 224, 224], "FP32")
        request.set_data_from_numpy(pixels)
        client.infer(MODEL, [request])

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one, range(32)))
    deadline = time.monotonic() + 10  # Triton refreshes its counters periodically
    after = scrape()
    while counter(after, "nv_inference_count") - counter(before, "nv_inference_count") < 32:
        assert time.monotonic() < deadline, "Triton never counted the 32 inferences"
        time.sleep(0.1)
        after = scrape()
    inferences = counter(after, "nv_inference_count") - counter(before, "nv_inference_count")
    executions = counter(after, "nv_inference_exec_count") - counter(before, "nv_inference_exec_count")
    assert inferences == 32
    assert executions < inferences  # requests were merged into batches


def test_unknown_model_is_not_found(triton: TritonServer) -> None:
    with pytest.raises(NotFound, match="no ready model 'nope'"):
        TritonBackend("nope", triton.url)


def test_a_server_that_goes_away_is_unavailable(repository: Path, tmp_path: Path) -> None:
    with pytest.raises(Unavailable):
        TritonBackend(MODEL, f"127.0.0.1:{free_port()}")  # nothing listens there
    server = TritonServer(repository, work_dir=tmp_path)
    backend = TritonBackend(MODEL, server.url, retries=2, backoff_s=0.01)
    assert backend.infer(np.zeros((1, 3, 224, 224), np.float32)).shape == (1, 1280)
    server.stop()
    with pytest.raises(Unavailable, match="triton"):
        backend.infer(np.zeros((1, 3, 224, 224), np.float32))


def test_zoo_models_serve_the_same_through_triton(tmp_path: Path) -> None:
    """A transformer and a CNN from the zoo (random weights: parity only), Triton vs embedded."""
    from lab.zoo.export import export
    from lab.zoo.recipes import RECIPES

    source = tmp_path / "repository"
    for name in ("dinov2_s14", "mobilenet_v2"):
        export(RECIPES[name], source, "random")
    repository = tmp_path / "triton-cpu"
    assert sorted(build_repository(source, repository)) == ["dinov2_s14", "mobilenet_v2"]
    server = TritonServer(repository, work_dir=tmp_path)
    settings = {"model_repository": source, "default_model": "dinov2_s14", "metrics_port": -1}
    embedded = Encoder(EncoderSettings(**settings), ServiceMetrics("a"))
    served = Encoder(
        EncoderSettings(**settings, backend="triton", triton_url=server.url), ServiceMetrics("b")
    )
    try:
        for name in ("dinov2_s14", "mobilenet_v2"):
            _, local = embedded.encode(name, [jpeg(5), png(6, (200, 150), "RGB")])
            _, remote = served.encode(name, [jpeg(5), png(6, (200, 150), "RGB")])
            assert float(np.abs(local - remote).max()) <= 1e-5, name
    finally:
        embedded.close()
        served.close()
        server.stop()


@pytest.mark.parametrize(
    ("status", "code"),
    [
        ("StatusCode.UNAVAILABLE", "UNAVAILABLE"),
        ("StatusCode.INTERNAL", "INTERNAL"),  # a failing model: not transient, not retried
        ("StatusCode.UNKNOWN", "INTERNAL"),
        ("StatusCode.DEADLINE_EXCEEDED", "DEADLINE_EXCEEDED"),
        ("StatusCode.INVALID_ARGUMENT", "INVALID_ARGUMENT"),
        (None, "UNAVAILABLE"),  # raised by the client before reaching any server
    ],
)
def test_triton_statuses_map_to_ours(status: str | None, code: str) -> None:
    """A model that fails inside Triton is hard to cause on demand; the mapping is checked
    on the client library's own exception type."""
    from tritonclient.utils import InferenceServerException

    error = to_domain_error(InferenceServerException("boom", status=status), MODEL)
    assert error.code.name == code
