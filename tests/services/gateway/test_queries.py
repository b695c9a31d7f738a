"""Richer queries through the gateway: by example (ids and images, two strategies), paging,
score cut-off, vectors and metadata on request, and their bad inputs."""

import io
import math
from collections.abc import Callable, Iterator

import grpc
import numpy as np
import pytest
from PIL import Image

from cli.suite import Suite
from imsearch.client import SearchClient
from imsearch.v1 import index_pb2, search_pb2, search_pb2_grpc
from imsearch.v1.encoder_pb2 import Box
from tests.helpers import jpeg

GALLERY = 30
INDEXES = ["hnsw", "exact", "lsh"]


@pytest.fixture(scope="module")
def client(suite: Suite) -> Iterator[SearchClient]:
    made = SearchClient(suite.address)
    made.add_images((f"g{i}", jpeg(i), {"n": i}) for i in range(GALLERY))
    yield made
    made.close()


def ids(response: search_pb2.SearchResponse) -> list[str]:
    return [r.id for r in response.results]


@pytest.mark.parametrize("index", INDEXES)
@pytest.mark.parametrize("strategy", ["average_vector", "best_score"])
def test_more_like_a_stored_id_leaves_the_example_out(
    client: SearchClient, index: str, strategy: str
) -> None:
    plain = ids(client.search(jpeg(3), top_k=6, index="exact", rerank=False))
    assert plain[0] == "g3"
    liked = client.search(like=["g3"], top_k=5, index=index, strategy=strategy)
    assert ids(liked) == plain[1:], (index, strategy)
    assert not liked.reranked


@pytest.mark.parametrize("index", INDEXES)
def test_a_negative_example_pushes_its_neighbourhood_down(client: SearchClient, index: str) -> None:
    plain = ids(client.search(jpeg(3), top_k=GALLERY, index="exact", rerank=False))
    nearest = plain[1]
    best = client.search(like=["g3"], unlike=[nearest], top_k=10, index=index, strategy="best_score")
    assert nearest not in ids(best)  # scored -1: closest to a negative
    assert all(r.score > 0 for r in best.results)
    average = ids(client.search(like=["g3"], unlike=[nearest], top_k=GALLERY, index="exact"))
    assert nearest not in average[:3] and "g3" not in average


def test_best_score_over_two_positives_finds_the_neighbours_of_each(client: SearchClient) -> None:
    around = {i: ids(client.search(jpeg(i), top_k=3, index="exact", rerank=False))[1] for i in (3, 17)}
    both = ids(client.search(like=["g3", "g17"], top_k=4, index="exact", strategy="best_score"))
    assert set(around.values()) <= set(both)


def test_image_examples_are_encoded_and_counted_as_positives(client: SearchClient) -> None:
    by_image = client.search(like_images=[jpeg(8)], top_k=3, index="exact")
    assert by_image.results[0].id == "g8" and math.isclose(by_image.results[0].score, 1.0, abs_tol=1e-4)
    mixed = ids(client.search(jpeg(8), like=["g9"], unlike_images=[jpeg(20)], top_k=GALLERY, index="exact"))
    assert "g9" not in mixed and mixed.index("g8") < mixed.index("g20")


@pytest.mark.parametrize("index", INDEXES)
def test_offset_pages_through_the_same_ranking(client: SearchClient, index: str) -> None:
    whole = ids(client.search(jpeg(1), top_k=12, index=index))
    pages = [ids(client.search(jpeg(1), top_k=4, offset=o, index=index)) for o in (0, 4, 8)]
    assert [i for page in pages for i in page] == whole


