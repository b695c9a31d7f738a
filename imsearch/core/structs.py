"""protobuf Struct <-> Python dicts, and metadata filters parsed from a Struct.

Filter semantics, the same on every index: each key names a top-level metadata field; a
field matches when it equals the value with the same type (`true` is not `1`), or, when the
field holds a list, when one of its elements does (as Qdrant's match does).
"""

import re
from typing import Any

from google.protobuf import json_format, struct_pb2

from imsearch.core.errors import InvalidArgument

MAX_METADATA_BYTES = 16 * 1024
MAX_METADATA_DEPTH = 8  # nested objects and lists
FILTER_KEY = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
FilterValue = str | int | bool


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


def _integral_to_int(value: Any) -> Any:
    """Struct has only doubles; keep whole numbers as ints so `{"year": 2024}` filters match."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _integral_to_int(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral_to_int(v) for v in value]
    return value


def to_dict(struct: struct_pb2.Struct) -> dict[str, Any]:
    if struct.ByteSize() > MAX_METADATA_BYTES:
        raise InvalidArgument(f"metadata is over {MAX_METADATA_BYTES} bytes")
    try:
        raw = json_format.MessageToDict(struct)
    except ValueError:  # Infinity or NaN: JSON has no such numbers
        raise InvalidArgument("metadata numbers must be finite (no Infinity or NaN)") from None
    result: dict[str, Any] = _integral_to_int(raw)
    if _depth(result) > MAX_METADATA_DEPTH:
        raise InvalidArgument(f"metadata is nested more than {MAX_METADATA_DEPTH} levels deep")
    return result


def to_struct(values: dict[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(values)
    return struct


def parse_filter(struct: struct_pb2.Struct) -> dict[str, FilterValue] | None:
    """Exact-match filter: string, boolean or integral number values only."""
    parsed: dict[str, FilterValue] = {}
    for key, value in to_dict(struct).items():
        if not key:
            raise InvalidArgument("filter has an empty key")
        if not FILTER_KEY.match(key):
            raise InvalidArgument(
                f"filter key {key[:80]!r} must be 1-64 letters, digits, '_' or '-' "
                "(a top-level metadata field)"
            )
        if isinstance(value, bool | str | int):
            parsed[key] = value
        else:
            raise InvalidArgument(
                f"filter value for {key!r} must be a string, boolean or integer, got {value!r}"
            )
    return parsed or None


def _same(stored: Any, wanted: FilterValue) -> bool:
    return type(stored) is type(wanted) and stored == wanted


def field_matches(stored: Any, wanted: FilterValue) -> bool:
    """One field against one filter value, by the semantics above."""
    if isinstance(stored, list):
        return any(_same(element, wanted) for element in stored)
    return _same(stored, wanted)
