"""Input limits shared by the gateway and the index service."""

from imsearch.core.errors import InvalidArgument

MAX_ID_BYTES = 256
MAX_TOP_K = 1000


def validate_id(point_id: str) -> None:
    if not point_id:
        raise InvalidArgument("id is empty")
    if len(point_id.encode()) > MAX_ID_BYTES:
        raise InvalidArgument(f"id is longer than {MAX_ID_BYTES} bytes")


def validate_top_k(top_k: int) -> None:
    if not 1 <= top_k <= MAX_TOP_K:
        raise InvalidArgument(f"top_k must be between 1 and {MAX_TOP_K}, got {top_k}")
