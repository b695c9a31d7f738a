"""The index service over real gRPC, with embedded Qdrant on disk and a real redis-server."""

from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import redis
from google.protobuf import struct_pb2

from devtools.embedded_redis import EmbeddedRedis
from imsearch.core.validation import MAX_IDS_PER_REQUEST
from imsearch.v1 import index_pb2, index_pb2_grpc
from services.index.app import IndexApp, start_index
from services.index.settings import IndexSettings
from services.index.stores.redis_lsh import LshParams, RedisLshStore

DIM = 16
Start = Callable[..., IndexApp]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    """Starts index services over one data dir; each gets its own Redis unless given one."""
    apps: list[IndexApp] = []
    redises: list[EmbeddedRedis] = []

    def starter(redis_server: EmbeddedRedis | None = None, **overrides: object) -> IndexApp:
        if redis_server is None:
            redis_server = EmbeddedRedis(tmp_path / "redis")
            redises.append(redis_server)
        settings = IndexSettings(
            listen="127.0.0.1:0",
            metrics_port=-1,
            data_dir=tmp_path,
            redis_url=redis_server.url,
            **overrides,
        )
        app = start_index(settings)
        apps.append(app)
        return app

    yield starter
    for app in apps:
        if not app.server.server._state.termination_event.is_set():  # type: ignore[attr-defined]
            app.stop()
    for server in redises:
        server.stop()


def stub_for(app: IndexApp) -> index_pb2_grpc.IndexServiceStub:
    return index_pb2_grpc.IndexServiceStub(grpc.insecure_channel(app.address))


def vec(seed: int) -> list[float]:
    return np.random.default_rng(seed).standard_normal(DIM).astype(np.float32).tolist()


def meta(**values: object) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(values)
    return struct


def fill(stub: index_pb2_grpc.IndexServiceStub, n: int = 50, collection: str = "c") -> None:
    stub.EnsureCollection(index_pb2.EnsureCollectionRequest(collection=collection, dim=DIM))
    points = [index_pb2.Point(id=f"p{i}", vector=vec(i), metadata=meta(group=i % 5)) for i in range(n)]
    stub.Upsert(index_pb2.UpsertRequest(collection=collection, points=points))


def search(
    stub: index_pb2_grpc.IndexServiceStub, seed: int, index: int, k: int = 5, **kw: object
) -> list[str]:
    request = index_pb2.SearchVectorRequest(collection="c", vector=vec(seed), top_k=k, index=index, **kw)
    return [h.id for h in stub.Search(request).hits]


def test_every_index_finds_the_point_itself_and_agrees_on_small_data(start: Start) -> None:
    stub = stub_for(start())
    fill(stub)
    for kind in (index_pb2.INDEX_KIND_HNSW, index_pb2.INDEX_KIND_LSH, index_pb2.INDEX_KIND_EXACT):
        assert search(stub, 7, kind)[0] == "p7"
    exact = search(stub, 7, index_pb2.INDEX_KIND_EXACT, k=10)
    assert search(stub, 7, index_pb2.INDEX_KIND_HNSW, k=10) == exact
    # LSH scores its float16 copies (full scan below the threshold): near-ties may swap places.
    assert len(set(search(stub, 7, index_pb2.INDEX_KIND_LSH, k=10)) & set(exact)) >= 9


def test_filter_replace_and_delete(start: Start) -> None:
    stub = stub_for(start())
    fill(stub)
    for kind in (index_pb2.INDEX_KIND_HNSW, index_pb2.INDEX_KIND_LSH):
        ids = search(stub, 7, kind, k=50, filter=meta(group=2))
        assert ids and all(int(i[1:]) % 5 == 2 for i in ids)
    stub.Upsert(index_pb2.UpsertRequest(collection="c", points=[index_pb2.Point(id="p7", vector=vec(999))]))
    assert search(stub, 999, index_pb2.INDEX_KIND_LSH, k=1) == ["p7"]
    assert search(stub, 999, index_pb2.INDEX_KIND_EXACT, k=1) == ["p7"]
    deleted = stub.Delete(index_pb2.DeleteRequest(collection="c", ids=["p7", "p8", "nope"])).deleted
    assert deleted == 2
    info = stub.GetCollectionInfo(index_pb2.GetCollectionInfoRequest(collection="c"))
    assert (info.points, info.lsh_points, info.dim) == (48, 48, DIM)


