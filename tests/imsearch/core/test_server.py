"""The server factory's interceptor: domain errors, a handler's own abort, and crashes."""

from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest

from imsearch.core.errors import NotFound
from imsearch.core.metrics import ServiceMetrics
from imsearch.core.server import RunningServer, create_server


def behaviours() -> dict[str, Callable[[bytes, grpc.ServicerContext], bytes]]:
    def domain_error(request: bytes, context: grpc.ServicerContext) -> bytes:
        raise NotFound("no such thing")

    def own_abort(request: bytes, context: grpc.ServicerContext) -> bytes:
        context.abort(grpc.StatusCode.PERMISSION_DENIED, "not yours")
        return b""

    def crash(request: bytes, context: grpc.ServicerContext) -> bytes:
        raise RuntimeError("secret detail")

    return {"DomainError": domain_error, "OwnAbort": own_abort, "Crash": crash}


@pytest.fixture
def served() -> Iterator[tuple[RunningServer, ServiceMetrics]]:
    metrics = ServiceMetrics("test")
    handlers: dict[str, Any] = {
        name: grpc.unary_unary_rpc_method_handler(behaviour) for name, behaviour in behaviours().items()
    }
    server = create_server(
        lambda s: s.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("test.Probe", handlers)]),
        ["test.Probe"],
        "127.0.0.1:0",
        metrics,
    )
    yield server, metrics
    server.stop(0)


@pytest.mark.parametrize(
    ("method", "code", "message"),
    [
        ("DomainError", grpc.StatusCode.NOT_FOUND, "no such thing"),
        ("OwnAbort", grpc.StatusCode.PERMISSION_DENIED, "not yours"),
        ("Crash", grpc.StatusCode.INTERNAL, "internal error; see the server log"),
    ],
)
def test_status_codes_reach_the_caller_and_the_metrics(
    served: tuple[RunningServer, ServiceMetrics], method: str, code: grpc.StatusCode, message: str
) -> None:
    server, metrics = served
    with grpc.insecure_channel(server.address) as channel, pytest.raises(grpc.RpcError) as error:
        channel.unary_unary(f"/test.Probe/{method}")(b"", timeout=10)
    assert (error.value.code(), error.value.details()) == (code, message)
    counted = metrics.registry.get_sample_value(
        "grpc_server_handled_total",
        {"grpc_service": "test.Probe", "grpc_method": method, "grpc_code": code.name},
    )
    assert counted == 1.0
