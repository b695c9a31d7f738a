"""One filter semantics on every index: hnsw, exact and lsh agree with a reference written out
here case by case (imsearch.core.filters states the rule) on a collection large enough that
HNSW is built and LSH probes its buckets."""

import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import numpy as np
import pytest

from devtools.embedded_redis import EmbeddedRedis
from imsearch.core.structs import to_struct
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
        "price": round((i * 0.37) % 10, 2),
        "sizes": [i % 4, i % 4 + 0.5],
    }


def same(stored: Any, wanted: Any) -> bool:
    """Equal with the same type, or, for a list, one element so (`true` is not `1`)."""
    if isinstance(stored, list):
        return any(same(element, wanted) for element in stored)
    return type(stored) is type(wanted) and stored == wanted


def number_in(stored: Any, low: float, high: float) -> bool:
    values = stored if isinstance(stored, list) else [stored]
    return any(isinstance(v, int | float) and not isinstance(v, bool) and low <= v < high for v in values)


def equals(key: str, value: Any) -> index_pb2.Condition:
    condition = index_pb2.Condition(key=key)
    condition.equals.CopyFrom(to_struct({"v": value}).fields["v"])
    return condition


def any_of(key: str, *values: Any) -> index_pb2.Condition:
    condition = index_pb2.Condition(key=key)
    condition.any_of.SetInParent()  # an empty list is still a test: its values are checked
    condition.any_of.extend(values)
    return condition


def between(key: str, **bounds: float) -> index_pb2.Condition:
    return index_pb2.Condition(key=key, range=index_pb2.Range(**bounds))


Reference = Callable[[dict[str, Any]], bool]
# (name, the `filter` Struct, the structured `where`, what it means)
CASES: list[tuple[str, dict[str, Any], index_pb2.Filter | None, Reference]] = [
    ("color red", {"color": "red"}, None, lambda m: m["color"] == "red"),
    ("tags a (a list)", {"tags": "a"}, None, lambda m: "a" in m["tags"]),
    ("tags c and n 3", {"tags": "c", "n": 3}, None, lambda m: "c" in m["tags"] and m["n"] == 3),
    ("flag true", {"flag": True}, None, lambda m: m["flag"] is True),
    ("flag 1", {"flag": 1}, None, lambda m: same(m["flag"], 1)),
    ("flag 'true'", {"flag": "true"}, None, lambda m: m["flag"] == "true"),
    ("flag 0", {"flag": 0}, None, lambda m: same(m["flag"], 0)),
    ("flag false", {"flag": False}, None, lambda m: m["flag"] is False),
    ("n 3, color blue", {"n": 3, "color": "blue"}, None, lambda m: m["n"] == 3 and m["color"] == "blue"),
    ("missing field", {"missing": "x"}, None, lambda m: False),
    ("object never equals", {"nested": 1}, None, lambda m: False),
    ("any_of red, blue", {}, index_pb2.Filter(must=[any_of("color", "red", "blue")]), lambda m: m["color"] != "green"),
    (
        "should n 3 or green",
        {},
        index_pb2.Filter(should=[equals("n", 3), equals("color", "green")]),
        lambda m: m["n"] == 3 or m["color"] == "green",
    ),
    ("must_not tags a", {}, index_pb2.Filter(must_not=[equals("tags", "a")]), lambda m: "a" not in m["tags"]),
    ("n in [2, 5)", {}, index_pb2.Filter(must=[between("n", gte=2, lt=5)]), lambda m: 2 <= m["n"] < 5),
    (
        "price in (3.5, 7.25]",
        {},
        index_pb2.Filter(must=[between("price", gt=3.5, lte=7.25)]),
        lambda m: 3.5 < m["price"] <= 7.25,
    ),
    ("a list of numbers", {}, index_pb2.Filter(must=[between("sizes", gte=3.2)]), lambda m: number_in(m["sizes"], 3.2, 99)),
    ("booleans are no numbers", {}, index_pb2.Filter(must=[between("flag", gte=1, lte=1)]), lambda m: same(m["flag"], 1)),
    (
        "filter and where together",
        {"color": "red"},
        index_pb2.Filter(
            must_not=[any_of("n", 1, 2)], should=[between("price", lt=2), equals("tags", "c")]
        ),
        lambda m: m["color"] == "red" and m["n"] not in (1, 2) and (m["price"] < 2 or "c" in m["tags"]),
    ),
    ("should on a missing field", {}, index_pb2.Filter(should=[equals("missing", 1)]), lambda m: False),
]  # fmt: skip


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


