"""Scalar int8 quantization as a collection option: the quantized copy is built, HNSW keeps
its recall by rescoring, exact search stays exact, and the option survives a restart and
reaches the gRPC API (and the Qdrant server adapter, on qdrant-client's local mode)."""

from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import redis

from devtools.embedded_redis import EmbeddedRedis
from imsearch.core.index_kind import IndexKind
from imsearch.core.metrics import ServiceMetrics
from imsearch.v1 import index_pb2, index_pb2_grpc
from services.index.app import IndexApp, start_index
from services.index.engine import IndexEngine, IndexParameters
from services.index.settings import IndexSettings
from services.index.stores.base import INT8, CollectionSpec, StoredPoint
from services.index.stores.qdrant_edge import QdrantEdgeStore
from services.index.stores.qdrant_server import QdrantServerStore
from services.index.stores.redis_lsh import LshParams, RedisLshStore

DIM = 64
SIZE = 3000  # the HNSW graph is built over the quantized vectors


def unit_vectors(n: int, seed: int) -> np.ndarray:
    """Clustered, like embeddings, so int8 ranking errors between near neighbours show."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((30, DIM))
    vectors = centres[rng.integers(0, 30, n)] + 0.5 * rng.standard_normal((n, DIM))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture
def engine(tmp_path: Path, redis_server: EmbeddedRedis) -> Iterator[IndexEngine]:
    redis.Redis.from_url(redis_server.url).flushdb()
    lsh = RedisLshStore(redis.Redis.from_url(redis_server.url), LshParams())
    opened = IndexEngine(QdrantEdgeStore(tmp_path / "qdrant"), lsh, ServiceMetrics("index"))
    yield opened
    opened.close()


def test_an_int8_collection_keeps_hnsw_recall_and_exact_search_exact(
    engine: IndexEngine, tmp_path: Path
) -> None:
    vectors = unit_vectors(SIZE, seed=0)
    engine.ensure_collection("q", DIM, params=IndexParameters(quantization=INT8))
    for start in range(0, SIZE, 500):
        engine.upsert("q", [(f"p{i}", vectors[i], {}) for i in range(start, start + 500)])
    engine.wait_for_optimize()
    engine.optimize("q")  # over all of them (the background builds run at 1,000 and 2,000)
    assert engine.info("q").hnsw_built
    assert list((tmp_path / "qdrant" / "q").rglob("quantized.data")), "no int8 copy was built"

    queries = unit_vectors(60, seed=1)
    truth = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
    found = 0
    for query, expected in zip(queries, truth, strict=True):
        exact = engine.search("q", query, 10, IndexKind.EXACT, None, False).hits
        assert [h.id for h in exact] == [f"p{i}" for i in expected]  # the float32 originals
        np.testing.assert_allclose([h.score for h in exact], vectors[expected] @ query, atol=1e-5)
        hnsw = engine.search("q", query, 10, IndexKind.HNSW, None, False).hits
        found += len({h.id for h in hnsw} & {f"p{i}" for i in expected})
        assert hnsw[0].score == pytest.approx(float(vectors[expected[0]] @ query), abs=1e-5)  # rescored
    assert found / (10 * len(queries)) >= 0.95
    assert engine.spec("q").quantization == INT8


def test_the_option_survives_a_restart_and_reaches_the_api(
    tmp_path: Path, redis_server: EmbeddedRedis
) -> None:
    settings = IndexSettings(
        listen="127.0.0.1:0", metrics_port=-1, data_dir=tmp_path, redis_url=redis_server.url
    )
    redis.Redis.from_url(redis_server.url).flushdb()
    app: IndexApp = start_index(settings)
    try:
        stub = index_pb2_grpc.IndexServiceStub(grpc.insecure_channel(app.address))
        int8 = index_pb2.IndexParams(quantization=index_pb2.VECTOR_QUANTIZATION_INT8)
        info = stub.EnsureCollection(index_pb2.EnsureCollectionRequest(collection="q", dim=DIM, params=int8))
        assert info.quantization == index_pb2.VECTOR_QUANTIZATION_INT8
        plain = stub.EnsureCollection(index_pb2.EnsureCollectionRequest(collection="f", dim=DIM))
        assert plain.quantization == index_pb2.VECTOR_QUANTIZATION_NONE
        with pytest.raises(grpc.RpcError) as refused:
            bad = index_pb2.IndexParams(quantization=7)  # proto3 enums are open: any number arrives
            stub.EnsureCollection(index_pb2.EnsureCollectionRequest(collection="x", dim=DIM, params=bad))
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "x" not in [
            c.collection for c in stub.ListCollections(index_pb2.ListCollectionsRequest()).collections
        ]
    finally:
        app.stop()
    app = start_index(settings)
    try:
        stub = index_pb2_grpc.IndexServiceStub(grpc.insecure_channel(app.address))
        listed = {
            c.collection: c.quantization
            for c in stub.ListCollections(index_pb2.ListCollectionsRequest()).collections
        }
        assert listed == {"q": index_pb2.VECTOR_QUANTIZATION_INT8, "f": index_pb2.VECTOR_QUANTIZATION_NONE}
    finally:
        app.stop()


def test_the_server_adapter_creates_and_records_an_int8_collection() -> None:
    store = QdrantServerStore(location=":memory:")
    store.create_collection("q", CollectionSpec(DIM, "m", quantization=INT8))
    vectors = unit_vectors(200, seed=2)
    store.upsert("q", [StoredPoint(f"p{i}", vectors[i], {}) for i in range(200)])
    assert store.collections()["q"].quantization == INT8
    assert store.search("q", vectors[5], 3, None, False, False)[0].id == "p5"
    store.close()
