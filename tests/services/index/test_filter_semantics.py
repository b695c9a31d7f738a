"""One filter semantics on every index: hnsw, exact and lsh agree with the reference rule
(`imsearch.core.structs.field_matches`) on a collection large enough that HNSW is built and
LSH probes its buckets."""

import time
from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np
import pytest

from devtools.embedded_redis import EmbeddedRedis
from imsearch.core.structs import field_matches, to_struct
from imsearch.v1 import index_pb2, index_pb2_grpc
from services.index.app import start_index
from services.index.settings import IndexSettings

DIM, SIZE = 16, 1200


def metadata_of(i: int) -> dict[str, Any]:
    return {
        "color": ["red", "blue", "green"][i % 3],
        "tags": ["a"] if i % 2 else ["b", "c"],
        "flag": [True, 1, False, 0, "true"][i % 5],  # booleans, integers and a string apart
        "n": i % 7,
        "nested": {"x": i % 2},
    }


FILTERS: list[dict[str, Any]] = [
    {"color": "red"},
    {"tags": "a"},
    {"tags": "c", "n": 3},
    {"flag": True},
    {"flag": 1},
    {"flag": "true"},
    {"flag": 0},
    {"flag": False},
    {"n": 3, "color": "blue"},
    {"missing": "x"},
    {"nested": 1},  # an object never equals a scalar
]


@pytest.fixture(scope="module")
def stub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[index_pb2_grpc.IndexServiceStub]:
    folder = tmp_path_factory.mktemp("filters")
    redis_server = EmbeddedRedis(folder / "redis")
    app = start_index(
        IndexSettings(listen="127.0.0.1:0", metrics_port=-1, data_dir=folder, redis_url=redis_server.url)
    )
    made = index_pb2_grpc.IndexServiceStub(grpc.insecure_channel(app.address))
    made.EnsureCollection(index_pb2.EnsureCollectionRequest(collection="f", dim=DIM))
    vectors = np.random.default_rng(0).standard_normal((SIZE, DIM)).astype(np.float32)
    for start in range(0, SIZE, 300):
        points = [
            index_pb2.Point(id=f"p{i}", vector=vectors[i].tolist(), metadata=to_struct(metadata_of(i)))
            for i in range(start, start + 300)
        ]
        made.Upsert(index_pb2.UpsertRequest(collection="f", points=points))
    deadline = 60
    info = made.GetCollectionInfo(index_pb2.GetCollectionInfoRequest(collection="f"))
    while not info.hnsw_built and deadline > 0:
        time.sleep(0.5)
        deadline -= 1
        info = made.GetCollectionInfo(index_pb2.GetCollectionInfoRequest(collection="f"))
    assert info.hnsw_built and info.points == info.lsh_points == SIZE
    yield made
    app.stop()
    redis_server.stop()


def reference(metadata_filter: dict[str, Any]) -> set[str]:
    return {
        f"p{i}"
        for i in range(SIZE)
        if all(
            k in metadata_of(i) and field_matches(metadata_of(i)[k], v) for k, v in metadata_filter.items()
        )
    }


def found(stub: index_pb2_grpc.IndexServiceStub, kind: int, metadata_filter: dict[str, Any]) -> set[str]:
    query = np.random.default_rng(1).standard_normal(DIM).tolist()
    response = stub.Search(
        index_pb2.SearchVectorRequest(
            collection="f", vector=query, top_k=1000, index=kind, filter=to_struct(metadata_filter)
        )
    )
    return {hit.id for hit in response.hits}


def nearest(stub: index_pb2_grpc.IndexServiceStub, kind: int, i: int, metadata_filter: dict[str, Any]) -> str:
    vector = np.random.default_rng(0).standard_normal((SIZE, DIM)).astype(np.float32)[i]
    response = stub.Search(
        index_pb2.SearchVectorRequest(
            collection="f", vector=vector.tolist(), top_k=1, index=kind, filter=to_struct(metadata_filter)
        )
    )
    return response.hits[0].id if response.hits else ""


@pytest.mark.parametrize("metadata_filter", FILTERS, ids=[str(f) for f in FILTERS])
def test_every_index_means_the_same_by_a_filter(
    stub: index_pb2_grpc.IndexServiceStub, metadata_filter: dict[str, Any]
) -> None:
    expected = reference(metadata_filter)
    assert len(expected) < 1000
    assert found(stub, index_pb2.INDEX_KIND_EXACT, metadata_filter) == expected
    hnsw = found(stub, index_pb2.INDEX_KIND_HNSW, metadata_filter)
    lsh = found(stub, index_pb2.INDEX_KIND_LSH, metadata_filter)
    assert hnsw <= expected and lsh <= expected  # nothing outside the semantics, on any index
    if expected:  # HNSW is approximate but filtered: nearly all matching points are found
        assert len(hnsw) >= 0.9 * len(expected)
    # LSH returns only what its buckets hold, so probe it point by point: a matching point
    # queried by its own vector comes first, a point that does not match never comes back.
    for i in range(0, SIZE, 97):
        kinds = (index_pb2.INDEX_KIND_HNSW, index_pb2.INDEX_KIND_EXACT, index_pb2.INDEX_KIND_LSH)
        top = [nearest(stub, kind, i, metadata_filter) for kind in kinds]
        if f"p{i}" in expected:
            assert top == [f"p{i}"] * 3, (i, top)
        else:
            assert f"p{i}" not in top, (i, top)


@pytest.mark.parametrize("key", ["[", "a..b", "a.b", "x" * 65, "ü", "a b", "$"])
def test_odd_filter_keys_are_invalid_on_every_index(stub: index_pb2_grpc.IndexServiceStub, key: str) -> None:
    for kind in (index_pb2.INDEX_KIND_HNSW, index_pb2.INDEX_KIND_EXACT, index_pb2.INDEX_KIND_LSH):
        with pytest.raises(grpc.RpcError) as error:
            found(stub, kind, {key: "x"})
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT, key


def test_unnormalised_vectors_are_ranked_by_cosine_on_every_index(
    stub: index_pb2_grpc.IndexServiceStub,
) -> None:
    big = (np.random.default_rng(5).standard_normal(DIM) * 1e18).astype(np.float32)
    stub.Upsert(
        index_pb2.UpsertRequest(collection="f", points=[index_pb2.Point(id="big", vector=big.tolist())])
    )
    for kind in (index_pb2.INDEX_KIND_HNSW, index_pb2.INDEX_KIND_EXACT, index_pb2.INDEX_KIND_LSH):
        hits = stub.Search(
            index_pb2.SearchVectorRequest(collection="f", vector=(big * 3).tolist(), top_k=5, index=kind)
        ).hits
        assert hits[0].id == "big"
        assert all(-1.0001 <= h.score <= 1.0001 for h in hits), [h.score for h in hits]
    stub.Delete(index_pb2.DeleteRequest(collection="f", ids=["big"]))