def bad(stub: index_pb2_grpc.IndexServiceStub, call: str, request: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as error:
        getattr(stub, call)(request)
    return error.value


def test_bad_requests_are_refused_and_nothing_changes(start: Start) -> None:
    stub = stub_for(start())
    fill(stub, 10)
    P = index_pb2.Point
    cases = [
        ("Upsert", index_pb2.UpsertRequest(collection="c", points=[P(id="x", vector=[1.0] * 3)]), "INVALID_ARGUMENT", "dimension 3"),
        ("Upsert", index_pb2.UpsertRequest(collection="c", points=[P(id="", vector=vec(1))]), "INVALID_ARGUMENT", "id is empty"),
        ("Upsert", index_pb2.UpsertRequest(collection="c", points=[P(id="a", vector=vec(1)), P(id="a", vector=vec(2))]), "INVALID_ARGUMENT", "twice"),
        ("Upsert", index_pb2.UpsertRequest(collection="c", points=[P(id="ok", vector=vec(1)), P(id="nan", vector=[float("nan")] * DIM)]), "INVALID_ARGUMENT", "NaN"),
        ("Upsert", index_pb2.UpsertRequest(collection="c", points=[P(id="z" * 300, vector=vec(1))]), "INVALID_ARGUMENT", "longer than 256"),
        ("Upsert", index_pb2.UpsertRequest(collection="nope", points=[P(id="a", vector=vec(1))]), "NOT_FOUND", "does not exist"),
        ("Search", index_pb2.SearchVectorRequest(collection="c", vector=vec(1), top_k=0), "INVALID_ARGUMENT", "top_k"),
        ("Search", index_pb2.SearchVectorRequest(collection="c", vector=vec(1), top_k=1001), "INVALID_ARGUMENT", "top_k"),
        ("Search", index_pb2.SearchVectorRequest(collection="c", vector=vec(1), top_k=5, index=9), "INVALID_ARGUMENT", "unknown index"),
        ("Search", index_pb2.SearchVectorRequest(collection="c", vector=[0.0] * DIM, top_k=5), "INVALID_ARGUMENT", "all zeros"),
        ("Search", index_pb2.SearchVectorRequest(collection="c", vector=vec(1), top_k=5, filter=meta(group=1.5)), "INVALID_ARGUMENT", "filter value"),
        ("EnsureCollection", index_pb2.EnsureCollectionRequest(collection="c", dim=DIM + 1), "FAILED_PRECONDITION", "dimension"),
        ("EnsureCollection", index_pb2.EnsureCollectionRequest(collection="d", dim=0), "INVALID_ARGUMENT", "dim"),
    ]  # fmt: skip
    for call, request, code, message in cases:
        error = bad(stub, call, request)
        assert (error.code().name, message in error.details()) == (code, True), (call, error.details())
    info = stub.GetCollectionInfo(index_pb2.GetCollectionInfoRequest(collection="c"))
    assert (info.points, info.lsh_points) == (10, 10)
    assert stub.GetVectors(index_pb2.GetVectorsRequest(collection="c", ids=["ok", "a"])).points == []


def test_a_redis_failure_leaves_neither_store_half_written(start: Start, tmp_path: Path) -> None:
    redis_server = EmbeddedRedis(tmp_path / "own-redis")
    stub = stub_for(start(redis_server))
    fill(stub, 10)
    before = stub.GetVectors(index_pb2.GetVectorsRequest(collection="c", ids=["p3"])).points[0]
    redis_server.stop()  # a real fault: Redis goes away mid-service
    replace = index_pb2.UpsertRequest(
        collection="c",
        points=[index_pb2.Point(id="p3", vector=vec(100)), index_pb2.Point(id="new", vector=vec(101))],
    )
    assert bad(stub, "Upsert", replace).code() == grpc.StatusCode.UNAVAILABLE
    assert (
        bad(stub, "Delete", index_pb2.DeleteRequest(collection="c", ids=["p4"])).code()
        == grpc.StatusCode.UNAVAILABLE
    )
    points = stub.GetVectors(index_pb2.GetVectorsRequest(collection="c", ids=["p3", "p4", "new"])).points
    assert [p.id for p in points] == ["p3", "p4"]  # Qdrant was put back: p3 old, p4 kept, no "new"
    np.testing.assert_allclose(points[0].vector, before.vector, atol=1e-6)
    assert search(stub, 3, index_pb2.INDEX_KIND_HNSW, k=1) == ["p3"]  # HNSW/exact still serve


def test_data_survives_a_restart_and_a_lost_lsh_store_is_repaired(start: Start, tmp_path: Path) -> None:
    redis_server = EmbeddedRedis(tmp_path / "restart-redis")
    first = start(redis_server)
    fill(stub_for(first), 30)
    first.stop()
    second = start(redis_server)  # same data dir, same Redis
    stub = stub_for(second)
    info = stub.GetCollectionInfo(index_pb2.GetCollectionInfoRequest(collection="c"))
    assert (info.points, info.lsh_points) == (30, 30)
    assert search(stub, 5, index_pb2.INDEX_KIND_LSH, k=1) == ["p5"]
    second.stop()
    redis_server.stop()
    fresh_redis = EmbeddedRedis(tmp_path / "fresh-redis")  # the LSH store is gone entirely
    stub = stub_for(start(fresh_redis))
    info = stub.GetCollectionInfo(index_pb2.GetCollectionInfoRequest(collection="c"))
    assert (info.points, info.lsh_points) == (30, 30)  # rebuilt from Qdrant at start-up
    assert search(stub, 5, index_pb2.INDEX_KIND_LSH, k=1) == ["p5"]
    fresh_redis.stop()


def test_hnsw_graph_is_built_as_the_collection_grows(start: Start) -> None:
    app = start(optimize_min_points=200)
    stub = stub_for(app)
    fill(stub, 150)
    assert not stub.GetCollectionInfo(index_pb2.GetCollectionInfoRequest(collection="c")).hnsw_built
    points = [index_pb2.Point(id=f"q{i}", vector=vec(1000 + i)) for i in range(100)]
    stub.Upsert(index_pb2.UpsertRequest(collection="c", points=points))
    app.core.wait_for_optimize()
    assert stub.GetCollectionInfo(index_pb2.GetCollectionInfoRequest(collection="c")).hnsw_built
    assert search(stub, 1042, index_pb2.INDEX_KIND_HNSW, k=1) == ["q42"]


HOSTILE_NAMES = [".", "..", "/tmp/x", "../../x", "a/b", "a*b", "a:b", "a\nb", "", " ", "-x", "é", "x" * 5000]


def tree(root: Path) -> set[Path]:
    return {p.relative_to(root) for p in root.rglob("*")}


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_collection_names_are_refused_and_touch_nothing(
    start: Start, redis_server: EmbeddedRedis, tmp_path: Path, name: str
) -> None:
    redis_client = redis.Redis.from_url(redis_server.url)
    redis_client.flushdb()
    app = start(redis_server)
    stub = stub_for(app)
    fill(stub, n=20)
    shards = tmp_path / "qdrant"
    before, keys_before = tree(shards), set(redis_client.keys("*"))
    outside = tmp_path.parent / "x"
    requests: list[Callable[[], object]] = [
        lambda: stub.EnsureCollection(index_pb2.EnsureCollectionRequest(collection=name, dim=DIM)),
        lambda: stub.Upsert(
            index_pb2.UpsertRequest(collection=name, points=[index_pb2.Point(id="a", vector=vec(1))])
        ),
        lambda: stub.Search(index_pb2.SearchVectorRequest(collection=name, vector=vec(1), top_k=3)),
        lambda: stub.Delete(index_pb2.DeleteRequest(collection=name, ids=["p1"])),
        lambda: stub.GetCollectionInfo(index_pb2.GetCollectionInfoRequest(collection=name)),
    ]
    for call in requests:
        with pytest.raises(grpc.RpcError) as error:
            call()
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT, error.value.details()
        assert "name" in (error.value.details() or "")
    assert tree(shards) == before and set(redis_client.keys("*")) == keys_before
    assert not outside.exists()  # what "../../x" would have reached
    if name == "/tmp/x":
        assert not Path(name).exists()
    assert stub.GetCollectionInfo(index_pb2.GetCollectionInfoRequest(collection="c")).points == 20
    assert len(search(stub, 1, index_pb2.INDEX_KIND_EXACT)) == 5


def test_a_shard_that_does_not_load_is_kept_not_deleted(
    start: Start, redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    redis.Redis.from_url(redis_server.url).flushdb()
    broken = tmp_path / "qdrant" / "broken"
    broken.mkdir(parents=True)
    (broken / "keep.me").write_text("a person decides what to do with this")
    (tmp_path / "qdrant" / "not a name").mkdir()
    stub = stub_for(start(redis_server))  # starts despite both
    fill(stub, n=10)
    with pytest.raises(grpc.RpcError) as error:
        stub.EnsureCollection(index_pb2.EnsureCollectionRequest(collection="broken", dim=DIM))
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert (broken / "keep.me").read_text().startswith("a person")
    assert (tmp_path / "qdrant" / "not a name").is_dir()


def test_id_lists_are_bounded(start: Start, redis_server: EmbeddedRedis) -> None:
    redis.Redis.from_url(redis_server.url).flushdb()
    stub = stub_for(start(redis_server))
    fill(stub, n=20)
    too_many = [f"p{i}" for i in range(MAX_IDS_PER_REQUEST + 1)]
    points = [index_pb2.Point(id=i, vector=vec(n)) for n, i in enumerate(too_many)]
    for call in (
        lambda: stub.Delete(index_pb2.DeleteRequest(collection="c", ids=too_many)),
        lambda: stub.GetVectors(index_pb2.GetVectorsRequest(collection="c", ids=too_many)),
        lambda: stub.Upsert(index_pb2.UpsertRequest(collection="c", points=points)),
    ):
        with pytest.raises(grpc.RpcError) as error:
            call()
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert f"at most {MAX_IDS_PER_REQUEST}" in (error.value.details() or "")
    assert stub.GetCollectionInfo(index_pb2.GetCollectionInfoRequest(collection="c")).points == 20
    assert (
        stub.Delete(index_pb2.DeleteRequest(collection="c", ids=too_many[:MAX_IDS_PER_REQUEST])).deleted == 20
    )


def test_verify_finds_every_kind_of_divergence_and_repairs_it_without_a_restart(
    start: Start, redis_server: EmbeddedRedis
) -> None:
    """Each fault a crash or a stalled Redis leaves behind, made by hand in the real Redis."""
    stub = stub_for(start(redis_server))
    fill(stub, 40)
    clean = stub.Verify(index_pb2.VerifyRequest(collection="c"))
    assert (clean.points, clean.lsh_points, clean.missing_in_lsh, clean.extra_in_lsh, clean.diverged) == (
        40, 40, 0, 0, 0,
    )  # fmt: skip
    raw = redis.Redis.from_url(redis_server.url)
    key = RedisLshStore(raw, LshParams()).point_key
    raw.hdel(key("c", "p1", "vec"), "p1")  # a point the LSH store lost
    raw.hdel(key("c", "p1", "sig"), "p1")
    raw.hset(key("c", "ghost", "vec"), "ghost", np.zeros(DIM, np.float16).tobytes())  # one Qdrant never had
    raw.hset(key("c", "ghost", "sig"), "ghost", b"\0" * 4 * 64)
    raw.hset(key("c", "p2", "vec"), "p2", np.ones(DIM, np.float16).tobytes())  # a replaced id, old vector
    raw.hset(key("c", "p3", "meta"), "p3", '{"group": 99}')  # stale metadata
    audit = stub.Verify(index_pb2.VerifyRequest(collection="c"))
    assert (audit.missing_in_lsh, audit.extra_in_lsh, audit.diverged, audit.repaired) == (1, 1, 2, 0)
    assert set(audit.sample_ids) == {"p1", "ghost", "p2", "p3"}
    repaired = stub.Verify(index_pb2.VerifyRequest(collection="c", repair=True))
    assert repaired.repaired == 4
    after = stub.Verify(index_pb2.VerifyRequest(collection="c"))
    assert (after.points, after.lsh_points, after.missing_in_lsh, after.extra_in_lsh, after.diverged) == (
        40, 40, 0, 0, 0,
    )  # fmt: skip
    assert search(stub, 2, index_pb2.INDEX_KIND_LSH, k=1) == ["p2"]


def test_a_nearly_full_disk_refuses_writes_and_keeps_serving(
    start: Start, redis_server: EmbeddedRedis
) -> None:
    """The reserve is set above the real free space: what a full disk looks like to the guard."""
    first = start(redis_server)
    fill(stub_for(first), 10)
    first.stop()
    full = stub_for(start(redis_server, min_free_disk_mb=10**12))  # the same data, restarted
    with pytest.raises(grpc.RpcError) as error:
        full.Upsert(index_pb2.UpsertRequest(collection="c", points=[index_pb2.Point(id="x", vector=vec(99))]))
    assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "MB reserve (min_free_disk_mb); searches still work" in (error.value.details() or "")
    assert search(full, 3, index_pb2.INDEX_KIND_EXACT, k=1) == ["p3"]
    info = full.GetCollectionInfo(index_pb2.GetCollectionInfoRequest(collection="c"))
    assert (info.points, info.lsh_points) == (10, 10)
