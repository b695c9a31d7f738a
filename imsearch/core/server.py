"""gRPC server factory shared by the three services.

`create_server` builds a server with the interceptor (admission, deadline, errors, metrics),
the standard health service (NOT_SERVING until the caller marks it ready) and server
reflection, binds it and returns the bound port, so tests can bind port 0.
"""

import logging
from collections.abc import Callable, Sequence
from concurrent import futures
from dataclasses import dataclass
from time import perf_counter
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from imsearch.core.admission import ConcurrencyLimit
from imsearch.core.auth import Authorizer
from imsearch.core.channels import GRPC_OPTIONS
from imsearch.core.deadline import Deadline, deadline_scope
from imsearch.core.errors import ImsearchError, InvalidArgument
from imsearch.core.metrics import ServiceMetrics
from imsearch.core.streams import IdleTimeoutStream

log = logging.getLogger(__name__)


# Threads beyond the admission limits: health checks and fast refusals always find one.
SPARE_THREADS = 8


@dataclass(frozen=True)
class ServerSecurity:
    """TLS for the port (None: plaintext), who may call what (None: anyone), reflection."""

    credentials: grpc.ServerCredentials | None = None
    authorizer: Authorizer | None = None
    reflection: bool = True


@dataclass(frozen=True)
class ServerLimits:
    """How much one server takes on at once; past that, calls get RESOURCE_EXHAUSTED at once."""

    max_concurrent_rpcs: int = 64  # unary calls in flight
    max_concurrent_streams: int = 8  # client streams (bulk adds) in flight, each holding a thread
    stream_idle_timeout_s: float = 30.0  # a stream with no message for this long is ended

    @property
    def threads(self) -> int:
        return self.max_concurrent_rpcs + self.max_concurrent_streams + SPARE_THREADS


def seen_by_caller(context: grpc.ServicerContext, deadline: Deadline) -> grpc.StatusCode:
    """What a handler that finished without error delivered: OK, unless the caller had gone."""
    if deadline.expired():
        return grpc.StatusCode.DEADLINE_EXCEEDED
    if not context.is_active():
        return grpc.StatusCode.CANCELLED
    return grpc.StatusCode.OK


