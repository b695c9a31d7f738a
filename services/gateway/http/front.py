"""The ASGI app: each HTTP binding transcoded to a gRPC call on the gateway's own port.

The front holds no search logic: it turns JSON into the request message, calls the gateway
over a loopback channel with the caller's credentials, and turns the answer (or its status)
back into JSON. So auth, admission, limits, metrics and errors are the gateway's, once.
"""

import asyncio
import json
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import Any

import grpc
import grpc.aio
from google.protobuf.message import Message
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from imsearch.core.channels import GRPC_OPTIONS
from imsearch.core.errors import ImsearchError, InvalidArgument, StreamIdle, TooLarge
from imsearch.core.metrics import ServiceMetrics
from services.gateway.http.bindings import HttpBinding
from services.gateway.http.status import error_body, http_status
from services.gateway.http.transcode import (
    apply_path,
    message_from_json,
    message_to_json,
    parse_json,
    request_message,
)

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
# Trailing metadata of a failed bulk add that a client needs: how many items were stored.
FORWARDED_TRAILERS = ("imsearch-items-stored",)


@dataclass(frozen=True)
class FrontConfig:
    gateway_address: str  # the gateway's loopback port
    max_body_bytes: int  # a unary body (or one line of a stream) larger than this: 413
    call_timeout_s: float
    idle_timeout_s: float  # a body that sends nothing for this long is answered 408
    # With mutual TLS on the HTTP port every caller has a verified certificate, which counts
    # as admin (as on the gRPC port): calls without a token carry this one instead.
    verified_cert_token: str | None = None


def _error(code: grpc.StatusCode, message: str, trailers: Iterable[tuple[str, Any]] = ()) -> JSONResponse:
    """The error response: its HTTP status from the code and our marking trailers, the
    trailers a client needs as headers."""
    trailers = list(trailers)
    headers = {k: v for k, v in trailers if k in FORWARDED_TRAILERS and isinstance(v, str)}
    status = http_status(code, (k for k, _ in trailers))
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


def _failure(exc: ImsearchError, prefix: str = "") -> JSONResponse:
    return _error(exc.code, f"{prefix}{exc}", exc.trailing_metadata())


async def _chunks(request: Request, idle_timeout_s: float) -> AsyncIterator[bytes]:
    """The body's chunks; StreamIdle when none arrives for `idle_timeout_s`."""
    stream = request.stream().__aiter__()
    while True:
        try:
            chunk = await asyncio.wait_for(stream.__anext__(), idle_timeout_s)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise StreamIdle(f"no body data for {idle_timeout_s:g} s") from None
        yield chunk


async def _read_body(request: Request, limit: int, idle_timeout_s: float) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"the body is {int(declared):,} bytes, over the limit of {limit:,}")
    chunks, size = [], 0
    async for chunk in _chunks(request, idle_timeout_s):
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"the body is over the limit of {limit:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _json_lines(request: Request, limit: int, idle_timeout_s: float) -> AsyncIterator[bytes]:
    """The lines of a newline-delimited JSON body as they arrive, each at most `limit` bytes."""
    pending = b""
    async for chunk in _chunks(request, idle_timeout_s):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        if len(pending) > limit:
            raise TooLarge(f"a line of the stream is over the limit of {limit:,} bytes")
        for line in lines:
            if len(line) > limit:
                raise TooLarge(f"a line of the stream is over the limit of {limit:,} bytes")
            if line.strip():
                yield line
    if pending.strip():
        yield pending


