"""Every kind of hostile input, through the gateway and straight to the internal services.

Each case must get its own status code and message within the call's deadline; afterwards all
three services still report SERVING, and an audit finds the stored data exactly as before: the
same points with the same vectors and metadata in both stores, no new collection, directory or
Redis key, nothing created outside the data directory.
"""

import io
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import redis
from google.protobuf import struct_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from PIL import Image

from cli.suite import Suite, start_suite
from imsearch.client import SearchClient
from imsearch.core.channels import MAX_MESSAGE_BYTES
from imsearch.core.validation import MAX_IDS_PER_REQUEST
from imsearch.v1 import encoder_pb2, index_pb2, search_pb2
from tests.helpers import MODEL_REPOSITORY, huge_png_header, jpeg, tiff, truncated_jpeg

COLLECTION = "efficientnet_lite0"  # the default collection, named after the default model
GALLERY = [f"g{i}" for i in range(24)]
CALL_TIMEOUT_S = 30.0  # a case that hangs fails as DEADLINE_EXCEEDED, not as a hung test


@dataclass(frozen=True)
class Stored:
    """What an audit compares: the points, both stores' counts, and every name on disk or in Redis."""

    points: tuple[tuple[str, bytes, bytes], ...]
    counts: tuple[int, int]
    shards: frozenset[str]
    redis_keys: frozenset[bytes]
    beside_data_dir: frozenset[str]


@dataclass(frozen=True)
class Case:
    service: str  # "SearchService", "EncoderService" or "IndexService"
    method: str
    request: Any  # a message, raw bytes, or a list of messages for a client stream
    code: grpc.StatusCode
    message: str


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("matrix") / "data"


@pytest.fixture(scope="module")
def suite(data_dir: Path) -> Iterator[Suite]:
    running = start_suite(
        data_dir, listen="127.0.0.1:0", model_repository=MODEL_REPOSITORY, free_metrics_ports=True
    )
    with SearchClient(running.address) as client:
        client.add_images((i, jpeg(n), {"n": n, "tag": "gallery"}) for n, i in enumerate(GALLERY))
    yield running
    running.stop()


def address_of(suite: Suite, service: str) -> str:
    return {
        "SearchService": suite.address,
        "EncoderService": suite.encoder.address,
        "IndexService": suite.index.address,
    }[service]


def call(suite: Suite, case: Case) -> grpc.RpcError:
    channel = grpc.insecure_channel(address_of(suite, case.service))
    path = f"/imsearch.v1.{case.service}/{case.method}"
    encode: Callable[[Any], bytes] = lambda m: m if isinstance(m, bytes) else m.SerializeToString()  # noqa: E731
    try:
        if isinstance(case.request, list):
            stream: grpc.StreamUnaryMultiCallable[Any, bytes] = channel.stream_unary(
                path, request_serializer=encode
            )
            stream(iter(case.request), timeout=CALL_TIMEOUT_S)
        else:
            unary: grpc.UnaryUnaryMultiCallable[Any, bytes] = channel.unary_unary(
                path, request_serializer=encode
            )
            unary(case.request, timeout=CALL_TIMEOUT_S)
    except grpc.RpcError as error:
        return error
    finally:
        channel.close()
    raise AssertionError(f"{case.service}.{case.method} accepted a bad request")


