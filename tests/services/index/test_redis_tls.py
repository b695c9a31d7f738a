"""The LSH store over TLS and mutual TLS to a real redis-server, with a CA made in the test."""

from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
import redis
from pydantic import ValidationError

from devtools.embedded_redis import EmbeddedRedis, RedisTls
from imsearch.v1 import index_pb2
from services.index.app import IndexApp, start_index
from services.index.settings import IndexSettings
from tests.certificates import CertificateAuthority, Issued
from tests.services.index.test_index_service import fill, search, stub_for

Start = Callable[..., IndexApp]


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority(tmp_path / "ca")


@pytest.fixture
def client_cert(ca: CertificateAuthority) -> Issued:
    return ca.issue("index", server=False)


@pytest.fixture
def tls_redis(tmp_path: Path, ca: CertificateAuthority, client_cert: Issued) -> Iterator[EmbeddedRedis]:
    """TLS only, demanding a client certificate from our CA."""
    server = ca.issue("redis")
    tls = RedisTls(server.cert, server.key, ca.cert, client_cert.cert, client_cert.key)
    running = EmbeddedRedis(tmp_path / "redis", tls=tls)
    yield running
    running.stop()


@pytest.fixture
def start(tmp_path: Path, tls_redis: EmbeddedRedis) -> Iterator[Start]:
    apps: list[IndexApp] = []

    def starter(**tls: Path) -> IndexApp:
        settings = IndexSettings(
            listen="127.0.0.1:0", metrics_port=-1, data_dir=tmp_path / "data", redis_url=tls_redis.url, **tls
        )
        apps.append(start_index(settings))
        return apps[-1]

    yield starter
    for app in apps:
        app.stop()


def test_the_index_works_over_mutual_tls(start: Start, ca: CertificateAuthority, client_cert: Issued) -> None:
    stub = stub_for(
        start(redis_tls_ca=ca.cert, redis_tls_cert=client_cert.cert, redis_tls_key=client_cert.key)
    )
    fill(stub, 50)
    info = stub.GetCollectionInfo(index_pb2.GetCollectionInfoRequest(collection="c"))
    assert (info.points, info.lsh_points) == (50, 50)
    assert search(stub, 7, index_pb2.INDEX_KIND_LSH)[0] == "p7"


@pytest.mark.parametrize("missing", ["client certificate", "trusted CA"])
def test_without_the_right_credentials_writes_are_unavailable_and_nothing_is_stored(
    start: Start, tmp_path: Path, ca: CertificateAuthority, client_cert: Issued, missing: str
) -> None:
    if missing == "client certificate":
        app = start(redis_tls_ca=ca.cert)
    else:
        stranger = CertificateAuthority(tmp_path / "stranger", name="someone else")
        app = start(
            redis_tls_ca=stranger.cert, redis_tls_cert=client_cert.cert, redis_tls_key=client_cert.key
        )
    stub = stub_for(app)
    with pytest.raises(grpc.RpcError) as error:
        stub.EnsureCollection(index_pb2.EnsureCollectionRequest(collection="c", dim=16))
    assert error.value.code() == grpc.StatusCode.UNAVAILABLE, error.value.details()
    assert "Redis" in (error.value.details() or "")
    assert not (tmp_path / "data" / "qdrant" / "c").exists()


def test_plain_text_is_refused_by_a_tls_redis(tls_redis: EmbeddedRedis) -> None:
    with pytest.raises(redis.exceptions.ConnectionError):
        redis.Redis.from_url(tls_redis.url.replace("rediss://", "redis://"), socket_timeout=5).ping()


def test_tls_files_need_a_rediss_url(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="need a rediss:// redis_url"):
        IndexSettings(redis_url="redis://127.0.0.1:6379/0", redis_tls_ca=tmp_path / "ca.pem")
    with pytest.raises(ValidationError, match="go together"):
        IndexSettings(redis_url="rediss://127.0.0.1:6379/0", redis_tls_cert=tmp_path / "c.pem")
