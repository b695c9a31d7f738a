"""One domain exception hierarchy; each class carries the gRPC status code it maps to.

Core code raises these and never touches transport errors; the server interceptor in
`imsearch.core.server` turns them into `context.abort(code, message)`.
"""

import grpc


class ImsearchError(Exception):
    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        """Machine-readable facts sent with the status (e.g. how much of a bulk add is stored)."""
        return ()


class InvalidArgument(ImsearchError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(ImsearchError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(ImsearchError):
    code = grpc.StatusCode.ALREADY_EXISTS


class ResourceExhausted(ImsearchError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class TooLarge(ResourceExhausted):
    """An input over a size limit: RESOURCE_EXHAUSTED as gRPC has it, marked so that HTTP can
    answer 413 (retrying will not help) rather than 429 (back off and retry)."""

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        return ((TOO_LARGE_TRAILER, "1"),)


TOO_LARGE_TRAILER = "imsearch-too-large"


class FailedPrecondition(ImsearchError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Unavailable(ImsearchError):
    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(ImsearchError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class StreamIdle(DeadlineExceeded):
    """A client stream that sent nothing for the idle timeout: DEADLINE_EXCEEDED as gRPC has it,
    marked so that HTTP can answer 408 (the client stalled), not 504 (we were slow)."""

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        return ((STREAM_IDLE_TRAILER, "1"),)


STREAM_IDLE_TRAILER = "imsearch-stream-idle"


class Cancelled(ImsearchError):
    code = grpc.StatusCode.CANCELLED


class Unauthenticated(ImsearchError):
    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(ImsearchError):
    code = grpc.StatusCode.PERMISSION_DENIED