def audit(suite: Suite, data_dir: Path) -> Stored:
    channel = grpc.insecure_channel(suite.index.address)
    get = channel.unary_unary(
        "/imsearch.v1.IndexService/GetVectors",
        request_serializer=index_pb2.GetVectorsRequest.SerializeToString,
        response_deserializer=index_pb2.GetVectorsResponse.FromString,
    )
    info = channel.unary_unary(
        "/imsearch.v1.IndexService/GetCollectionInfo",
        request_serializer=index_pb2.GetCollectionInfoRequest.SerializeToString,
        response_deserializer=index_pb2.CollectionInfo.FromString,
    )
    points = get(index_pb2.GetVectorsRequest(collection=COLLECTION, ids=GALLERY)).points
    sizes = info(index_pb2.GetCollectionInfoRequest(collection=COLLECTION))
    channel.close()
    assert suite.redis is not None
    keys = redis.Redis.from_url(suite.redis.url).keys("*")
    return Stored(
        points=tuple(
            (
                p.id,
                np.asarray(p.vector, np.float32).tobytes(),
                p.metadata.SerializeToString(deterministic=True),
            )
            for p in sorted(points, key=lambda p: p.id)
        ),
        counts=(sizes.points, sizes.lsh_points),
        shards=frozenset(p.name for p in (data_dir / "qdrant").iterdir()),
        redis_keys=frozenset(keys),
        beside_data_dir=frozenset(p.name for p in data_dir.parent.iterdir()),
    )


def serving(suite: Suite) -> list[str]:
    statuses = []
    for service in ("SearchService", "EncoderService", "IndexService"):
        with grpc.insecure_channel(address_of(suite, service)) as channel:
            check = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
            statuses.append(health_pb2.HealthCheckResponse.ServingStatus.Name(check.status))
    return statuses


