"""Input limits shared by the services."""

import re
from collections.abc import Sequence

from imsearch.core.errors import InvalidArgument

MAX_ID_BYTES = 256
MAX_TOP_K = 1000
# Ids (or points) in one Upsert, Delete or GetVectors: Delete reads every old vector for its undo.
MAX_IDS_PER_REQUEST = 1000
MAX_NAME_CHARS = 64
# Collection and model names become directory names (Qdrant shards, model folders) and parts of
# Redis keys: letters, digits, '_' and '-' only, starting with a letter or digit, so a name can
# never be '.', '..', a path, or carry ':', '*' or a newline into a key.
NAME_PATTERN = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_-]{{0,{MAX_NAME_CHARS - 1}}}")


def validate_id(point_id: str) -> None:
    if not point_id:
        raise InvalidArgument("id is empty")
    if len(point_id.encode()) > MAX_ID_BYTES:
        raise InvalidArgument(f"id is longer than {MAX_ID_BYTES} bytes")


def validate_ids(ids: Sequence[str]) -> None:
    if len(ids) > MAX_IDS_PER_REQUEST:
        raise InvalidArgument(f"{len(ids)} ids in one request; at most {MAX_IDS_PER_REQUEST}")
    for point_id in ids:
        validate_id(point_id)


def validate_top_k(top_k: int) -> None:
    if not 1 <= top_k <= MAX_TOP_K:
        raise InvalidArgument(f"top_k must be between 1 and {MAX_TOP_K}, got {top_k}")


MAX_EXAMPLES = 16  # positive (and negative) examples in one search by example


def validate_page(top_k: int, offset: int, min_score: float | None) -> None:
    validate_top_k(top_k)
    if offset + top_k > MAX_TOP_K:
        raise InvalidArgument(f"offset + top_k must be at most {MAX_TOP_K}, got {offset} + {top_k}")
    if min_score is not None and not -1.0 <= min_score <= 1.0:  # NaN fails too
        raise InvalidArgument(f"min_score must be between -1 and 1, got {min_score}")


def is_valid_name(name: str) -> bool:
    return NAME_PATTERN.fullmatch(name) is not None


def validate_name(kind: str, name: str) -> str:
    """Returns `name` if it is a valid collection or model name; INVALID_ARGUMENT otherwise."""
    if not is_valid_name(name):
        shown = name if len(name) <= MAX_NAME_CHARS else name[:MAX_NAME_CHARS] + "..."
        raise InvalidArgument(
            f"{kind} name {shown!r} is invalid: 1 to {MAX_NAME_CHARS} letters, digits, '_' or '-', "
            "starting with a letter or digit"
        )
    return name
