"""protobuf Struct <-> Python dicts, bounded in size and depth (filters: imsearch.core.filters)."""

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
