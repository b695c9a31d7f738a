"""The public SearchService through all three services (real gRPC, ONNX model, Qdrant, Redis)."""

import io
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from time import monotonic
from urllib.request import urlopen

import grpc
import numpy as np
import pytest
from google.protobuf import struct_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from PIL import Image

from cli.suite import Suite
from imsearch.client import SearchClient
from imsearch.core.structs import to_struct
from imsearch.v1 import index_pb2, search_pb2, search_pb2_grpc
from services.gateway.pipeline import STORED_ITEMS_KEY
from tests.helpers import huge_png_header, jpeg, png, truncated_jpeg


@pytest.fixture(scope="module")
def client(suite: Suite) -> Iterator[SearchClient]:
    made = SearchClient(suite.address)
    made.add_images(
        (f"img{i}", jpeg(i), {"kind": "even" if i % 2 == 0 else "odd", "n": i}) for i in range(12)
    )
    yield made
    made.close()


@pytest.fixture(scope="module")
def stub(suite: Suite) -> search_pb2_grpc.SearchServiceStub:
    return search_pb2_grpc.SearchServiceStub(grpc.insecure_channel(suite.address))


@pytest.mark.parametrize("index", ["hnsw", "lsh", "exact"])
def test_an_indexed_image_finds_itself_first_with_its_metadata(client: SearchClient, index: str) -> None:
    response = client.search(jpeg(5), top_k=3, index=index)
    top = response.results[0]
    assert (top.id, round(top.score, 3)) == ("img5", 1.0)
    assert dict(top.metadata) == {"kind": "odd", "n": 5}
    assert len(response.results) == 3
    assert response.model == "efficientnet_lite0"
    assert response.reranked == (index == "lsh")  # rerank is on by default for LSH only


def test_rerank_and_filter(client: SearchClient) -> None:
    reranked = client.search(jpeg(4), top_k=5, index="exact", rerank=True)
    plain = client.search(jpeg(4), top_k=5, index="exact", rerank=False)
    assert reranked.reranked and not plain.reranked
    assert [r.id for r in reranked.results] == [r.id for r in plain.results]
    odd = client.search(jpeg(4), top_k=12, index="hnsw", metadata_filter={"kind": "odd"})
    assert len(odd.results) == 6 and all(r.metadata["kind"] == "odd" for r in odd.results)
    nth = client.search(jpeg(4), top_k=12, index="lsh", metadata_filter={"n": 7})
    assert [r.id for r in nth.results] == ["img7"]


def test_readd_replaces_and_delete_removes(
    client: SearchClient, stub: search_pb2_grpc.SearchServiceStub
) -> None:
    stub.AddImage(search_pb2.AddImageRequest(id="swap", image=jpeg(100)))
    stub.AddImage(search_pb2.AddImageRequest(id="swap", image=png(101, (200, 200), "RGB")))
    assert client.search(png(101, (200, 200), "RGB"), top_k=1).results[0].id == "swap"
    assert client.search(jpeg(100), top_k=1).results[0].id != "swap"
    assert client.delete(["swap", "never-added"]) == 1
    assert "swap" not in {
        r.id for r in client.search(png(101, (200, 200), "RGB"), top_k=12, index="exact").results
    }


def points(client: SearchClient) -> tuple[int, int]:
    stats = client.stats()
    return stats.collection.points, stats.collection.lsh_points


