"""Client channels to our services: TLS when given a CA, a bearer token on every call.

Clients name these the same way everywhere: `--tls-ca FILE` or IMSEARCH_TLS_CA, and
`--token TOKEN` or IMSEARCH_TOKEN (the CLI, the SDK, the gateway's own hops).
"""

import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from imsearch.core.tls import channel_credentials

# Images are the largest messages: allow 64 MiB (the gateway rejects bigger files itself).
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
GRPC_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
]


@dataclass(frozen=True)
class ClientSecurity:
    tls_ca: Path | None = None  # trust this CA; TLS is on when this or a client cert is set
    tls_cert: Path | None = None  # this client's certificate, for mutual TLS
    tls_key: Path | None = None
    token: str | None = None  # sent as `authorization: Bearer TOKEN`
    server_name: str | None = None  # the name to expect in the server's certificate

    @property
    def tls(self) -> bool:
        return self.tls_ca is not None or self.tls_cert is not None

    @classmethod
    def from_environment(cls, tls_ca: Path | None = None, token: str | None = None) -> "ClientSecurity":
        """Flags first, then IMSEARCH_TLS_CA and IMSEARCH_TOKEN."""
        ca = tls_ca or (Path(os.environ["IMSEARCH_TLS_CA"]) if os.environ.get("IMSEARCH_TLS_CA") else None)
        return cls(tls_ca=ca, token=token or os.environ.get("IMSEARCH_TOKEN") or None)

    def __repr__(self) -> str:  # never print the token
        token = "***" if self.token else None
        return f"ClientSecurity(tls_ca={self.tls_ca}, tls_cert={self.tls_cert}, token={token})"


class _BearerToken(
    grpc.UnaryUnaryClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
):
    """Adds the token to every call (works on plaintext loopback channels too, unlike gRPC's
    call credentials, which need TLS)."""

    def __init__(self, token: str) -> None:
        self._header = ("authorization", f"Bearer {token}")

    def _with_token(self, details: Any) -> Any:
        metadata = [*(details.metadata or ()), self._header]
        return details._replace(metadata=metadata)

    def intercept_unary_unary(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        return continuation(self._with_token(details), request)

    def intercept_stream_unary(
        self, continuation: Callable[..., Any], details: Any, requests: Iterator[Any]
    ) -> Any:
        return continuation(self._with_token(details), requests)


def open_channel(
    target: str, security: ClientSecurity = ClientSecurity(), options: list[tuple[str, Any]] | None = None
) -> grpc.Channel:
    options = [*GRPC_OPTIONS, *(options or [])]
    if security.server_name:
        options.append(("grpc.ssl_target_name_override", security.server_name))
    if security.tls:
        credentials = channel_credentials(security.tls_ca, security.tls_cert, security.tls_key)
        channel = grpc.secure_channel(target, credentials, options=options)
    else:
        channel = grpc.insecure_channel(target, options=options)
    if security.token:
        channel = grpc.intercept_channel(channel, _BearerToken(security.token))
    return channel


def retry_config(services: Sequence[str], attempts: int = 3) -> str:
    """gRPC's own retry policy (a service config) for idempotent services: an UNAVAILABLE
    answer (a replica that died or is restarting) is retried on another, with backoff."""
    policy = {
        "maxAttempts": attempts,
        "initialBackoff": "0.05s",
        "maxBackoff": "0.5s",
        "backoffMultiplier": 2,
        "retryableStatusCodes": ["UNAVAILABLE"],
    }
    config = {"methodConfig": [{"name": [{"service": name} for name in services], "retryPolicy": policy}]}
    return json.dumps(config)


def wait_for_channel(
    target: str,
    timeout: float = 30.0,
    security: ClientSecurity = ClientSecurity(),
    retried_services: Sequence[str] = (),
) -> grpc.Channel:
    """Opens a channel to `target` and waits until it is connected.

    Round-robin over every address the name resolves to: with `dns:///encoder:50051` and a
    headless Kubernetes Service (or `ipv4:host:port,host:port`), requests spread over all
    replicas, not just one. Calls of `retried_services` are retried on UNAVAILABLE.
    """
    options: list[tuple[str, Any]] = [("grpc.lb_policy_name", "round_robin")]
    if retried_services:
        options += [("grpc.enable_retries", 1), ("grpc.service_config", retry_config(retried_services))]
    channel = open_channel(target, security, options)
    grpc.channel_ready_future(channel).result(timeout=timeout)
    return channel
