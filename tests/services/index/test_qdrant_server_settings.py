"""The Qdrant server adapter's production settings and retries, against a loopback HTTP stub:
no Qdrant server binary can run here, and a 503 from one is a fault we cannot cause for real.
The stub speaks only the few REST answers these calls read."""

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import urlparse

import pytest

from imsearch.core.errors import Unavailable
from services.index.stores.base import CollectionSpec
from services.index.stores.qdrant_server import Distribution, QdrantServerStore, RetryPolicy


class Stub(BaseHTTPRequestHandler):
    failures_left = 0
    failing_method = ""  # "": any
    seen: ClassVar[list[tuple[str, str, dict[str, Any]]]] = []

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        path = urlparse(self.path).path
        if path in ("/", ""):  # the client's version check
            return self._answer(200, {"title": "qdrant - vector search engine", "version": "1.20.0"})
        Stub.seen.append((method, path, body))
        if Stub.failures_left and Stub.failing_method in ("", method):
            Stub.failures_left -= 1
            return self._answer(503, {"status": {"error": "busy"}, "time": 0})
        if path.endswith("/exists"):
            result: Any = {"exists": False}
        elif path == "/collections":
            result = {"collections": []}
        elif path.endswith("/index"):
            result = {"operation_id": 0, "status": "completed"}
        else:
            result = True
        self._answer(200, {"result": result, "status": "ok", "time": 0})

    def do_GET(self) -> None:
        self._handle("GET")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def url() -> Iterator[str]:
    Stub.failures_left, Stub.failing_method = 0, ""
    Stub.seen.clear()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_transient_errors_of_idempotent_calls_are_retried_with_backoff(url: str) -> None:
    store = QdrantServerStore(url=url, retry=RetryPolicy(retries=3, backoff_s=0.01))
    Stub.failures_left = 2
    assert store.collections() == {}
    assert [path for _, path, _ in Stub.seen] == ["/collections"] * 3  # two 503s, then the answer


def test_past_the_retries_the_error_is_unavailable(url: str) -> None:
    store = QdrantServerStore(url=url, retry=RetryPolicy(retries=1, backoff_s=0.01))
    Stub.failures_left = 5
    with pytest.raises(Unavailable, match="503"):
        store.collections()
    assert len(Stub.seen) == 2


def test_a_new_collection_gets_the_distribution_settings_and_no_retried_create(url: str) -> None:
    store = QdrantServerStore(
        url=url, distribution=Distribution(shards=6, replication_factor=2, write_consistency=2)
    )
    store.create_collection("c", CollectionSpec(16, "m"))
    ((_, _, created),) = [(m, p, b) for m, p, b in Stub.seen if m == "PUT" and p == "/collections/c"]
    assert (created["shard_number"], created["replication_factor"], created["write_consistency_factor"]) == (
        6,
        2,
        2,
    )
    assert created["metadata"]["imsearch_model"] == "m"
    assert any(p == "/collections/c/index" and b["field_name"] == "match" for _, p, b in Stub.seen)
    Stub.failures_left, Stub.failing_method = 1, "PUT"
    Stub.seen.clear()
    with pytest.raises(Unavailable):  # creating is not idempotent: one attempt
        store.create_collection("d", CollectionSpec(16, "m"))
    assert [m for m, p, _ in Stub.seen if p == "/collections/d"] == ["PUT"]