def test_min_score_cuts_off_and_vectors_and_metadata_are_on_request(client: SearchClient) -> None:
    everything = client.search(jpeg(1), top_k=GALLERY, index="exact")
    cut = sorted(r.score for r in everything.results)[GALLERY // 2]
    kept = client.search(jpeg(1), top_k=GALLERY, index="exact", min_score=cut)
    assert ids(kept) == [r.id for r in everything.results if r.score >= cut]
    bare = client.search(jpeg(1), top_k=2, with_vectors=True, omit_metadata=True)
    vector = np.asarray(bare.results[0].vector)
    assert vector.shape == (1280,) and math.isclose(float(np.linalg.norm(vector)), 1.0, rel_tol=1e-3)
    assert not bare.results[0].HasField("metadata")
    assert dict(client.search(jpeg(1), top_k=1).results[0].metadata) == {"n": 1}
    assert client.search(jpeg(1), top_k=1).results[0].vector == []


@pytest.mark.parametrize("index", INDEXES)
def test_structured_filters_reach_every_index(client: SearchClient, index: str) -> None:
    where = {
        "must": [{"key": "n", "range": {"gte": 10, "lt": 20}}],
        "must_not": [{"key": "n", "any_of": [12, 13]}],
    }
    hits = ids(client.search(jpeg(15), top_k=GALLERY, index=index, where=where))
    assert hits[0] == "g15" and set(hits) <= {f"g{i}" for i in range(10, 20)} - {"g12", "g13"}
    assert len(hits) == 8 or index == "lsh"  # LSH returns what its buckets hold


def side_by_side(left: bytes, right: bytes) -> bytes:
    """One PNG holding two photos next to each other (lossless, so each half keeps its pixels)."""
    halves = [Image.open(io.BytesIO(data)).convert("RGB") for data in (left, right)]
    both = Image.new("RGB", (halves[0].width + halves[1].width, halves[0].height))
    both.paste(halves[0], (0, 0))
    both.paste(halves[1], (halves[0].width, 0))
    buffer = io.BytesIO()
    both.save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_box_searches_only_its_region(client: SearchClient) -> None:
    photo = side_by_side(jpeg(4), jpeg(11))
    left = client.search(photo, top_k=1, index="exact", box=(0, 0, 0.5, 1)).results[0]
    right = client.search(photo, top_k=1, index="exact", box=(0.5, 0, 0.5, 1.0)).results[0]
    assert (left.id, right.id) == ("g4", "g11")
    assert left.score > 0.999 and right.score > 0.999  # the very pixels that were stored


def error(call: Callable[[], object]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    return raised.value


@pytest.mark.parametrize(
    ("request_", "code", "message"),
    [
        ({}, "INVALID_ARGUMENT", "give an image or a text to search with, or examples"),
        ({"positive_ids": ["nope"]}, "NOT_FOUND", "positive example 'nope' is not in collection"),
        ({"positive_ids": ["g1"], "negative_ids": ["gone"]}, "NOT_FOUND", "negative example 'gone'"),
        ({"negative_ids": ["g1"]}, "INVALID_ARGUMENT", "at least one positive example"),
        ({"positive_ids": [f"g{i}" for i in range(17)]}, "INVALID_ARGUMENT", "at most 16 positive"),
        ({"positive_images": [jpeg(i) for i in range(17)]}, "INVALID_ARGUMENT", "at most 16 positive"),
        ({"positive_ids": ["g1"], "strategy": 7}, "INVALID_ARGUMENT", "unknown example strategy 7"),
        ({"positive_ids": [""]}, "INVALID_ARGUMENT", "id is empty"),
        ({"image": jpeg(), "offset": 995, "top_k": 10}, "INVALID_ARGUMENT", "offset + top_k must be at most 1000"),
        ({"image": jpeg(), "min_score": 1.5}, "INVALID_ARGUMENT", "min_score must be between -1 and 1"),
        ({"image": jpeg(), "min_score": float("nan")}, "INVALID_ARGUMENT", "min_score must be between -1 and 1"),
        ({"positive_images": [b"not an image"]}, "INVALID_ARGUMENT", "not a decodable image"),
        ({"image": jpeg(), "box": Box(x=0.8, width=0.5, height=1)}, "INVALID_ARGUMENT", "is not inside the image"),
        ({"image": jpeg(), "box": Box(x=0.1, y=0.1)}, "INVALID_ARGUMENT", "is not inside the image"),
        ({"image": jpeg(), "box": Box(width=float("nan"), height=1)}, "INVALID_ARGUMENT", "is not inside the image"),
        ({"image": jpeg(), "box": Box(width=0.01, height=1)}, "INVALID_ARGUMENT", "aspect ratio over the limit"),
        ({"positive_ids": ["g1"], "box": Box(width=0.5, height=0.5)}, "INVALID_ARGUMENT", "give the image too"),
    ],
)  # fmt: skip
def test_bad_queries_get_their_code(
    suite: Suite, client: SearchClient, request_: dict[str, object], code: str, message: str
) -> None:
    request = search_pb2.SearchRequest(**request_)
    stub = search_pb2_grpc.SearchServiceStub(grpc.insecure_channel(suite.address))
    failed = error(lambda: stub.Search(request))
    assert (failed.code().name, message in (failed.details() or "")) == (code, True), failed.details()


def encode_calls(suite: Suite) -> float:
    labels = {"grpc_service": "imsearch.v1.EncoderService", "grpc_method": "Encode", "grpc_code": "OK"}
    return suite.encoder.metrics.registry.get_sample_value("grpc_server_handled_total", labels) or 0.0


def test_a_batch_answers_each_query_in_order_with_one_encode_call(suite: Suite, client: SearchClient) -> None:
    queries: list[dict[str, object]] = [
        {"image": jpeg(2), "top_k": 3, "index": "exact"},
        {"like": ["g5"], "top_k": 3, "index": "exact"},
        {"image": side_by_side(jpeg(4), jpeg(11)), "box": (0.5, 0, 0.5, 1), "top_k": 3, "index": "exact"},
        {"image": jpeg(7), "like_images": [jpeg(8)], "top_k": 3, "index": "lsh"},
    ]
    singly = [ids(client.search(**query)) for query in queries]
    before = encode_calls(suite)
    together = client.search_batch(queries)
    assert encode_calls(suite) == before + 1  # five images of three queries, one call
    assert [ids(r) for r in together] == singly
    assert [r.results[0].id for r in together] == ["g2", singly[1][0], "g11", singly[3][0]]


@pytest.mark.parametrize(
    ("queries", "code", "message"),
    [
        ([], "INVALID_ARGUMENT", "a batch holds 1 to 64 queries, got 0"),
        ([search_pb2.SearchRequest(image=jpeg())] * 65, "INVALID_ARGUMENT", "got 65"),
        (
            [search_pb2.SearchRequest(image=jpeg()), search_pb2.SearchRequest(image=jpeg(), top_k=2000)],
            "INVALID_ARGUMENT",
            "query 1: top_k must be between 1 and 1000",
        ),
        (
            [
                search_pb2.SearchRequest(image=jpeg(), positive_images=[jpeg()]),
                search_pb2.SearchRequest(image=b"bad"),
            ],
            "INVALID_ARGUMENT",
            "query 1, image 0: data is not a decodable image",
        ),
        (
            [
                search_pb2.SearchRequest(image=jpeg()),
                search_pb2.SearchRequest(image=jpeg(), collection="nope"),
            ],
            "NOT_FOUND",
            "query 1: collection 'nope' does not exist",
        ),
        (
            [search_pb2.SearchRequest(positive_ids=["missing"])],
            "NOT_FOUND",
            "query 0: positive example 'missing' is not in collection",
        ),
    ],
)
def test_a_bad_query_fails_the_batch_naming_it(
    suite: Suite, client: SearchClient, queries: list[search_pb2.SearchRequest], code: str, message: str
) -> None:
    stub = search_pb2_grpc.SearchServiceStub(grpc.insecure_channel(suite.address))
    failed = error(lambda: stub.SearchBatch(search_pb2.SearchBatchRequest(queries=queries)))
    assert (failed.code().name, message in (failed.details() or "")) == (code, True), failed.details()


@pytest.mark.parametrize("index", INDEXES)
def test_query_expansion_reaches_the_index(client: SearchClient, index: str) -> None:
    plain = client.search(jpeg(3), top_k=GALLERY, index=index, rerank=False)
    expanded = client.search(jpeg(3), top_k=GALLERY, index=index, rerank=False, expansion=(5, 3.0))
    assert ids(expanded)[0] == "g3" and sorted(ids(expanded)) == sorted(ids(plain))
    # The query moved towards its neighbours: the same images, other scores.
    assert [r.score for r in expanded.results] != pytest.approx([r.score for r in plain.results], abs=1e-4)
    with pytest.raises(grpc.RpcError) as refused:
        client.search(jpeg(3), index=index, expansion=(0, 3.0))
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT


def test_k_reciprocal_re_ranking_is_passed_to_the_index_and_not_re_sorted(suite: Suite) -> None:
    stub = search_pb2_grpc.SearchServiceStub(grpc.insecure_channel(suite.address))
    request = search_pb2.SearchRequest(
        image=jpeg(3),
        top_k=5,
        index=index_pb2.INDEX_KIND_LSH,
        k_reciprocal=index_pb2.KReciprocal(k1=8, candidates=20),
    )
    response = stub.Search(request, timeout=60)
    assert len(response.results) == 5 and not response.reranked  # LSH's default rerank is off
    assert response.results[0].id == "g3"
    scores = [r.score for r in response.results]
    assert scores == sorted(scores, reverse=True)
