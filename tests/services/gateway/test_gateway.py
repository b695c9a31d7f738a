"""The public SearchService through all three services (real gRPC, ONNX model, Qdrant, Redis)."""

from collections.abc import Iterator
from urllib.request import urlopen

import grpc
import pytest
from google.protobuf import struct_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from cli.suite import Suite
from imsearch.client import SearchClient
from imsearch.v1 import index_pb2, search_pb2, search_pb2_grpc
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


def test_bulk_add_stops_at_the_first_bad_item_keeping_those_before(
    client: SearchClient, stub: search_pb2_grpc.SearchServiceStub
) -> None:
    before = points(client)[0]
    items = [search_pb2.AddImageRequest(id=f"bulk{i}", image=jpeg(200 + i)) for i in range(20)]
    items[18] = search_pb2.AddImageRequest(id="bulk18", image=b"corrupt")
    error = error_of(lambda: stub.AddImages(iter(items)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert points(client) == (before + 18, before + 18)
    duplicate = [search_pb2.AddImageRequest(id="dup", image=jpeg(300))] * 2
    assert "twice" in error_of(lambda: stub.AddImages(iter(duplicate))).details()
    client.delete([f"bulk{i}" for i in range(18)])


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
