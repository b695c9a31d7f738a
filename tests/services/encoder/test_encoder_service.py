"""The encoder over real gRPC on loopback, with the real EfficientNet-Lite0 ONNX model."""

import io
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.request import urlopen

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from PIL import Image

from imsearch.v1 import encoder_pb2, encoder_pb2_grpc
from services.encoder.app import EncoderApp, start_encoder
from services.encoder.settings import EncoderSettings
from tests.helpers import MODEL_REPOSITORY, huge_png_header, jpeg, png, truncated_jpeg


@pytest.fixture(scope="module")
def encoder_app() -> Iterator[EncoderApp]:
    app = start_encoder(
        EncoderSettings(
            listen="127.0.0.1:0",
            metrics_port=0,
            model_repository=MODEL_REPOSITORY,
            max_images_per_request=8,
            max_image_bytes=2_000_000,
        )
    )
    yield app
    app.stop()


@pytest.fixture(scope="module")
def channel(encoder_app: EncoderApp) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(encoder_app.address) as ch:
        yield ch


@pytest.fixture
def stub(channel: grpc.Channel) -> encoder_pb2_grpc.EncoderServiceStub:
    return encoder_pb2_grpc.EncoderServiceStub(channel)


def encode(stub: encoder_pb2_grpc.EncoderServiceStub, *images: bytes, model: str = "") -> np.ndarray:
    response = stub.Encode(encoder_pb2.EncodeRequest(model=model, images=list(images)))
    return np.asarray([e.values for e in response.embeddings], dtype=np.float32)


def test_list_models_describes_the_default_model(stub: encoder_pb2_grpc.EncoderServiceStub) -> None:
    models = {m.name: m for m in stub.ListModels(encoder_pb2.ListModelsRequest()).models}
    model = models["efficientnet_lite0"]
    assert (model.dim, model.is_default, model.backend) == (1280, True, "onnxruntime")
    assert model.preprocessing.crop_size == 224
    assert "pretrained" in model.weights
    histogram = models["color_histogram"]
    assert (histogram.dim, histogram.is_default, histogram.backend) == (512, False, "builtin")


def test_colour_histogram_is_served_like_a_model(stub: encoder_pb2_grpc.EncoderServiceStub) -> None:
    red = Image.new("RGB", (120, 90), (230, 20, 20))
    mostly_red = Image.new("RGB", (120, 90), (235, 25, 15))
    mostly_red.paste((20, 200, 20), (0, 0, 40, 90))  # a green third
    blue = Image.new("RGB", (100, 100), (20, 20, 230))
    vectors = encode(stub, *(image_bytes(i) for i in (red, mostly_red, blue)), model="color_histogram")
    assert vectors.shape == (3, 512)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert float(vectors[0] @ vectors[1]) > float(vectors[0] @ vectors[2])


def image_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_embeddings_are_unit_length_and_deterministic(stub: encoder_pb2_grpc.EncoderServiceStub) -> None:
    first = encode(stub, jpeg(1), jpeg(2), png(3))
    assert first.shape == (3, 1280)
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(encode(stub, jpeg(1))[0], first[0], atol=1e-5)
    assert float(first[0] @ first[1]) < 0.999  # different images, different embeddings


