"""k-reciprocal re-ranking: on noisy clustered vectors it ranks more of the query's class
first than cosine does; with lambda 1 it is cosine; bad parameters are refused."""

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
from services.index.k_reciprocal import KReciprocal, reranked
from services.index.settings import IndexSettings

DIM, PER_CLASS, CLASSES, NOISE = 64, 40, 5, 1.6


def unit(x: np.ndarray) -> np.ndarray:
    normalized: np.ndarray = x / np.linalg.norm(x, axis=-1, keepdims=True)
    return normalized


@pytest.fixture(scope="module")
def clusters() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((CLASSES, DIM))
    gallery = unit(
        np.repeat(centres, PER_CLASS, axis=0) + NOISE * rng.standard_normal((CLASSES * PER_CLASS, DIM))
    )
    return centres, unit(gallery), np.repeat(np.arange(CLASSES), PER_CLASS)


def test_it_ranks_more_of_the_class_first_than_cosine(
    clusters: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    centres, gallery, labels = clusters
    rng = np.random.default_rng(1)
    plain, reciprocal = [], []
    for q in range(40):
        label = q % CLASSES
        query = unit(centres[label] + NOISE * rng.standard_normal(DIM))
        top = np.argsort(-(gallery @ query))[:100]
        order, scores = reranked(query, gallery[top], KReciprocal())
        assert sorted(order.tolist()) == list(range(100)) and np.all(np.diff(scores) <= 1e-6)
        plain.append(np.mean(labels[top[:10]] == label))
        reciprocal.append(np.mean(labels[top[order[:10]]] == label))
    assert np.mean(plain) < 0.98  # cosine alone gets some wrong here ...
    assert np.mean(reciprocal) > np.mean(plain) + 0.02  # ... and the k-reciprocal sets fix most


def test_lambda_one_is_the_cosine_order(clusters: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    _, gallery, _ = clusters
    query = gallery[7]
    top = np.argsort(-(gallery @ query))[:50]
    order, _ = reranked(query, gallery[top], KReciprocal(lambda_=1.0, candidates=50))
    assert order.tolist() == list(range(50))


@pytest.mark.parametrize(
    "params",
    [
        KReciprocal(candidates=1),
        KReciprocal(candidates=501),
        KReciprocal(k1=100, candidates=100),
        KReciprocal(k2=30, k1=20),
        KReciprocal(lambda_=float("nan")),
        KReciprocal(candidates=5),  # below top_k
    ],
)
def test_bad_parameters_are_refused(params: KReciprocal) -> None:
    with pytest.raises(InvalidArgument):
        params.validate(top_k=10)


def test_every_index_reranks_its_candidates(
    engine: IndexEngine, clusters: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> None:
    """1,200 points: HNSW is built and LSH uses its buckets. Each index re-ranks its own 100
    nearest as the reference function does (exact: the exact top 100)."""
    centres, _, _ = clusters
    rng = np.random.default_rng(2)
    vectors = unit(np.repeat(centres, 240, axis=0) + NOISE * rng.standard_normal((1200, DIM))).astype(
        np.float32
    )
    engine.ensure_collection("c", DIM)
    for start in range(0, 1200, 400):
        engine.upsert("c", [(f"p{i}", vectors[i], {}) for i in range(start, start + 400)])
    engine.optimize("c")
    query = unit(centres[0] + NOISE * rng.standard_normal(DIM)).astype(np.float32)
    top = np.argsort(-(vectors @ query))[:100]
    order, scores = reranked(query, vectors[top], KReciprocal())
    expected = [f"p{i}" for i in top[order]]
    params = KReciprocal()
    exact = engine.search("c", query, 10, IndexKind.EXACT, None, False, k_reciprocal=params).hits
    assert [h.id for h in exact] == expected[:10]
    np.testing.assert_allclose([h.score for h in exact], scores[:10], atol=1e-5)
    assert all(h.vector is None for h in exact)
    paged = engine.search("c", query, 5, IndexKind.EXACT, None, True, offset=5, k_reciprocal=params).hits
    assert [h.id for h in paged] == expected[5:10] and all(h.vector is not None for h in paged)
    assert engine.info("c").hnsw_built
    for kind in (IndexKind.HNSW, IndexKind.LSH):  # each re-ranks its own 100 nearest
        own = engine.search("c", query, 100, kind, None, True).hits
        own_order, _ = reranked(query, np.stack([h.vector for h in own if h.vector is not None]), params)
        hits = engine.search("c", query, 10, kind, None, False, k_reciprocal=params).hits
        assert [h.id for h in hits] == [own[i].id for i in own_order[:10]], kind


def test_through_grpc(tmp_path: Path, redis_server: EmbeddedRedis) -> None:
    redis.Redis.from_url(redis_server.url).flushdb()
    app = start_index(
        IndexSettings(listen="127.0.0.1:0", metrics_port=-1, data_dir=tmp_path, redis_url=redis_server.url)
    )
    try:
        stub = index_pb2_grpc.IndexServiceStub(grpc.insecure_channel(app.address))
        stub.EnsureCollection(index_pb2.EnsureCollectionRequest(collection="c", dim=2))
        points = [index_pb2.Point(id=f"p{i}", vector=[1.0, 0.01 * i]) for i in range(30)]
        stub.Upsert(index_pb2.UpsertRequest(collection="c", points=points))
        defaults = index_pb2.KReciprocal(k1=8, candidates=20)  # k2 and lambda: the paper's
        found = stub.Search(
            index_pb2.SearchVectorRequest(collection="c", vector=[1.0, 0.0], top_k=3, k_reciprocal=defaults)
        )
        assert len(found.hits) == 3 and found.hits[0].score <= 1.0
        for bad in (index_pb2.KReciprocal(candidates=600), index_pb2.KReciprocal(k1=8, candidates=2)):
            with pytest.raises(grpc.RpcError) as refused:
                stub.Search(
                    index_pb2.SearchVectorRequest(
                        collection="c", vector=[1.0, 0.0], top_k=3, k_reciprocal=bad
                    )
                )
            assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.RpcError) as refused:
            stub.Search(
                index_pb2.SearchVectorRequest(
                    collection="c", positive_ids=["p1"], top_k=3, k_reciprocal=index_pb2.KReciprocal()
                )
            )
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    finally:
        app.stop()
