"""Alpha query expansion in the index: the expanded query is the reference formula's, it is
searched on the index asked for, and bad parameters are refused through gRPC."""

from pathlib import Path

import grpc
import numpy as np
import pytest
import redis

from devtools.embedded_redis import EmbeddedRedis
from imsearch.core.errors import InvalidArgument
from imsearch.core.index_kind import IndexKind
from imsearch.v1 import index_pb2, index_pb2_grpc
from services.index.app import start_index
from services.index.engine import IndexEngine
from services.index.query_expansion import QueryExpansion, expanded_query
from services.index.settings import IndexSettings

DIM = 32


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=-1, keepdims=True)).astype(np.float32)


def test_the_expanded_query_is_searched(engine: IndexEngine) -> None:
    rng = np.random.default_rng(0)
    vectors = unit(rng.standard_normal((300, DIM)))
    engine.ensure_collection("c", DIM)
    engine.upsert("c", [(f"p{i}", vectors[i], {}) for i in range(300)])
    query = unit(rng.standard_normal(DIM))
    cosines = vectors @ query
    nearest = np.argsort(-cosines)[:5]
    reference = expanded_query(query, vectors[nearest], cosines[nearest], 3.0)
    expected = np.argsort(-(vectors @ reference))[:10]
    for kind in (IndexKind.EXACT, IndexKind.LSH):  # LSH below its threshold scores everything
        hits = engine.search("c", query, 10, kind, None, False, expansion=QueryExpansion(5, 3.0)).hits
        # The same ranking as the reference's, up to near-ties (LSH scores in float16).
        np.testing.assert_allclose([h.score for h in hits], (vectors @ reference)[expected], atol=2e-3)
        assert len({h.id for h in hits} & {f"p{i}" for i in expected}) >= 9
    plain = [h.id for h in engine.search("c", query, 10, IndexKind.EXACT, None, False).hits]
    assert plain == [f"p{i}" for i in np.argsort(-cosines)[:10]] and plain != [f"p{i}" for i in expected]


def test_the_formula_weights_neighbours_by_cosine_to_the_alpha() -> None:
    query = np.array([1.0, 0.0], dtype=np.float32)
    neighbours = np.array([[0.0, 1.0], [0.0, -1.0]], dtype=np.float32)
    moved = expanded_query(query, neighbours, np.array([0.5, -0.2]), alpha=2.0)
    np.testing.assert_allclose(moved, unit(np.array([1.0, 0.25])), atol=1e-6)  # negatives weigh 0


@pytest.mark.parametrize("neighbours, alpha", [(0, 3.0), (51, 3.0), (5, -1.0), (5, float("nan")), (5, 11.0)])
def test_bad_parameters_are_refused(neighbours: int, alpha: float) -> None:
    with pytest.raises(InvalidArgument):
        QueryExpansion(neighbours, alpha).validate()


def test_through_grpc(tmp_path: Path, redis_server: EmbeddedRedis) -> None:
    redis.Redis.from_url(redis_server.url).flushdb()
    app = start_index(
        IndexSettings(listen="127.0.0.1:0", metrics_port=-1, data_dir=tmp_path, redis_url=redis_server.url)
    )
    try:
        stub = index_pb2_grpc.IndexServiceStub(grpc.insecure_channel(app.address))
        stub.EnsureCollection(index_pb2.EnsureCollectionRequest(collection="c", dim=2))
        stub.Upsert(
            index_pb2.UpsertRequest(collection="c", points=[index_pb2.Point(id="a", vector=[1.0, 0.1])])
        )
        good = index_pb2.SearchVectorRequest(
            collection="c",
            vector=[1.0, 0.0],
            top_k=1,
            expansion=index_pb2.QueryExpansion(neighbours=3, alpha=3),
        )
        assert stub.Search(good).hits[0].id == "a"
        for bad in (
            index_pb2.QueryExpansion(neighbours=0, alpha=3),
            index_pb2.QueryExpansion(neighbours=3, alpha=float("inf")),
        ):
            with pytest.raises(grpc.RpcError) as refused:
                stub.Search(
                    index_pb2.SearchVectorRequest(collection="c", vector=[1.0, 0.0], top_k=1, expansion=bad)
                )
            assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        by_example = index_pb2.SearchVectorRequest(
            collection="c",
            positive_ids=["a"],
            top_k=1,
            expansion=index_pb2.QueryExpansion(neighbours=3, alpha=3),
        )
        with pytest.raises(grpc.RpcError) as refused:
            stub.Search(by_example)
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    finally:
        app.stop()
