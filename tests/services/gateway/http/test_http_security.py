"""The HTTP front keeps the gRPC port's security: TLS, mutual TLS, bearer tokens and roles; and
the statuses of a suite in trouble (a dependency down, admission full)."""

import base64
import json
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cli.suite import Suite
from imsearch.core.auth import token_digest
from imsearch.core.service_settings import InsecureBindRefused
from services.gateway.settings import GatewaySettings
from tests.certificates import CertificateAuthority
from tests.conftest import start_http_suite
from tests.helpers import jpeg

TOKENS = {"search": "h-search-0123", "write": "h-write-4567", "admin": "h-admin-89ab"}


def auth_file(folder: Path) -> Path:
    path = folder / "auth"
    path.write_text("".join(f"{role} {token_digest(t)}\n" for role, t in TOKENS.items()))
    return path


@pytest.fixture(scope="module")
def tls_suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Suite, CertificateAuthority]]:
    folder = tmp_path_factory.mktemp("http-tls")
    ca = CertificateAuthority(folder / "ca")
    server = ca.issue("gateway")
    suite = start_http_suite(
        folder / "data",
        tls_cert=server.cert,
        tls_key=server.key,
        auth_file=auth_file(folder),
    )
    yield suite, ca
    suite.stop()


def client(url: str, ca: CertificateAuthority, token: str | None = None) -> httpx.Client:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(
        base_url=url, verify=ssl.create_default_context(cafile=ca.cert), headers=headers, timeout=60
    )


def test_https_with_roles(tls_suite: tuple[Suite, CertificateAuthority]) -> None:
    suite, ca = tls_suite
    url = suite.gateway.http_url
    assert url is not None and url.startswith("https://")
    with client(url, ca) as anonymous:
        refused = anonymous.get("/v1/collections")
        assert refused.status_code == 401 and refused.json()["status"] == "UNAUTHENTICATED"
    with client(url, ca, "not-a-token") as stranger:
        assert stranger.get("/v1/collections").status_code == 401
    image = base64.b64encode(jpeg(1)).decode()
    with client(url, ca, TOKENS["search"]) as reader:
        assert reader.get("/v1/collections").status_code == 200
        denied = reader.post("/v1/images", json={"id": "a", "image": image})
        assert denied.status_code == 403 and "write" in denied.json()["message"]
    with client(url, ca, TOKENS["write"]) as writer:
        assert writer.post("/v1/images", json={"id": "a", "image": image}).status_code == 200
        assert writer.post("/v1/verify", json={}).status_code == 403  # admin only
    with client(url, ca, TOKENS["admin"]) as admin:
        assert admin.post("/v1/verify", json={}).status_code == 200
    with client(url, ca, "x") as malformed:
        bad_scheme = malformed.get("/v1/collections", headers={"authorization": "Basic abc"})
        assert bad_scheme.status_code == 401


def test_plain_http_cannot_talk_to_the_tls_port(tls_suite: tuple[Suite, CertificateAuthority]) -> None:
    suite, _ = tls_suite
    assert suite.gateway.http_url is not None
    plain = suite.gateway.http_url.replace("https://", "http://")
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{plain}/v1/collections", timeout=10).raise_for_status()


def test_mutual_tls_callers_count_as_admin(tmp_path: Path) -> None:
    ca, stranger = CertificateAuthority(tmp_path / "ca"), CertificateAuthority(tmp_path / "other", "other CA")
    server, caller = ca.issue("gateway"), ca.issue("caller", server=False)
    intruder = stranger.issue("intruder", server=False)
    suite = start_http_suite(
        tmp_path / "data",
        tls_cert=server.cert,
        tls_key=server.key,
        tls_client_ca=ca.cert,
    )
    try:
        assert suite.gateway.http_url is not None

        def status(cert: Path | None, key: Path | None) -> int | str:
            context = ssl.create_default_context(cafile=ca.cert)
            if cert and key:
                context.load_cert_chain(cert, key)
            try:
                with httpx.Client(base_url=suite.gateway.http_url or "", verify=context, timeout=30) as http:
                    return http.post("/v1/verify", json={}).status_code  # an admin call
            except httpx.HTTPError as exc:
                return type(exc).__name__

        assert status(caller.cert, caller.key) == 200
        assert status(None, None) != 200  # the handshake fails without a certificate
        assert status(intruder.cert, intruder.key) != 200
    finally:
        suite.stop()


def test_an_exposed_http_port_needs_tls_and_credentials() -> None:
    settings = GatewaySettings(listen="127.0.0.1:0", http_listen="0.0.0.0:8080")
    with pytest.raises(InsecureBindRefused, match=r"0\.0\.0\.0:8080"):
        settings.server_security({})


def test_a_stopped_encoder_is_503_and_full_admission_is_429(tmp_path: Path) -> None:
    suite = start_http_suite(tmp_path / "data", config={"gateway": {"max_concurrent_rpcs": 1}})
    try:
        assert suite.gateway.http_url is not None
        image = base64.b64encode(jpeg(2, size=(1600, 1200))).decode()
        statuses: list[int] = []

        def search() -> None:
            with httpx.Client(base_url=suite.gateway.http_url or "", timeout=60) as http:
                statuses.append(http.post("/v1/search", json={"image": image, "topK": 1}).status_code)

        threads = [threading.Thread(target=search) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert 200 in statuses and 429 in statuses, statuses

        suite.encoder.stop()
        with httpx.Client(base_url=suite.gateway.http_url, timeout=60) as http:
            down = http.post("/v1/search", json={"image": image, "topK": 1})
        assert down.status_code == 503, down.text
        assert down.json()["status"] == "UNAVAILABLE"
    finally:
        suite.stop()


def test_an_image_over_the_limit_is_413_not_429(tmp_path: Path) -> None:
    suite = start_http_suite(
        tmp_path / "data",
        config={"gateway": {"max_image_bytes": 50_000}, "encoder": {"max_image_bytes": 50_000}},
    )
    try:
        assert suite.gateway.http_url is not None
        big = base64.b64encode(jpeg(3, size=(1200, 900), quality=100)).decode()
        with httpx.Client(base_url=suite.gateway.http_url, timeout=60) as http:
            added = http.post("/v1/images", json={"id": "big", "image": big})
            searched = http.post("/v1/search", json={"image": big})  # refused by the encoder
        assert added.status_code == 413 and "limit" in added.json()["message"]
        assert searched.status_code == 413, searched.text
    finally:
        suite.stop()


def test_stalled_bodies_get_408_and_the_stream_keeps_what_came(tmp_path: Path) -> None:
    suite = start_http_suite(tmp_path / "data", config={"gateway": {"stream_idle_timeout_s": 1}})
    try:
        assert suite.gateway.http_url is not None
        line = json.dumps({"id": "before-stall", "image": base64.b64encode(jpeg(9)).decode()}).encode()

        def stalling(first: bytes) -> Iterator[bytes]:
            yield first
            time.sleep(3)
            yield b"\n"

        with httpx.Client(base_url=suite.gateway.http_url, timeout=60) as http:
            unary = http.post("/v1/search", content=stalling(b'{"topK": 1'))
            assert unary.status_code == 408 and "no body data" in unary.json()["message"]
            stream = http.post("/v1/images:stream", content=stalling(line + b"\n"))
            assert stream.status_code == 408, stream.text
            assert stream.headers["imsearch-items-stored"] == "1"
            assert http.get("/v1/stats").json()["collection"]["points"] == "1"  # still up, one stored
    finally:
        suite.stop()