class Transcoder:
    """Calls the gateway for one binding at a time, over one shared channel."""

    def __init__(self, config: FrontConfig, bindings: list[HttpBinding], metrics: ServiceMetrics) -> None:
        self._config = config
        self._bindings = bindings
        self._metrics = metrics
        self._channel: grpc.aio.Channel | None = None

    def channel(self) -> grpc.aio.Channel:
        # Made on first use: an aio channel belongs to the event loop that serves the app.
        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(self._config.gateway_address, options=GRPC_OPTIONS)
        return self._channel

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()

    def route(self, http_method: str, path: str) -> tuple[HttpBinding, dict[str, str]] | bool | None:
        """The binding and its path variables; False when the path is known under another method."""
        path_known = False
        for binding in self._bindings:
            variables = binding.match(http_method, path)
            if variables is not None:
                return binding, variables
            path_known = path_known or binding.match(binding.http_method, path) is not None
        return False if path_known else None

    def _metadata(self, request: Request) -> list[tuple[str, str]]:
        authorization = request.headers.get("authorization")
        if authorization is not None:
            return [("authorization", authorization)]
        if self._config.verified_cert_token is not None:
            return [("authorization", f"Bearer {self._config.verified_cert_token}")]
        return []

    async def handle(self, request: Request) -> Response:
        """The answer to one request, counted by route template (never the raw path: its
        names would make the label set unbounded) and status."""
        began = perf_counter()
        found = self.route(request.method, request.url.path)
        route = found[0].template if isinstance(found, tuple) else "unmatched"
        response = await self._answer(request, found)
        self._metrics.http_requests.labels(request.method, route, str(response.status_code)).inc()
        self._metrics.http_seconds.labels(request.method, route).observe(perf_counter() - began)
        return response

    async def _answer(
        self, request: Request, found: tuple[HttpBinding, dict[str, str]] | bool | None
    ) -> Response:
        if found is None:
            return _error(grpc.StatusCode.NOT_FOUND, f"no route {request.url.path}")
        if found is False:
            refusal = f"{request.method} is not allowed on {request.url.path}"
            return JSONResponse(error_body(grpc.StatusCode.UNIMPLEMENTED, refusal), status_code=405)
        assert not isinstance(found, bool)
        binding, variables = found
        try:
            if binding.client_streaming:
                return await self._stream(binding, variables, request)
            config = self._config
            body = (
                await _read_body(request, config.max_body_bytes, config.idle_timeout_s)
                if binding.body
                else b""
            )
            message = request_message(binding, variables, body, list(request.query_params.multi_items()))
            call = self.channel().unary_unary(
                binding.full_method,
                request_serializer=type(message).SerializeToString,
                response_deserializer=binding.response_class().FromString,
            )
            response = await call(
                message, metadata=self._metadata(request), timeout=self._config.call_timeout_s
            )
            return JSONResponse(message_to_json(response))
        except ImsearchError as exc:
            return _failure(exc)
        except grpc.aio.AioRpcError as exc:
            return _error(exc.code(), exc.details() or exc.code().name, exc.trailing_metadata() or ())

    async def _stream(self, binding: HttpBinding, variables: dict[str, str], request: Request) -> Response:
        """NDJSON body, one AddImageRequest a line, streamed to the gateway as it arrives. A bad
        line ends the stream there, as a bad item ends a gRPC stream: the lines before it are
        stored, and the error names the line."""
        if request.query_params:
            raise InvalidArgument(f"{binding.template} takes its items in the body, one JSON object a line")
        failure: list[Response] = []
        request_class = binding.request_class()

        async def items() -> AsyncIterator[Message]:
            number = 0
            try:
                # Sooner than the gateway's own idle timer (the same setting), so that a stalled
                # client hears 408 from here rather than DEADLINE_EXCEEDED (504) from there.
                idle_s = 0.8 * self._config.idle_timeout_s
                async for line in _json_lines(request, self._config.max_body_bytes, idle_s):
                    number += 1
                    item = message_from_json(parse_json(line), request_class())
                    yield apply_path(binding, variables, item)
            except TooLarge as exc:  # the line that did not arrive whole
                failure.append(_failure(exc, f"line {number + 1}: "))
            except StreamIdle as exc:
                failure.append(_failure(exc, f"after line {number}: "))
            except ImsearchError as exc:
                failure.append(_failure(exc, f"line {number}: "))
            except ClientDisconnect:
                failure.append(_error(grpc.StatusCode.CANCELLED, "the client went away"))

        call = self.channel().stream_unary(
            binding.full_method,
            request_serializer=request_class.SerializeToString,
            response_deserializer=binding.response_class().FromString,
        )
        # No overall deadline: a bulk add lasts as long as its stream; the gateway ends a silent one.
        response = await call(items(), metadata=self._metadata(request))
        if failure:
            failure[0].headers["imsearch-items-stored"] = str(getattr(response, "added", 0))
            return failure[0]
        return JSONResponse(message_to_json(response))


def create_app(
    config: FrontConfig, bindings: list[HttpBinding], openapi: dict[str, Any], metrics: ServiceMetrics
) -> Starlette:
    """The API under /v1, its OpenAPI description, and the search page at /."""
    transcoder = Transcoder(config, bindings, metrics)
    # Every method reaches the transcoder, so a wrong one gets our JSON 405, not Starlette's text.
    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    openapi_json = json.dumps(openapi, indent=1).encode()

    async def api(request: Request) -> Response:
        return await transcoder.handle(request)

    async def openapi_document(request: Request) -> Response:
        return Response(openapi_json, media_type="application/json")

    async def page(request: Request) -> Response:
        return FileResponse(WEB_DIR / "index.html")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await transcoder.close()

    routes: list[Route | Mount] = [
        Route("/v1/{rest:path}", api, methods=methods),
        Route("/openapi.json", openapi_document, methods=["GET"]),
        Route("/", page, methods=["GET"]),
        Mount("/web", StaticFiles(directory=WEB_DIR), name="web"),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