class ServiceInterceptor(grpc.ServerInterceptor):
    """Around every call of our API (health and reflection pass untouched): admission against
    the limits, the caller's deadline opened as the call's `deadline_scope`, domain errors
    mapped to status codes, and latency and outcome recorded as the caller saw them."""

    def __init__(
        self, metrics: ServiceMetrics, limits: ServerLimits, authorizer: Authorizer | None = None
    ) -> None:
        self._metrics = metrics
        self._limits = limits
        self._authorizer = authorizer
        self._unary_slots = ConcurrencyLimit(limits.max_concurrent_rpcs, "calls")
        self._stream_slots = ConcurrencyLimit(limits.max_concurrent_streams, "streams")

    def intercept_service(self, continuation: Callable[[Any], Any], details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(details)
        if handler is None or handler.response_streaming:
            return handler
        service, _, method = details.method.lstrip("/").rpartition("/")
        if service.startswith("grpc."):  # health and reflection: not our API
            return handler
        if handler.request_streaming:
            return grpc.stream_unary_rpc_method_handler(
                self._wrap(handler.stream_unary, service, method, streaming=True),
                request_deserializer=_tolerant(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        return grpc.unary_unary_rpc_method_handler(
            self._wrap(handler.unary_unary, service, method),
            request_deserializer=_tolerant(handler.request_deserializer),
            response_serializer=handler.response_serializer,
        )

    def _wrap(
        self, behaviour: Callable[[Any, Any], Any], service: str, method: str, streaming: bool = False
    ) -> Any:
        metrics = self._metrics
        slots = self._stream_slots if streaming else self._unary_slots
        idle_timeout_s = self._limits.stream_idle_timeout_s
        authorizer = self._authorizer

        def wrapped(request: Any, context: grpc.ServicerContext) -> Any:
            start = perf_counter()
            code = grpc.StatusCode.OK
            deadline = Deadline.after(context.time_remaining(), lambda: not context.is_active())
            try:
                if authorizer is not None:  # before admission: strangers take no slot
                    authorizer.authorize(method, context.invocation_metadata(), _has_verified_cert(context))
                with (
                    slots.admit(),
                    deadline_scope(deadline),
                    metrics.in_flight.labels(service, method).track_inprogress(),
                ):
                    if not streaming:
                        response = behaviour(_decoded(request), context)
                    else:
                        stream = IdleTimeoutStream(map(_decoded, request), idle_timeout_s)
                        try:
                            response = behaviour(stream, context)
                        finally:
                            stream.close()
                code = seen_by_caller(context, deadline)
                return response
            except ImsearchError as exc:
                code = exc.code
                if exc.trailing_metadata():
                    context.set_trailing_metadata(exc.trailing_metadata())
                context.abort(code, str(exc))
            except grpc.RpcError as exc:
                # A downstream service failed: pass its status on (UNAVAILABLE, INVALID_ARGUMENT...).
                code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
                if code is None or code == grpc.StatusCode.OK:
                    raise
                detail = exc.details() if hasattr(exc, "details") else str(exc)
                # Our own machine-readable trailers (imsearch-*) travel on with the status.
                trailers = exc.trailing_metadata() if hasattr(exc, "trailing_metadata") else None
                ours = tuple(
                    (item.key, item.value) for item in trailers or () if item.key.startswith("imsearch-")
                )
                if ours:
                    context.set_trailing_metadata(ours)
                context.abort(code, f"downstream: {detail}")
            except Exception:
                aborted = context.code()  # type: ignore[attr-defined]
                if aborted is not None and aborted != grpc.StatusCode.OK:
                    code = aborted  # the handler's own context.abort(): keep its code and message
                    raise
                code = grpc.StatusCode.INTERNAL
                log.exception("%s/%s failed", service, method)
                context.abort(code, "internal error; see the server log")
            finally:
                metrics.handled.labels(service, method, code.name).inc()
                metrics.handling_seconds.labels(service, method).observe(perf_counter() - start)

        return wrapped


@dataclass(frozen=True)
class _Undecodable:
    """Stands in for a message that did not parse (invalid UTF-8 in a string, nesting past
    protobuf's limit, garbage): gRPC would answer INTERNAL; the handler answers INVALID_ARGUMENT."""

    reason: str


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as exc:
            return _Undecodable(str(exc) or type(exc).__name__)

    return deserialize


def _decoded(request: Any) -> Any:
    if isinstance(request, _Undecodable):
        raise InvalidArgument(f"request is not a valid message: {request.reason}")
    return request


def _has_verified_cert(context: grpc.ServicerContext) -> bool:
    # With require_client_auth, a TLS peer's certificate is in the auth context only once the
    # client CA has verified it.
    return bool(context.auth_context().get("x509_pem_cert"))


@dataclass
class RunningServer:
    server: grpc.Server
    host: str
    port: int
    health: health.HealthServicer
    # A plaintext 127.0.0.1 port beside the public one, for a front in the same process (the
    # gateway's HTTP front); its calls pass the same interceptor, credentials included.
    loopback_port: int | None = None

    @property
    def address(self) -> str:
        """Where clients reach it: the bound host with the port actually bound (port 0 resolved)."""
        return f"{self.host}:{self.port}"

    def set_serving(self, serving: bool = True) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        self.health.set("", status)

    def stop(self, grace: float | None = 2.0) -> None:
        self.set_serving(False)
        self.server.stop(grace).wait()


def create_server(
    register: Callable[[grpc.Server], None],
    service_names: Sequence[str],
    address: str,
    metrics: ServiceMetrics,
    limits: ServerLimits = ServerLimits(),
    security: ServerSecurity = ServerSecurity(),
    loopback_port: bool = False,
) -> RunningServer:
    """Builds and starts a server; `address` with port 0 binds a free port. `loopback_port`
    binds a plaintext 127.0.0.1 port too (RunningServer.loopback_port)."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=limits.threads),
        interceptors=[ServiceInterceptor(metrics, limits, security.authorizer)],
        options=GRPC_OPTIONS,
        # gRPC's own cap, below our admission: bounds the calls waiting for a thread, so even a
        # flood of health checks cannot queue without limit.
        maximum_concurrent_rpcs=limits.threads * 2,
    )
    register(server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if security.reflection:
        reflection.enable_server_reflection(
            [*service_names, health.SERVICE_NAME, reflection.SERVICE_NAME], server
        )
    if security.credentials is not None:
        port = server.add_secure_port(address, security.credentials)
    else:
        port = server.add_insecure_port(address)
    if port == 0:
        raise RuntimeError(f"could not bind {address}")
    local_port = server.add_insecure_port("127.0.0.1:0") if loopback_port else None
    if local_port == 0:
        raise RuntimeError("could not bind a loopback port")
    running = RunningServer(server, address.rpartition(":")[0], port, health_servicer, local_port)
    running.set_serving(False)
    server.start()
    return running
