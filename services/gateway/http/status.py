"""gRPC status codes as HTTP statuses (the mapping of google/rpc/code.proto, as grpc-gateway
and Envoy's transcoder use it), and the error body: google.rpc.Status in JSON.

Two gRPC codes cover causes HTTP tells apart, and our errors mark them with a trailer
(imsearch.core.errors): RESOURCE_EXHAUSTED for an input over a size limit is 413, not 429;
DEADLINE_EXCEEDED for a client that stopped sending is 408, not 504.
"""

from collections.abc import Iterable
from typing import Any

import grpc

from imsearch.core.errors import STREAM_IDLE_TRAILER, TOO_LARGE_TRAILER

HTTP_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
}


MARKED_STATUS = {TOO_LARGE_TRAILER: 413, STREAM_IDLE_TRAILER: 408}


def http_status(code: grpc.StatusCode, trailer_keys: Iterable[str] = ()) -> int:
    for key in trailer_keys:
        if key in MARKED_STATUS:
            return MARKED_STATUS[key]
    return HTTP_STATUS.get(code, 500)


def error_body(code: grpc.StatusCode, message: str) -> dict[str, Any]:
    """{"code": 3, "message": "...", "status": "INVALID_ARGUMENT", "details": []}: the gRPC code
    (the number google.rpc.Status carries) beside its name, so a client needs no table."""
    return {"code": code.value[0], "message": message, "status": code.name, "details": []}