def test_concurrent_requests_get_their_own_embeddings(stub: encoder_pb2_grpc.EncoderServiceStub) -> None:
    images = [jpeg(seed) for seed in range(12)]
    alone = [encode(stub, image)[0] for image in images]
    with ThreadPoolExecutor(12) as pool:
        together = list(pool.map(lambda image: encode(stub, image)[0], images))
    for a, b in zip(alone, together, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.parametrize(
    ("images", "code", "message"),
    [
        ([b""], grpc.StatusCode.INVALID_ARGUMENT, "image 0: image is empty"),
        ([jpeg(), b"GIF89a nonsense"], grpc.StatusCode.INVALID_ARGUMENT, "image 1: data is not a decodable"),
        ([truncated_jpeg()], grpc.StatusCode.INVALID_ARGUMENT, "could not be decoded"),
        ([huge_png_header()], grpc.StatusCode.INVALID_ARGUMENT, "pixel limit"),
        ([b"\xff" * 2_000_001], grpc.StatusCode.RESOURCE_EXHAUSTED, "byte limit"),
        ([], grpc.StatusCode.INVALID_ARGUMENT, "no images"),
        ([jpeg()] * 9, grpc.StatusCode.INVALID_ARGUMENT, "over the limit of 8"),
    ],
)
def test_bad_requests_get_clear_errors_and_the_server_stays_up(
    stub: encoder_pb2_grpc.EncoderServiceStub, images: list[bytes], code: grpc.StatusCode, message: str
) -> None:
    with pytest.raises(grpc.RpcError) as error:
        stub.Encode(encoder_pb2.EncodeRequest(images=images))
    assert error.value.code() == code
    assert message in error.value.details()
    assert encode(stub, jpeg()).shape == (1, 1280)


def test_unknown_model_is_not_found(stub: encoder_pb2_grpc.EncoderServiceStub) -> None:
    with pytest.raises(grpc.RpcError) as error:
        encode(stub, jpeg(), model="no_such_model")
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    assert "efficientnet_lite0" in error.value.details()


@pytest.mark.parametrize("name", ["../efficientnet_lite0", "/etc/passwd", "a:b", "x" * 5000])
def test_bad_model_names_are_invalid(stub: encoder_pb2_grpc.EncoderServiceStub, name: str) -> None:
    with pytest.raises(grpc.RpcError) as error:
        encode(stub, jpeg(), model=name)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "model name" in error.value.details()


def test_health_and_reflection(channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    (answer,) = reflection.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")])
    )
    names = {s.name for s in answer.list_services_response.service}
    assert {"imsearch.v1.EncoderService", "grpc.health.v1.Health"} <= names


def test_metrics_endpoint_reports_rpcs_stages_and_batches(
    encoder_app: EncoderApp, stub: encoder_pb2_grpc.EncoderServiceStub
) -> None:
    encode(stub, jpeg())
    with urlopen(f"http://127.0.0.1:{encoder_app.metrics_port}/metrics") as response:
        text = response.read().decode()
    assert 'grpc_server_handled_total{grpc_code="OK",grpc_method="Encode"' in text
    assert 'grpc_server_handled_total{grpc_code="INVALID_ARGUMENT",grpc_method="Encode"' in text
    for stage in ("decode", "preprocess", "encode"):
        assert f'imsearch_stage_seconds_count{{service="encoder",stage="{stage}"}}' in text
    assert 'imsearch_encoder_batch_size_count{model="efficientnet_lite0"}' in text
    assert 'imsearch_encoder_batch_fill_count{model="efficientnet_lite0"}' in text


def listening_addresses(port: int) -> set[str]:
    """The local addresses (hex, as /proc/net/tcp writes them) with a socket listening on `port`."""
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    found = set()
    for row in rows:
        local, state = row.split()[1], row.split()[3]
        address, hex_port = local.split(":")
        if int(hex_port, 16) == port and state == "0A":  # 0A: LISTEN
            found.add(address)
    return found


def test_metrics_listen_on_loopback_by_default(encoder_app: EncoderApp) -> None:
    assert encoder_app.metrics_port
    assert listening_addresses(encoder_app.metrics_port) == {"0100007F"}  # 127.0.0.1, not 0.0.0.0


def test_regions_come_one_per_image(stub: encoder_pb2_grpc.EncoderServiceStub) -> None:
    whole, box = encoder_pb2.Box(), encoder_pb2.Box(x=0.25, y=0.25, width=0.5, height=0.5)
    with pytest.raises(grpc.RpcError) as error:
        stub.Encode(encoder_pb2.EncodeRequest(images=[jpeg(1), jpeg(2)], regions=[box]))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "1 regions for 2 images" in error.value.details()
    both = stub.Encode(encoder_pb2.EncodeRequest(images=[jpeg(1), jpeg(1)], regions=[whole, box]))
    plain = encode(stub, jpeg(1))[0]
    first, second = (np.asarray(e.values) for e in both.embeddings)
    np.testing.assert_allclose(first, plain, atol=1e-5)  # an unset box: the whole image
    assert float(second @ plain) < 0.999  # the centre quarter is another picture
