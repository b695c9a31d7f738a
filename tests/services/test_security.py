"""TLS, mutual TLS, bearer tokens and roles, on every service of a real suite."""

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from cli.suite import Suite, start_suite
from imsearch.core.auth import Credentials, token_digest
from imsearch.core.channels import ClientSecurity, open_channel, wait_for_channel
from imsearch.core.service_settings import InsecureBindRefused, ServiceSettings
from imsearch.v1 import encoder_pb2, encoder_pb2_grpc, index_pb2, index_pb2_grpc, search_pb2, search_pb2_grpc
from services.encoder.app import start_encoder
from services.encoder.settings import EncoderSettings
from services.gateway.settings import GatewaySettings
from tests.certificates import CertificateAuthority
from tests.helpers import MODEL_REPOSITORY, jpeg

TOKENS = {"search": "t-search-0123", "write": "t-write-4567", "admin": "t-admin-89ab"}


@dataclass
class Secured:
    suite: Suite
    ca: Path

    def channel(self, address: str, token: str | None, tls: bool = True) -> grpc.Channel:
        return open_channel(address, ClientSecurity(tls_ca=self.ca if tls else None, token=token))


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    folder = tmp_path_factory.mktemp("security")
    ca = CertificateAuthority(folder / "ca")
    server = ca.issue("gateway")
    auth_file = folder / "auth"
    auth_file.write_text(
        "# role sha256(token)\n" + "".join(f"{role} {token_digest(t)}\n" for role, t in TOKENS.items())
    )
    suite = start_suite(
        folder / "data",
        listen="127.0.0.1:0",
        model_repository=MODEL_REPOSITORY,
        free_metrics_ports=True,
        gateway_flags={"tls_cert": server.cert, "tls_key": server.key, "auth_file": auth_file},
    )
    yield Secured(suite, ca.cert)
    suite.stop()


def code_of(call: Callable[[], Any]) -> grpc.StatusCode:
    try:
        call()
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


GATEWAY_CALLS: dict[str, tuple[str, Callable[[search_pb2_grpc.SearchServiceStub], Any]]] = {
    "Search": ("search", lambda s: s.Search(search_pb2.SearchRequest(image=jpeg(1)), timeout=30)),
    "SearchBatch": (
        "search",
        lambda s: s.SearchBatch(
            search_pb2.SearchBatchRequest(queries=[search_pb2.SearchRequest(image=jpeg(1))]), timeout=30
        ),
    ),
    "FindDuplicates": (
        "search",
        lambda s: s.FindDuplicates(index_pb2.FindDuplicatesRequest(), timeout=30),
    ),
    "GetStats": ("search", lambda s: s.GetStats(search_pb2.GetStatsRequest(), timeout=30)),
    "AddImage": (
        "write",
        lambda s: s.AddImage(search_pb2.AddImageRequest(id="s1", image=jpeg(1)), timeout=30),
    ),
    "AddImages": (
        "write",
        lambda s: s.AddImages(iter([search_pb2.AddImageRequest(id="s2", image=jpeg(2))]), timeout=30),
    ),
    "DeleteImages": (
        "write",
        lambda s: s.DeleteImages(search_pb2.DeleteImagesRequest(ids=["s9"]), timeout=30),
    ),
    "ListCollections": (
        "search",
        lambda s: s.ListCollections(index_pb2.ListCollectionsRequest(), timeout=30),
    ),
    "DescribeCollection": (
        "search",
        lambda s: s.DescribeCollection(index_pb2.GetCollectionInfoRequest(), timeout=30),
    ),
    "CreateCollection": (
        "admin",
        lambda s: s.CreateCollection(search_pb2.CreateCollectionRequest(collection="made"), timeout=30),
    ),
    "DropCollection": (
        "admin",
        lambda s: s.DropCollection(index_pb2.DropCollectionRequest(collection="never-made"), timeout=30),
    ),
    "VerifyIndex": ("admin", lambda s: s.VerifyIndex(index_pb2.VerifyRequest(), timeout=60)),
}
RANK = {"search": 1, "write": 2, "admin": 3}


def test_every_gateway_call_is_tried() -> None:
    methods = search_pb2.DESCRIPTOR.services_by_name["SearchService"].methods_by_name
    assert set(GATEWAY_CALLS) == set(methods)


@pytest.mark.parametrize("role", ["search", "write", "admin"])
@pytest.mark.parametrize("method", sorted(GATEWAY_CALLS))
def test_each_role_on_each_gateway_call(secured: Secured, role: str, method: str) -> None:
    needed, call = GATEWAY_CALLS[method]
    stub = search_pb2_grpc.SearchServiceStub(secured.channel(secured.suite.address, TOKENS[role]))
    expected = grpc.StatusCode.OK if RANK[role] >= RANK[needed] else grpc.StatusCode.PERMISSION_DENIED
    assert code_of(lambda: call(stub)) == expected


def test_callers_without_a_known_token_are_unauthenticated(secured: Secured) -> None:
    for token in (None, "not-a-token"):
        stub = search_pb2_grpc.SearchServiceStub(secured.channel(secured.suite.address, token))
        with pytest.raises(grpc.RpcError) as error:
            stub.Search(search_pb2.SearchRequest(image=jpeg(1)), timeout=30)
        assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert ("Bearer TOKEN" if token is None else "unknown bearer token") in (error.value.details() or "")


