"""Search by example on every index, against a reference computed here with numpy, on a
collection large enough that HNSW is built and LSH probes its buckets."""

import time
from collections.abc import Iterator

import grpc
import numpy as np
import pytest

from devtools.embedded_redis import EmbeddedRedis
from imsearch.v1 import index_pb2, index_pb2_grpc
from services.index.app import start_index
from services.index.settings import IndexSettings

DIM, SIZE, CLUSTERS = 32, 1200, 30  # HNSW is built when the last batch makes 1,200
KINDS = {
    "hnsw": index_pb2.INDEX_KIND_HNSW,
    "exact": index_pb2.INDEX_KIND_EXACT,
    "lsh": index_pb2.INDEX_KIND_LSH,
}


def gallery() -> np.ndarray:
    """Clustered unit vectors, as image embeddings are."""
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((CLUSTERS, DIM))
    points = centres[rng.integers(0, CLUSTERS, SIZE)] + 0.4 * rng.standard_normal((SIZE, DIM))
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


VECTORS = gallery()


@pytest.fixture(scope="module")
def stub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[index_pb2_grpc.IndexServiceStub]:
    folder = tmp_path_factory.mktemp("examples")
    redis_server = EmbeddedRedis(folder / "redis")
    app = start_index(
        IndexSettings(listen="127.0.0.1:0", metrics_port=-1, data_dir=folder, redis_url=redis_server.url)
    )
    made = index_pb2_grpc.IndexServiceStub(grpc.insecure_channel(app.address))
    made.EnsureCollection(index_pb2.EnsureCollectionRequest(collection="e", dim=DIM))
    for start in range(0, SIZE, 400):
        points = [index_pb2.Point(id=f"p{i}", vector=VECTORS[i].tolist()) for i in range(start, start + 400)]
        made.Upsert(index_pb2.UpsertRequest(collection="e", points=points))
    info = made.GetCollectionInfo(index_pb2.GetCollectionInfoRequest(collection="e"))
    for _ in range(120):
        if info.hnsw_built:
            break
        time.sleep(0.5)
        info = made.GetCollectionInfo(index_pb2.GetCollectionInfoRequest(collection="e"))
    assert info.hnsw_built and info.points == info.lsh_points == SIZE
    yield made
    app.stop()
    redis_server.stop()


def reference(positives: list[int], negatives: list[int], strategy: str, k: int) -> list[str]:
    """Qdrant's recommend strategies, computed over the whole gallery."""
    pos, neg = VECTORS[positives], VECTORS[negatives]
    if strategy == "average":
        query = 2 * pos.mean(axis=0) - neg.mean(axis=0) if negatives else pos.mean(axis=0)
        scores = VECTORS @ (query / np.linalg.norm(query))
    else:
        best_pos = (VECTORS @ pos.T).max(axis=1)
        best_neg = (VECTORS @ neg.T).max(axis=1) if negatives else np.full(SIZE, -np.inf)
        scores = np.where(best_pos > best_neg, best_pos, -(best_neg**2))
    order = [i for i in np.argsort(-scores) if i not in set(positives) | set(negatives)]
    return [f"p{i}" for i in order[:k]]


CASES = [([5], [], "average"), ([5, 900], [], "best"), ([5], [6], "average"), ([5, 900], [6, 901], "best")]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("positives", "negatives", "strategy"), CASES)
def test_every_index_agrees_with_the_reference(
    stub: index_pb2_grpc.IndexServiceStub,
    kind: str,
    positives: list[int],
    negatives: list[int],
    strategy: str,
) -> None:
    wire = (
        index_pb2.EXAMPLE_STRATEGY_AVERAGE_VECTOR
        if strategy == "average"
        else index_pb2.EXAMPLE_STRATEGY_BEST_SCORE
    )
    response = stub.Search(
        index_pb2.SearchVectorRequest(
            collection="e",
            top_k=10,
            index=KINDS[kind],
            positive_ids=[f"p{i}" for i in positives],
            negative_ids=[f"p{i}" for i in negatives],
            strategy=wire,
        )
    )
    found = [h.id for h in response.hits]
    expected = reference(positives, negatives, strategy, 10)
    if kind == "exact":
        assert found == expected
    else:  # approximate indexes: recall of the reference's top 10
        assert len(set(found) & set(expected)) >= 8, (found, expected)
    assert not {f"p{i}" for i in positives + negatives} & set(found)


def test_vectors_as_examples_match_ids_as_examples(stub: index_pb2_grpc.IndexServiceStub) -> None:
    by_vector = stub.Search(
        index_pb2.SearchVectorRequest(
            collection="e",
            top_k=5,
            index=index_pb2.INDEX_KIND_EXACT,
            vector=VECTORS[5].tolist(),
            negative_vectors=[index_pb2.Vector(values=VECTORS[6].tolist())],
        )
    )
    expected = reference([5], [6], "average", 6)
    assert [h.id for h in by_vector.hits] == ["p5", *expected][:5]  # p5 itself: not given by id
    with pytest.raises(grpc.RpcError) as error:
        stub.Search(
            index_pb2.SearchVectorRequest(
                collection="e", top_k=5, positive_vectors=[index_pb2.Vector(values=[1.0, 2.0])]
            )
        )
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "positive example vector 0 has dimension 2" in (error.value.details() or "")
