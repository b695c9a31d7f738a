"""protobuf Struct <-> Python dicts, and metadata filters parsed from a Struct."""

from typing import Any

from google.protobuf import json_format, struct_pb2

from imsearch.core.errors import InvalidArgument

MAX_METADATA_BYTES = 16 * 1024


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
    result: dict[str, Any] = _integral_to_int(json_format.MessageToDict(struct))
    return result


def to_struct(values: dict[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(values)
    return struct


def parse_filter(struct: struct_pb2.Struct) -> dict[str, str | int | bool] | None:
    """Exact-match filter: string, boolean or integral number values only."""
    parsed: dict[str, str | int | bool] = {}
    for key, value in to_dict(struct).items():
        if not key:
            raise InvalidArgument("filter has an empty key")
        if isinstance(value, bool | str | int):
            parsed[key] = value
        else:
            raise InvalidArgument(
                f"filter value for {key!r} must be a string, boolean or integer, got {value!r}"
            )
    return parsed or None