def test_plaintext_cannot_talk_to_the_tls_port_and_health_needs_no_token(secured: Secured) -> None:
    plain = search_pb2_grpc.SearchServiceStub(
        secured.channel(secured.suite.address, TOKENS["admin"], tls=False)
    )
    assert (
        code_of(lambda: plain.GetStats(search_pb2.GetStatsRequest(), timeout=5))
        == grpc.StatusCode.UNAVAILABLE
    )
    health = health_pb2_grpc.HealthStub(secured.channel(secured.suite.address, None))
    assert (
        health.Check(health_pb2.HealthCheckRequest(), timeout=10).status
        == health_pb2.HealthCheckResponse.SERVING
    )


@pytest.mark.parametrize("role", ["search", "write", "admin", None])
def test_the_internal_services_take_only_admin(secured: Secured, role: str | None) -> None:
    """Nothing reaches the encoder or the index around the gateway: search and write tokens
    are refused there, and so is a caller with no token."""
    token = TOKENS[role] if role else None
    encoder = encoder_pb2_grpc.EncoderServiceStub(
        secured.channel(secured.suite.encoder.address, token, tls=False)
    )
    index = index_pb2_grpc.IndexServiceStub(secured.channel(secured.suite.index.address, token, tls=False))
    calls = [
        lambda: encoder.ListModels(encoder_pb2.ListModelsRequest(), timeout=10),
        lambda: index.GetCollectionInfo(
            index_pb2.GetCollectionInfoRequest(collection="efficientnet_lite0"), timeout=10
        ),
        lambda: index.Delete(
            index_pb2.DeleteRequest(collection="efficientnet_lite0", ids=["s1"]), timeout=10
        ),
    ]
    expected = {
        "admin": grpc.StatusCode.OK,
        None: grpc.StatusCode.UNAUTHENTICATED,
    }.get(role, grpc.StatusCode.PERMISSION_DENIED)
    assert [code_of(c) for c in calls] == [expected] * 3


def test_mutual_tls_on_the_internal_hops(tmp_path: Path) -> None:
    """An encoder that demands client certificates: the gateway's hop presents one and works;
    a caller with no certificate, or one from another CA, does not get in."""
    ca, stranger = CertificateAuthority(tmp_path / "ca"), CertificateAuthority(tmp_path / "other", "other CA")
    encoder_cert, gateway_cert = ca.issue("encoder"), ca.issue("gateway-client", server=False)
    foreign = stranger.issue("intruder", server=False)
    encoder = start_encoder(
        EncoderSettings(
            model_repository=MODEL_REPOSITORY,
            metrics_port=-1,
            tls_cert=encoder_cert.cert,
            tls_key=encoder_cert.key,
            tls_client_ca=ca.cert,
        )
    )
    try:

        def list_models(security: ClientSecurity) -> grpc.StatusCode:
            stub = encoder_pb2_grpc.EncoderServiceStub(open_channel(encoder.address, security))
            return code_of(lambda: stub.ListModels(encoder_pb2.ListModelsRequest(), timeout=5))

        assert list_models(ClientSecurity(ca.cert, gateway_cert.cert, gateway_cert.key)) == grpc.StatusCode.OK
        assert list_models(ClientSecurity(ca.cert)) == grpc.StatusCode.UNAVAILABLE
        assert list_models(ClientSecurity(ca.cert, foreign.cert, foreign.key)) == grpc.StatusCode.UNAVAILABLE
        # The gateway's hops, from its settings: with its client certificate they connect.
        hops = GatewaySettings(
            hop_tls_ca=ca.cert, hop_tls_cert=gateway_cert.cert, hop_tls_key=gateway_cert.key
        )
        channel = wait_for_channel(encoder.address, 10, hops.hop_security())
        assert encoder_pb2_grpc.EncoderServiceStub(channel).ListModels(encoder_pb2.ListModelsRequest()).models
        channel.close()
        with pytest.raises(grpc.FutureTimeoutError):
            wait_for_channel(encoder.address, 2, GatewaySettings(hop_tls_ca=ca.cert).hop_security())
    finally:
        encoder.stop()


@pytest.mark.parametrize(
    ("fields", "refused"),
    [
        ({"listen": "0.0.0.0:50050"}, True),
        ({"listen": "[::]:50050"}, True),
        ({"listen": "10.0.0.5:50050"}, True),
        ({"listen": "0.0.0.0:50050", "insecure": True}, False),
        ({"listen": "127.0.0.1:50050"}, False),
        ({"listen": "[::1]:50050"}, False),
        ({"listen": "localhost:50050"}, False),
    ],
)
def test_a_public_bind_without_credentials_is_refused(fields: dict[str, Any], refused: bool) -> None:
    settings = ServiceSettings(**fields)
    if refused:
        with pytest.raises(InsecureBindRefused, match="--auth-file FILE"):
            settings.server_security({})
    else:
        settings.server_security({})


def test_a_public_bind_with_tls_and_tokens_starts(tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path)
    cert = ca.issue("server")
    auth = tmp_path / "auth"
    auth.write_text(f"search {token_digest('x')}\n")
    settings = ServiceSettings(listen="0.0.0.0:50050", tls_cert=cert.cert, tls_key=cert.key, auth_file=auth)
    security = settings.server_security({})
    assert security.credentials is not None and security.authorizer is not None


def test_a_malformed_auth_file_is_refused_without_echoing_it(tmp_path: Path) -> None:
    auth = tmp_path / "auth"
    auth.write_text("search my-secret-token\n")
    with pytest.raises(ValueError, match=r"auth:1: expected `ROLE SHA256HEX`") as error:
        Credentials.load(auth)
    assert "my-secret-token" not in str(error.value)