def error_of(call: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as error:
        call()
    return error.value


@pytest.mark.parametrize(
    ("request_", "code", "message"),
    [
        (search_pb2.AddImageRequest(id="x", image=b""), "INVALID_ARGUMENT", "image is empty"),
        (search_pb2.AddImageRequest(id="x", image=b"<html>"), "INVALID_ARGUMENT", "not a decodable image"),
        (
            search_pb2.AddImageRequest(id="x", image=truncated_jpeg()),
            "INVALID_ARGUMENT",
            "could not be decoded",
        ),
        (search_pb2.AddImageRequest(id="x", image=huge_png_header()), "INVALID_ARGUMENT", "pixel limit"),
        (search_pb2.AddImageRequest(id="", image=jpeg()), "INVALID_ARGUMENT", "id is empty"),
        (search_pb2.AddImageRequest(id="é" * 200, image=jpeg()), "INVALID_ARGUMENT", "longer than 256 bytes"),
    ],
)
def test_bad_adds_are_refused_and_nothing_is_stored(
    client: SearchClient, stub: search_pb2_grpc.SearchServiceStub, request_: object, code: str, message: str
) -> None:
    before = points(client)
    error = error_of(lambda: stub.AddImage(request_))
    assert error.code().name == code and message in error.details(), error.details()
    assert points(client) == before


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"image": b"not an image"}, "not a decodable image"),
        ({"image": jpeg(), "top_k": 1001}, "top_k must be between 1 and 1000"),
        ({"image": jpeg(), "index": 7}, "unknown index 7"),
        ({"image": jpeg(), "rerank": 9}, "unknown rerank mode"),
        (
            {"image": jpeg(), "filter": struct_pb2.Struct(fields={"n": struct_pb2.Value(number_value=0.5)})},
            "filter value",
        ),
    ],
)
def test_bad_searches_are_invalid_argument(
    stub: search_pb2_grpc.SearchServiceStub, fields: dict[str, object], message: str
) -> None:
    error = error_of(lambda: stub.Search(search_pb2.SearchRequest(**fields)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and message in error.details(), error.details()
    assert stub.Search(search_pb2.SearchRequest(image=jpeg(1), top_k=1)).results[0].id == "img1"  # still up


def stored_items(error: grpc.RpcError) -> int:
    trailing: dict[str, str] = dict(error.trailing_metadata() or ())
    return int(trailing[STORED_ITEMS_KEY])


@pytest.mark.parametrize(
    ("bad", "code", "message"),
    [
        (search_pb2.AddImageRequest(id="", image=jpeg()), "INVALID_ARGUMENT", "item 20: id is empty"),
        (
            search_pb2.AddImageRequest(id="bulk20", image=b"corrupt"),
            "INVALID_ARGUMENT",
            "item 20 (id 'bulk20'): data is not a decodable image",
        ),
        (
            search_pb2.AddImageRequest(id="bulk20", image=b"\0" * (20 * 1024 * 1024 + 1)),
            "RESOURCE_EXHAUSTED",
            "item 20 (id 'bulk20'): image is 20971521 bytes, over the 20971520-byte limit",
        ),
    ],
)
def test_bulk_add_stores_exactly_the_items_before_the_first_bad_one(
    client: SearchClient,
    stub: search_pb2_grpc.SearchServiceStub,
    bad: search_pb2.AddImageRequest,
    code: str,
    message: str,
) -> None:
    before = points(client)[0]
    items = [search_pb2.AddImageRequest(id=f"bulk{i}", image=jpeg(200 + i)) for i in range(40)]
    items[20] = bad
    error = error_of(lambda: stub.AddImages(iter(items)))
    assert error.code().name == code
    assert (error.details() or "").startswith(message), error.details()
    assert "items 0-19 were stored, none after" in error.details()
    assert stored_items(error) == 20
    assert points(client) == (before + 20, before + 20)
    client.delete([f"bulk{i}" for i in range(40)])


def test_a_duplicate_id_in_one_stream_is_refused(stub: search_pb2_grpc.SearchServiceStub) -> None:
    duplicate = [search_pb2.AddImageRequest(id="dup", image=jpeg(300))] * 2
    error = error_of(lambda: stub.AddImages(iter(duplicate)))
    assert "item 1 (id 'dup'): id 'dup' appears twice" in error.details()
    assert stored_items(error) == 1


def noise_png(seed: int, side: int) -> bytes:
    """A PNG that does not compress: about 3 x side^2 bytes."""
    pixels = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def test_big_images_in_one_stream_are_all_stored(
    client: SearchClient, stub: search_pb2_grpc.SearchServiceStub
) -> None:
    """Five 18 MB files once made one 90 MB encode call (over gRPC's 64 MiB) and failed after
    all five had been stored; batches are now bounded in bytes as well as in count."""
    before = points(client)[0]
    images = [noise_png(i, 2450) for i in range(5)]
    assert all(17_000_000 < len(image) < 20 * 1024 * 1024 for image in images)
    response = stub.AddImages(
        iter(search_pb2.AddImageRequest(id=f"big{i}", image=im) for i, im in enumerate(images))
    )
    assert response.added == 5
    assert points(client)[0] == before + 5
    client.delete([f"big{i}" for i in range(5)])


def test_the_callers_deadline_reaches_the_encoder(suite: Suite, monkeypatch: pytest.MonkeyPatch) -> None:
    """The gateway gives each hop the caller's remaining time (not its own 30 s): with inference
    stuck, the encoder gives up at the caller's deadline and counts DEADLINE_EXCEEDED (with a
    30 s hop it would still be waiting). That expired work is then dropped before decoding or
    inference is checked in test_batcher.py."""
    encode_late = {
        "grpc_service": "imsearch.v1.EncoderService",
        "grpc_method": "Encode",
        "grpc_code": "DEADLINE_EXCEEDED",
    }
    registry = suite.encoder.metrics.registry
    before = registry.get_sample_value("grpc_server_handled_total", encode_late) or 0.0
    batcher = suite.encoder.core.models["efficientnet_lite0"].batcher
    released = threading.Event()
    infer = batcher._infer

    def stuck(pixels: np.ndarray) -> np.ndarray:  # a hung accelerator: a fault not caused for real here
        released.wait(30)
        return infer(pixels)

    monkeypatch.setattr(batcher, "_infer", stuck)
    gateway = search_pb2_grpc.SearchServiceStub(grpc.insecure_channel(suite.address))
    try:
        with pytest.raises(grpc.RpcError) as error:
            gateway.Search(search_pb2.SearchRequest(image=jpeg(7)), timeout=0.5)
        assert error.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED, error.value.details()
        give_up = monotonic() + 10  # the encoder's handler ends at the same deadline, just after
        while (registry.get_sample_value("grpc_server_handled_total", encode_late) or 0.0) <= before:
            assert monotonic() < give_up, "the encoder did not end the call at the caller's deadline"
            threading.Event().wait(0.02)
    finally:
        released.set()


def test_calls_in_flight_are_exported_for_autoscaling(suite: Suite, monkeypatch: pytest.MonkeyPatch) -> None:
    """While inference is held, the encoder reports one Encode and the gateway one Search in
    flight (`grpc_server_in_flight`); both go back to 0 when it is released."""
    batcher = suite.encoder.core.models["efficientnet_lite0"].batcher
    released = threading.Event()
    infer = batcher._infer
    monkeypatch.setattr(batcher, "_infer", lambda pixels: (released.wait(30), infer(pixels))[1])
    encode = {"grpc_service": "imsearch.v1.EncoderService", "grpc_method": "Encode"}
    search = {"grpc_service": "imsearch.v1.SearchService", "grpc_method": "Search"}

    def in_flight(app: object, labels: dict[str, str]) -> float:
        return app.metrics.registry.get_sample_value("grpc_server_in_flight", labels) or 0.0  # type: ignore[attr-defined]

    gateway = search_pb2_grpc.SearchServiceStub(grpc.insecure_channel(suite.address))
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(gateway.Search, search_pb2.SearchRequest(image=jpeg(7)), timeout=30)
        give_up = monotonic() + 10
        while in_flight(suite.encoder, encode) < 1 and monotonic() < give_up:
            threading.Event().wait(0.01)
        assert (in_flight(suite.encoder, encode), in_flight(suite.gateway, search)) == (1.0, 1.0)
        released.set()
        assert pending.result().model == "efficientnet_lite0"
    assert (in_flight(suite.encoder, encode), in_flight(suite.gateway, search)) == (0.0, 0.0)


def test_stats_health_and_metrics(suite: Suite, client: SearchClient) -> None:
    stats = client.stats()
    assert (stats.model, stats.dim, stats.collection.dim) == ("efficientnet_lite0", 1280, 1280)
    health = health_pb2_grpc.HealthStub(grpc.insecure_channel(suite.address))
    assert health.Check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.SERVING
    client.search(jpeg(1), index="lsh")
    text = ""
    for url in suite.metrics_urls():
        with urlopen(url) as response:
            text += response.read().decode()
    for name in (
        'grpc_server_handling_seconds_count{grpc_method="Search",grpc_service="imsearch.v1.SearchService"}',
        'imsearch_stage_seconds_count{service="gateway",stage="encode"}',
        'imsearch_stage_seconds_count{service="gateway",stage="index_search"}',
        'imsearch_stage_seconds_count{service="gateway",stage="rerank"}',
        'imsearch_stage_seconds_count{service="index",stage="search_lsh"}',
        'imsearch_stage_seconds_count{service="encoder",stage="decode"}',
        'imsearch_index_points{collection="efficientnet_lite0",index="lsh"}',
    ):
        assert name in text, name


def test_index_kind_is_reported(client: SearchClient) -> None:
    assert client.search(jpeg(1), index="lsh").index == index_pb2.INDEX_KIND_LSH


def raw_call(suite: Suite, method: str, payload: bytes) -> grpc.RpcError:
    channel = grpc.insecure_channel(suite.address)
    call: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
        f"/imsearch.v1.SearchService/{method}"
    )
    return error_of(lambda: call(payload, timeout=30))


def nested_struct(depth: int) -> struct_pb2.Struct:
    inner: dict[str, object] = {"leaf": 1}
    for _ in range(depth):
        inner = {"a": inner}
    return to_struct(inner)


def test_malformed_messages_are_invalid_argument_not_internal(suite: Suite, client: SearchClient) -> None:
    invalid_utf8_id = b"\x0a\x02\xff\xfe"  # field 1 (id), 2 bytes that are not UTF-8
    error = raw_call(suite, "AddImage", invalid_utf8_id + b"\x12\x01x")
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert "not a valid message" in (error.details() or "")
    assert raw_call(suite, "Search", b"\xff" * 64).code() == grpc.StatusCode.INVALID_ARGUMENT
    client.stats()  # still up


@pytest.mark.parametrize("depth", [20, 200])
def test_deeply_nested_metadata_is_invalid_argument(suite: Suite, client: SearchClient, depth: int) -> None:
    request = search_pb2.AddImageRequest(id="deep", image=jpeg(1))
    if depth < 90:
        request.metadata.CopyFrom(nested_struct(depth))
        payload = request.SerializeToString()
    else:  # past protobuf's own recursion limit: only raw bytes can say it
        payload = request.SerializeToString() + _nested_bytes(depth)
    before = points(client)
    error = raw_call(suite, "AddImage", payload)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert points(client) == before


def _nested_bytes(depth: int) -> bytes:
    """Field 3 (metadata, a Struct) nested `depth` times through Value.struct_value."""
    struct = b""
    for _ in range(depth):
        value = b"\x2a" + _varint(len(struct)) + struct  # Value.struct_value = 5
        entry = b"\x0a\x01a" + b"\x12" + _varint(len(value)) + value  # MapEntry key=1, value=2
        struct = b"\x0a" + _varint(len(entry)) + entry  # Struct.fields = 1
    return b"\x1a" + _varint(len(struct)) + struct


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)
