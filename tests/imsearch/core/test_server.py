"""The server factory's interceptor: domain errors, a handler's own abort, crashes, admission,
deadlines and idle streams, each through a real gRPC server on loopback."""

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from time import monotonic
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from imsearch.core.deadline import current_deadline
from imsearch.core.errors import NotFound
from imsearch.core.metrics import ServiceMetrics
from imsearch.core.server import RunningServer, ServerLimits, create_server


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


class Probe:
    """Handlers whose timing the test controls."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.inside = threading.Semaphore(0)
        self.remaining: list[float | None] = []
        self.streamed: list[bytes] = []

    def block(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        self.inside.release()
        self.release.wait(10)
        return b"done"

    def slow(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        self.remaining.append(current_deadline().remaining())
        threading.Event().wait(0.5)
        return b"late"

    def collect(self, requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
        for message in requests:
            self.streamed.append(message)
        return b"%d" % len(self.streamed)


@pytest.fixture
def probe() -> Iterator[tuple[Probe, RunningServer, ServiceMetrics]]:
    probe, metrics = Probe(), ServiceMetrics("test")
    handlers: dict[str, Any] = {
        "Block": grpc.unary_unary_rpc_method_handler(probe.block),
        "Slow": grpc.unary_unary_rpc_method_handler(probe.slow),
        "Collect": grpc.stream_unary_rpc_method_handler(probe.collect),
    }
    limits = ServerLimits(max_concurrent_rpcs=2, max_concurrent_streams=1, stream_idle_timeout_s=0.5)
    server = create_server(
        lambda s: s.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("test.Probe", handlers)]),
        ["test.Probe"],
        "127.0.0.1:0",
        metrics,
        limits,
    )
    server.set_serving(True)
    yield probe, server, metrics
    probe.release.set()
    server.stop(0)


def handled(metrics: ServiceMetrics, method: str, code: str) -> float:
    labels = {"grpc_service": "test.Probe", "grpc_method": method, "grpc_code": code}
    return metrics.registry.get_sample_value("grpc_server_handled_total", labels) or 0.0


def test_calls_past_the_limit_are_refused_at_once_and_health_still_answers(
    probe: tuple[Probe, RunningServer, ServiceMetrics],
) -> None:
    handlers, server, metrics = probe
    channel = grpc.insecure_channel(server.address)
    block: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary("/test.Probe/Block")
    with ThreadPoolExecutor(2) as pool:
        admitted = [pool.submit(block, b"", timeout=10) for _ in range(2)]
        assert handlers.inside.acquire(timeout=5) and handlers.inside.acquire(timeout=5)
        started = monotonic()
        with pytest.raises(grpc.RpcError) as refused:
            block(b"", timeout=10)
        assert monotonic() - started < 1.0
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "2 calls already in flight" in refused.value.details()
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        handlers.release.set()
        assert [f.result(10) for f in admitted] == [b"done", b"done"]
    assert block(b"", timeout=10) == b"done"  # slots come back
    assert handled(metrics, "Block", "RESOURCE_EXHAUSTED") == 1.0


def test_the_callers_deadline_reaches_the_handler_and_the_metrics_count_what_it_saw(
    probe: tuple[Probe, RunningServer, ServiceMetrics],
) -> None:
    handlers, server, metrics = probe
    with grpc.insecure_channel(server.address) as channel, pytest.raises(grpc.RpcError) as error:
        channel.unary_unary("/test.Probe/Slow")(b"", timeout=0.2)
    assert error.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    remaining = handlers.remaining[0]
    assert remaining is not None and 0 < remaining <= 0.21  # the 0.2 s the caller gave, not 30
    threading.Event().wait(0.6)  # the handler finishes after the caller gave up
    assert handled(metrics, "Slow", "DEADLINE_EXCEEDED") == 1.0
    assert handled(metrics, "Slow", "OK") == 0.0


def test_an_idle_stream_is_ended_and_frees_its_slot(
    probe: tuple[Probe, RunningServer, ServiceMetrics],
) -> None:
    handlers, server, _ = probe
    channel = grpc.insecure_channel(server.address)
    collect: grpc.StreamUnaryMultiCallable[bytes, bytes] = channel.stream_unary("/test.Probe/Collect")
    hang = threading.Event()

    def two_then_silence() -> Iterator[bytes]:
        yield b"a"
        yield b"b"
        hang.wait(10)

    started = monotonic()
    with pytest.raises(grpc.RpcError) as error:
        collect(two_then_silence(), timeout=10)
    hang.set()
    assert error.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "stream idle: no message for 0.5 s" in error.value.details()
    assert monotonic() - started < 5
    assert handlers.streamed == [b"a", b"b"]
    assert collect(iter([b"c"]), timeout=10) == b"3"  # the one stream slot is free again
    give_up = monotonic() + 5
    while any(t.name == "stream-reader" for t in threading.enumerate()) and monotonic() < give_up:
        threading.Event().wait(0.05)
    assert not any(t.name == "stream-reader" for t in threading.enumerate())  # no reader left behind


def test_streams_past_their_limit_are_refused(probe: tuple[Probe, RunningServer, ServiceMetrics]) -> None:
    handlers, server, _ = probe
    channel = grpc.insecure_channel(server.address)
    collect: grpc.StreamUnaryMultiCallable[bytes, bytes] = channel.stream_unary("/test.Probe/Collect")
    gate = threading.Event()

    def held_open() -> Iterator[bytes]:
        yield b"x"
        gate.wait(0.4)  # under the idle timeout
        yield b"y"

    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(collect, held_open(), timeout=10)
        deadline = monotonic() + 5
        while not handlers.streamed and monotonic() < deadline:
            threading.Event().wait(0.01)
        with pytest.raises(grpc.RpcError) as refused:
            collect(iter([b"z"]), timeout=10)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        gate.set()
        assert first.result(10) == b"2"
