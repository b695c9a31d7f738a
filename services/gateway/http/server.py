"""Runs the HTTP front with uvicorn on a thread of the gateway's process.

The socket is bound here (port 0 resolved before anyone asks for the address); TLS comes from
the gateway's own certificate, and with a client CA every caller must present a certificate
it signed, as on the gRPC port.
"""

import logging
import socket
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from starlette.applications import Starlette

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HttpTls:
    cert: Path
    key: Path
    client_ca: Path | None = None


def _bind(listen: str) -> socket.socket:
    host, _, port = listen.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP,
    # and without it a small response waits for the client's delayed ACK (about 40 ms each).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, int(port)))
    except OSError as exc:
        sock.close()
        raise RuntimeError(f"could not bind {listen}: {exc}") from exc
    sock.listen(256)
    sock.setblocking(False)
    return sock


class HttpServer:
    """uvicorn serving `app` on `listen` until `stop()`."""

    def __init__(self, app: Starlette, listen: str, tls: HttpTls | None = None) -> None:
        self._socket = _bind(listen)
        host, port = self._socket.getsockname()[:2]
        self.address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.scheme = "https" if tls else "http"
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            server_header=False,
            lifespan="on",
            timeout_graceful_shutdown=2,
            ssl_certfile=str(tls.cert) if tls else None,
            ssl_keyfile=str(tls.key) if tls else None,
            ssl_ca_certs=str(tls.client_ca) if tls and tls.client_ca else None,
            ssl_cert_reqs=ssl.CERT_REQUIRED if tls and tls.client_ca else ssl.CERT_NONE,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name="gateway-http", daemon=True)
        self._thread.start()
        while not self._server.started and self._thread.is_alive():
            self._thread.join(0.01)
        if not self._server.started:
            raise RuntimeError(f"the HTTP front did not start on {listen}")

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.address}"

    def _run(self) -> None:
        self._server.run(sockets=[self._socket])

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(5)
        self._socket.close()