def reference(means: Reference) -> set[str]:
    return {f"p{i}" for i in range(SIZE) if means(metadata_of(i))}


def request(
    vector: list[float], top_k: int, kind: int, legacy: dict[str, Any], where: index_pb2.Filter | None
) -> index_pb2.SearchVectorRequest:
    return index_pb2.SearchVectorRequest(
        collection="f", vector=vector, top_k=top_k, index=kind, filter=to_struct(legacy), where=where
    )


def found(
    stub: index_pb2_grpc.IndexServiceStub,
    kind: int,
    legacy: dict[str, Any],
    where: index_pb2.Filter | None = None,
) -> set[str]:
    query = np.random.default_rng(1).standard_normal(DIM).tolist()
    return {hit.id for hit in stub.Search(request(query, 1000, kind, legacy, where)).hits}


def nearest(
    stub: index_pb2_grpc.IndexServiceStub,
    kind: int,
    i: int,
    legacy: dict[str, Any],
    where: index_pb2.Filter | None,
) -> str:
    vector = np.random.default_rng(0).standard_normal((SIZE, DIM)).astype(np.float32)[i]
    response = stub.Search(request(vector.tolist(), 1, kind, legacy, where))
    return response.hits[0].id if response.hits else ""


@pytest.mark.parametrize(("legacy", "where", "means"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_every_index_means_the_same_by_a_filter(
    stub: index_pb2_grpc.IndexServiceStub,
    legacy: dict[str, Any],
    where: index_pb2.Filter | None,
    means: Reference,
) -> None:
    expected = reference(means)
    assert len(expected) < 1000
    assert found(stub, index_pb2.INDEX_KIND_EXACT, legacy, where) == expected
    hnsw = found(stub, index_pb2.INDEX_KIND_HNSW, legacy, where)
    lsh = found(stub, index_pb2.INDEX_KIND_LSH, legacy, where)
    assert hnsw <= expected and lsh <= expected  # nothing outside the semantics, on any index
    if expected:  # HNSW is approximate but filtered: nearly all matching points are found
        assert len(hnsw) >= 0.9 * len(expected)
    # LSH returns only what its buckets hold, so probe it point by point: a matching point
    # queried by its own vector comes first, a point that does not match never comes back.
    for i in range(0, SIZE, 97):
        kinds = (index_pb2.INDEX_KIND_HNSW, index_pb2.INDEX_KIND_EXACT, index_pb2.INDEX_KIND_LSH)
        top = [nearest(stub, kind, i, legacy, where) for kind in kinds]
        if f"p{i}" in expected:
            assert top == [f"p{i}"] * 3, (i, top)
        else:
            assert f"p{i}" not in top, (i, top)


@pytest.mark.parametrize(
    ("where", "message"),
    [
        (index_pb2.Filter(must=[index_pb2.Condition(key="n")]), "has no test"),
        (index_pb2.Filter(must=[any_of("n")]), "needs 1 to 64 values"),
        (index_pb2.Filter(must=[between("n")]), "has no bound"),
        (index_pb2.Filter(must=[between("n", gt=float("nan"))]), "finite"),
        (index_pb2.Filter(should=[equals("a.b", 1)]), "filter key"),
        (index_pb2.Filter(must_not=[equals("n", 0.5)]), "string, boolean or integer"),
        (index_pb2.Filter(must=[equals("n", 1)] * 33), "at most 32 conditions"),
    ],
)
def test_bad_structured_filters_are_invalid(
    stub: index_pb2_grpc.IndexServiceStub, where: index_pb2.Filter, message: str
) -> None:
    for kind in (index_pb2.INDEX_KIND_HNSW, index_pb2.INDEX_KIND_EXACT, index_pb2.INDEX_KIND_LSH):
        with pytest.raises(grpc.RpcError) as error:
            found(stub, kind, {}, where)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert message in (error.value.details() or ""), error.value.details()


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