def thin_png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (10, 200, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def struct(**values: Any) -> struct_pb2.Struct:
    made = struct_pb2.Struct()
    made.update(values)
    return made


def nested(depth: int) -> struct_pb2.Struct:
    inner: dict[str, Any] = {"leaf": 1}
    for _ in range(depth):
        inner = {"a": inner}
    return struct(a=inner)


def unit(seed: int, dim: int = 1280) -> list[float]:
    return list(np.random.default_rng(seed).standard_normal(dim).astype(np.float32))


INVALID = grpc.StatusCode.INVALID_ARGUMENT
INVALID_UTF8_ID = b"\x0a\x02\xff\xfe\x12\x01x"  # field 1 (a string) holding bytes that are not UTF-8
TOO_MANY_IDS = [f"p{i}" for i in range(MAX_IDS_PER_REQUEST + 1)]
Add, Search = search_pb2.AddImageRequest, search_pb2.SearchRequest
Encode = encoder_pb2.EncodeRequest
Point = index_pb2.Point

GATEWAY_CASES = {
    "empty image": Case("SearchService", "AddImage", Add(id="x", image=b""), INVALID, "image is empty"),
    "html": Case("SearchService", "AddImage", Add(id="x", image=b"<html>"), INVALID, "not a decodable image"),
    "tiff": Case("SearchService", "AddImage", Add(id="x", image=tiff()), INVALID, "accepted formats"),
    "truncated": Case("SearchService", "AddImage", Add(id="x", image=truncated_jpeg()), INVALID, "could not be decoded"),
    "bomb header": Case("SearchService", "AddImage", Add(id="x", image=huge_png_header()), INVALID, "pixel limit"),
    "1x10000 strip": Case("SearchService", "AddImage", Add(id="x", image=thin_png(1, 10_000)), INVALID, "aspect ratio"),
    "21 MB image": Case("SearchService", "AddImage", Add(id="x", image=b"\0" * (21 << 20)), grpc.StatusCode.RESOURCE_EXHAUSTED, "byte limit"),
    "over message size": Case("SearchService", "AddImage", Add(id="x", image=b"\0" * (MAX_MESSAGE_BYTES + 1)), grpc.StatusCode.RESOURCE_EXHAUSTED, "larger than max"),
    "empty id": Case("SearchService", "AddImage", Add(id="", image=jpeg()), INVALID, "id is empty"),
    "long id": Case("SearchService", "AddImage", Add(id="é" * 200, image=jpeg()), INVALID, "longer than 256 bytes"),
    "invalid UTF-8 id": Case("SearchService", "AddImage", INVALID_UTF8_ID, INVALID, "not a valid message"),
    "nested metadata": Case("SearchService", "AddImage", Add(id="x", image=jpeg(), metadata=nested(20)), INVALID, "nested more than"),
    "infinite metadata": Case("SearchService", "AddImage", Add(id="x", image=jpeg(), metadata=struct(n=math.inf)), INVALID, "finite"),
    "replace with a bad image": Case("SearchService", "AddImage", Add(id="g3", image=b"corrupt"), INVALID, "not a decodable image"),
    "stream, bad item first": Case("SearchService", "AddImages", [Add(id="s0", image=b"corrupt"), Add(id="s1", image=jpeg(1))], INVALID, "item 0 (id 's0')"),
    "stream, replace with a bad image": Case("SearchService", "AddImages", [Add(id="g1", image=b"x"), Add(id="g2", image=jpeg(1))], INVALID, "item 0 (id 'g1')"),
    "search, not an image": Case("SearchService", "Search", Search(image=b"nope"), INVALID, "not a decodable image"),
    "search, top_k 1001": Case("SearchService", "Search", Search(image=jpeg(), top_k=1001), INVALID, "top_k must be between 1 and 1000"),
    "search, unknown index": Case("SearchService", "Search", Search(image=jpeg(), index=7), INVALID, "unknown index 7"),
    "search, unknown rerank": Case("SearchService", "Search", Search(image=jpeg(), rerank=9), INVALID, "unknown rerank mode"),
    "search, filter key [": Case("SearchService", "Search", Search(image=jpeg(), filter=struct(**{"[": 1})), INVALID, "filter key"),
    "search, dotted filter key": Case("SearchService", "Search", Search(image=jpeg(), filter=struct(**{"a..b": 1})), INVALID, "filter key"),
    "search, float filter": Case("SearchService", "Search", Search(image=jpeg(), filter=struct(n=0.5)), INVALID, "filter value"),
    "search, garbage bytes": Case("SearchService", "Search", b"\xff" * 64, INVALID, "not a valid message"),
    "delete, too many ids": Case("SearchService", "DeleteImages", search_pb2.DeleteImagesRequest(ids=TOO_MANY_IDS), INVALID, f"at most {MAX_IDS_PER_REQUEST}"),
    "delete, empty id": Case("SearchService", "DeleteImages", search_pb2.DeleteImagesRequest(ids=["g1", ""]), INVALID, "id is empty"),
}  # fmt: skip

ENCODER_CASES = {
    "unknown model": Case("EncoderService", "Encode", Encode(model="no_such_model", images=[jpeg()]), grpc.StatusCode.NOT_FOUND, "unknown model"),
    "model name as a path": Case("EncoderService", "Encode", Encode(model="../efficientnet_lite0", images=[jpeg()]), INVALID, "model name"),
    "5000-character model name": Case("EncoderService", "Encode", Encode(model="m" * 5000, images=[jpeg()]), INVALID, "model name"),
    "no images": Case("EncoderService", "Encode", Encode(images=[]), INVALID, "no images"),
    "second image bad": Case("EncoderService", "Encode", Encode(images=[jpeg(), b"GIF89a nonsense"]), INVALID, "image 1"),
    "40000x1 strip": Case("EncoderService", "Encode", Encode(images=[thin_png(40_000, 1)]), INVALID, "aspect ratio"),
}  # fmt: skip


def index_case(method: str, request: Any, message: str, code: grpc.StatusCode = INVALID) -> Case:
    return Case("IndexService", method, request, code, message)


Ensure, Upsert = index_pb2.EnsureCollectionRequest, index_pb2.UpsertRequest
VectorSearch = index_pb2.SearchVectorRequest
INDEX_CASES = {
    **{
        f"collection {name!r}": index_case("EnsureCollection", Ensure(collection=name, dim=4), "collection name")
        for name in (".", "..", "/tmp/x", "../../x", "a:b", "a*b", "a\nb", "x" * 5000)
    },
    "redefine the dimension": index_case("EnsureCollection", Ensure(collection=COLLECTION, dim=4), "dimension", grpc.StatusCode.FAILED_PRECONDITION),
    "dim 0": index_case("EnsureCollection", Ensure(collection="fresh", dim=0), "dim must be"),
    "upsert, wrong dimension": index_case("Upsert", Upsert(collection=COLLECTION, points=[Point(id="g1", vector=[1.0] * 3)]), "dimension 3"),
    "upsert, NaN after a good point": index_case("Upsert", Upsert(collection=COLLECTION, points=[Point(id="g1", vector=unit(1)), Point(id="n", vector=[math.nan] * 1280)]), "NaN"),
    "upsert, zero vector": index_case("Upsert", Upsert(collection=COLLECTION, points=[Point(id="g2", vector=[0.0] * 1280)]), "all zeros"),
    "upsert, duplicate ids": index_case("Upsert", Upsert(collection=COLLECTION, points=[Point(id="g1", vector=unit(1)), Point(id="g1", vector=unit(2))]), "twice"),
    "upsert, unknown collection": index_case("Upsert", Upsert(collection="nope", points=[Point(id="a", vector=unit(1))]), "does not exist", grpc.StatusCode.NOT_FOUND),
    "upsert, too many points": index_case("Upsert", Upsert(collection=COLLECTION, points=[Point(id=i, vector=[1.0]) for i in TOO_MANY_IDS]), f"at most {MAX_IDS_PER_REQUEST}"),
    "search, top_k 0": index_case("Search", VectorSearch(collection=COLLECTION, vector=unit(1), top_k=0), "top_k"),
    "search, unknown index": index_case("Search", VectorSearch(collection=COLLECTION, vector=unit(1), top_k=5, index=9), "unknown index"),
    "search, filter key [": index_case("Search", VectorSearch(collection=COLLECTION, vector=unit(1), top_k=5, filter=struct(**{"[": 1})), "filter key"),
    "search, infinite vector": index_case("Search", VectorSearch(collection=COLLECTION, vector=[math.inf] * 1280, top_k=5), "NaN or infinite"),
    "delete, too many ids": index_case("Delete", index_pb2.DeleteRequest(collection=COLLECTION, ids=TOO_MANY_IDS), f"at most {MAX_IDS_PER_REQUEST}"),
    "delete, invalid UTF-8 id": index_case("Delete", b"\x0a\x01c\x12\x02\xff\xfe", "not a valid message"),
    "get vectors, too many ids": index_case("GetVectors", index_pb2.GetVectorsRequest(collection=COLLECTION, ids=TOO_MANY_IDS), f"at most {MAX_IDS_PER_REQUEST}"),
    "verify, collection as a path": index_case("Verify", index_pb2.VerifyRequest(collection="../../x", repair=True), "collection name"),
}  # fmt: skip

CASES = {**GATEWAY_CASES, **ENCODER_CASES, **INDEX_CASES}


@pytest.fixture(scope="module")
def before(suite: Suite, data_dir: Path) -> Stored:
    stored = audit(suite, data_dir)
    assert stored.counts == (len(GALLERY), len(GALLERY)) and len(stored.points) == len(GALLERY)
    return stored


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_each_bad_input_gets_its_code_and_changes_nothing(
    suite: Suite, data_dir: Path, before: Stored, case: Case
) -> None:
    error = call(suite, case)
    assert (error.code(), case.message in (error.details() or "")) == (case.code, True), error.details()
    assert serving(suite) == ["SERVING"] * 3
    assert audit(suite, data_dir) == before
    assert not Path("/tmp/x").exists()


def test_after_every_case_the_stores_agree_point_by_point(suite: Suite, before: Stored) -> None:
    """Runs last (file order): the deep audit compares vectors and metadata in both stores."""
    with SearchClient(suite.address) as client:
        report = client.verify()
        assert (report.points, report.lsh_points) == (len(GALLERY), len(GALLERY))
        assert (report.missing_in_lsh, report.extra_in_lsh, report.diverged) == (0, 0, 0)
        assert client.search(jpeg(5), top_k=1, index="lsh").results[0].id == "g5"
