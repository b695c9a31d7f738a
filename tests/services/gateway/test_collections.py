"""Collections through the public API: each bound to its model, side by side behind one gateway."""

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import redis

from cli.suite import Suite, start_suite
from imsearch.v1 import index_pb2, index_pb2_grpc, search_pb2, search_pb2_grpc
from tests.helpers import MODEL_REPOSITORY, jpeg

DEFAULT = "efficientnet_lite0"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("collections") / "data"


@pytest.fixture(scope="module")
def suite(data_dir: Path) -> Iterator[Suite]:
    running = start_suite(
        data_dir, listen="127.0.0.1:0", model_repository=MODEL_REPOSITORY, free_metrics_ports=True
    )
    yield running
    running.stop()


@pytest.fixture(scope="module")
def stub(suite: Suite) -> search_pb2_grpc.SearchServiceStub:
    return search_pb2_grpc.SearchServiceStub(grpc.insecure_channel(suite.address))


def error_of(call: Callable[[], Any]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as error:
        call()
    return error.value


def create(stub: search_pb2_grpc.SearchServiceStub, name: str, model: str = "") -> index_pb2.CollectionInfo:
    info: index_pb2.CollectionInfo = stub.CreateCollection(
        search_pb2.CreateCollectionRequest(collection=name, model=model)
    )
    return info


def add(stub: search_pb2_grpc.SearchServiceStub, collection: str, ids: list[str], seed: int = 0) -> int:
    requests = [
        search_pb2.AddImageRequest(id=i, image=jpeg(seed + n), collection=collection)
        for n, i in enumerate(ids)
    ]
    return int(stub.AddImages(iter(requests)).added)


def search(
    stub: search_pb2_grpc.SearchServiceStub, image: bytes, collection: str = "", top_k: int = 5
) -> search_pb2.SearchResponse:
    response: search_pb2.SearchResponse = stub.Search(
        search_pb2.SearchRequest(
            image=image, top_k=top_k, collection=collection, index=index_pb2.INDEX_KIND_EXACT
        )
    )
    return response


def test_create_list_describe_drop(stub: search_pb2_grpc.SearchServiceStub) -> None:
    made = create(stub, "shoes", "color_histogram")
    assert (made.collection, made.model, made.points) == ("shoes", "color_histogram", 0)
    default = create(stub, "plain")  # no model: the gateway's default
    assert (default.model, default.dim) == (DEFAULT, 1280)
    listed = {
        c.collection: c.model for c in stub.ListCollections(index_pb2.ListCollectionsRequest()).collections
    }
    assert {DEFAULT: DEFAULT, "shoes": "color_histogram", "plain": DEFAULT}.items() <= listed.items()
    described = stub.DescribeCollection(index_pb2.GetCollectionInfoRequest(collection="shoes"))
    assert (described.model, described.dim) == ("color_histogram", made.dim)
    again = error_of(lambda: create(stub, "shoes", "color_histogram"))
    assert again.code() == grpc.StatusCode.ALREADY_EXISTS and "exists" in (again.details() or "")
    for name in ("shoes", "plain"):
        assert stub.DropCollection(index_pb2.DropCollectionRequest(collection=name)).dropped
    gone = error_of(lambda: stub.DescribeCollection(index_pb2.GetCollectionInfoRequest(collection="shoes")))
    assert gone.code() == grpc.StatusCode.NOT_FOUND
    assert not stub.DropCollection(index_pb2.DropCollectionRequest(collection="shoes")).dropped


def test_two_models_side_by_side_never_leak_into_each_other(stub: search_pb2_grpc.SearchServiceStub) -> None:
    create(stub, "hist", "color_histogram")
    assert add(stub, "", [f"cnn{i}" for i in range(8)], seed=0) == 8
    assert add(stub, "hist", [f"hist{i}" for i in range(8)], seed=0) == 8  # the same images
    in_default, in_hist = search(stub, jpeg(3), top_k=20), search(stub, jpeg(3), "hist", top_k=20)
    assert (in_default.model, in_default.collection) == (DEFAULT, DEFAULT)
    assert (in_hist.model, in_hist.collection) == ("color_histogram", "hist")
    assert in_default.results[0].id == "cnn3" and in_hist.results[0].id == "hist3"
    assert not any(r.id.startswith("hist") for r in in_default.results)
    assert all(r.id.startswith("hist") for r in in_hist.results)
    stats = stub.GetStats(search_pb2.GetStatsRequest(collection="hist"))
    assert (stats.model, stats.collection.points, stats.collection.lsh_points) == ("color_histogram", 8, 8)
    assert stub.DeleteImages(search_pb2.DeleteImagesRequest(ids=["cnn1"], collection="hist")).deleted == 0
    assert stub.DeleteImages(search_pb2.DeleteImagesRequest(ids=["hist1"], collection="hist")).deleted == 1
    report = stub.VerifyIndex(index_pb2.VerifyRequest(collection="hist"))
    assert (report.points, report.missing_in_lsh, report.extra_in_lsh, report.diverged) == (7, 0, 0, 0)
    stub.DropCollection(index_pb2.DropCollectionRequest(collection="hist"))
    assert search(stub, jpeg(3)).results[0].id == "cnn3"  # the default collection is untouched


Add, Search = search_pb2.AddImageRequest, search_pb2.SearchRequest


@pytest.mark.parametrize(
    ("call", "code", "message"),
    [
        (lambda s: s.AddImage(Add(id="x", image=jpeg(), collection="nope")), "NOT_FOUND", "'nope' does not exist"),
        (lambda s: s.Search(Search(image=jpeg(), collection="nope")), "NOT_FOUND", "'nope' does not exist"),
        (lambda s: s.DeleteImages(search_pb2.DeleteImagesRequest(ids=["x"], collection="nope")), "NOT_FOUND", "does not exist"),
        (lambda s: s.GetStats(search_pb2.GetStatsRequest(collection="nope")), "NOT_FOUND", "does not exist"),
        (lambda s: s.VerifyIndex(index_pb2.VerifyRequest(collection="nope")), "NOT_FOUND", "does not exist"),
        (lambda s: s.Search(Search(image=jpeg(), collection="../x")), "INVALID_ARGUMENT", "collection name"),
        (lambda s: create(s, "../x"), "INVALID_ARGUMENT", "collection name"),
        (lambda s: create(s, "fresh", "no_such_model"), "FAILED_PRECONDITION", "does not serve model 'no_such_model'"),
        (lambda s: create(s, "fresh", "../model"), "INVALID_ARGUMENT", "model name"),
        (lambda s: s.DropCollection(index_pb2.DropCollectionRequest(collection="a b")), "INVALID_ARGUMENT", "collection name"),
        (lambda s: s.AddImages(iter([Add(id="x", image=jpeg(), collection="nope")])), "NOT_FOUND", "item 0 (id 'x')"),
    ],
)  # fmt: skip
def test_bad_collection_requests(
    stub: search_pb2_grpc.SearchServiceStub, call: Callable[[Any], Any], code: str, message: str
) -> None:
    error = error_of(lambda: call(stub))
    assert (error.code().name, message in (error.details() or "")) == (code, True), error.details()


def test_one_stream_adds_to_one_collection(stub: search_pb2_grpc.SearchServiceStub) -> None:
    create(stub, "stream-a", "color_histogram")
    items = [Add(id=f"m{i}", image=jpeg(i), collection="stream-a") for i in range(3)]
    items.append(Add(id="m3", image=jpeg(3)))  # the default collection
    error = error_of(lambda: stub.AddImages(iter(items)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "item 3 (id 'm3')" in (error.details() or "") and "one stream adds to one collection" in (
        error.details() or ""
    )
    assert stub.GetStats(search_pb2.GetStatsRequest(collection="stream-a")).collection.points == 3
    stub.DropCollection(index_pb2.DropCollectionRequest(collection="stream-a"))


def test_a_collection_remade_with_another_model_elsewhere_is_searched_with_the_new_one(
    suite: Suite, stub: search_pb2_grpc.SearchServiceStub
) -> None:
    """Another gateway drops and remakes a collection this gateway has cached: the index
    refuses vectors of the old model, so this gateway re-reads the binding and encodes anew."""
    create(stub, "remade", DEFAULT)
    add(stub, "remade", ["old"])
    assert search(stub, jpeg(0), "remade").model == DEFAULT  # now cached here
    index = index_pb2_grpc.IndexServiceStub(grpc.insecure_channel(suite.index.address))
    index.DropCollection(index_pb2.DropCollectionRequest(collection="remade"))
    index.EnsureCollection(
        index_pb2.EnsureCollectionRequest(
            collection="remade", dim=dim_of(stub, "color_histogram"), model="color_histogram"
        )
    )
    assert add(stub, "remade", ["new"], seed=5) == 1
    found = search(stub, jpeg(5), "remade")
    assert (found.model, [r.id for r in found.results]) == ("color_histogram", ["new"])
    refused = error_of(
        lambda: index.Upsert(
            index_pb2.UpsertRequest(
                collection="remade",
                model=DEFAULT,
                points=[index_pb2.Point(id="x", vector=[1.0] * found_dim(index))],
            )
        )
    )
    assert refused.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "holds embeddings of model 'color_histogram', not 'efficientnet_lite0'" in (
        refused.details() or ""
    )
    stub.DropCollection(index_pb2.DropCollectionRequest(collection="remade"))


def dim_of(stub: search_pb2_grpc.SearchServiceStub, model: str) -> int:
    probe = create(stub, "probe-dim", model)
    stub.DropCollection(index_pb2.DropCollectionRequest(collection="probe-dim"))
    return int(probe.dim)


def found_dim(index: index_pb2_grpc.IndexServiceStub) -> int:
    return int(index.GetCollectionInfo(index_pb2.GetCollectionInfoRequest(collection="remade")).dim)


def test_a_dropped_collection_leaves_nothing_and_the_default_comes_back(
    suite: Suite, stub: search_pb2_grpc.SearchServiceStub, data_dir: Path
) -> None:
    create(stub, "dropme")
    add(stub, "dropme", [f"d{i}" for i in range(5)])
    shards = data_dir / "qdrant"
    assert suite.redis is not None
    client = redis.Redis.from_url(suite.redis.url)
    assert (shards / "dropme").is_dir() and client.keys("imsearch:lsh:{dropme*")
    stub.DropCollection(index_pb2.DropCollectionRequest(collection="dropme"))
    assert not (shards / "dropme").exists() and client.keys("imsearch:lsh:{dropme*") == []
    remade = create(stub, "dropme", "color_histogram")
    assert (remade.points, remade.lsh_points, remade.model) == (0, 0, "color_histogram")
    stub.DropCollection(index_pb2.DropCollectionRequest(collection="dropme"))
    # The default collection may be dropped too: the next call that needs it makes it anew.
    stub.DropCollection(index_pb2.DropCollectionRequest(collection=DEFAULT))
    add(stub, "", ["again"], seed=9)
    assert search(stub, jpeg(9)).results[0].id == "again"
    assert stub.GetStats(search_pb2.GetStatsRequest()).collection.points == 1


def test_a_collection_may_have_its_own_index_parameters(
    stub: search_pb2_grpc.SearchServiceStub, data_dir: Path
) -> None:
    params = index_pb2.IndexParams(lsh_tables=8, lsh_bits=10, hnsw_m=8, hnsw_ef_construct=64)
    made = stub.CreateCollection(search_pb2.CreateCollectionRequest(collection="tuned", params=params))
    assert (made.lsh_tables, made.lsh_bits, made.hnsw_m, made.hnsw_ef_construct) == (8, 10, 8, 64)
    edge = json.loads((data_dir / "qdrant" / "tuned" / "edge_config.json").read_text())
    assert edge["hnsw_config"]["m"] == 8 and edge["hnsw_config"]["ef_construct"] == 64  # the engine's own
    default = stub.DescribeCollection(index_pb2.GetCollectionInfoRequest())
    assert (default.lsh_tables, default.hnsw_m) == (64, 0)  # the service's settings
    bad = error_of(
        lambda: stub.CreateCollection(
            search_pb2.CreateCollectionRequest(collection="odd", params=index_pb2.IndexParams(lsh_bits=30))
        )
    )
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT and "lsh_bits must be between 1 and 24" in (
        bad.details() or ""
    )
    stub.DropCollection(index_pb2.DropCollectionRequest(collection="tuned"))


def test_adding_to_a_collection_of_a_model_no_longer_served_is_a_failed_precondition(
    suite: Suite, stub: search_pb2_grpc.SearchServiceStub
) -> None:
    """A collection made (here straight on the index) for a model the encoder does not serve."""
    index = index_pb2_grpc.IndexServiceStub(grpc.insecure_channel(suite.index.address))
    index.EnsureCollection(
        index_pb2.EnsureCollectionRequest(collection="orphan", dim=1280, model="retired_model")
    )
    for call in (
        lambda: stub.AddImage(search_pb2.AddImageRequest(id="x", image=jpeg(), collection="orphan")),
        lambda: search(stub, jpeg(), "orphan"),
    ):
        failed = error_of(call)
        assert failed.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "does not serve model 'retired_model'" in (failed.details() or "")
    index.DropCollection(index_pb2.DropCollectionRequest(collection="orphan"))
