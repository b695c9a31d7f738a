"""protobuf Struct <-> Python dicts, and metadata filters parsed from a Struct."""

from typing import Any

from google.protobuf import json_format, struct_pb2

from imsearch.common.errors import InvalidArgument

MAX_METADATA_BYTES = 16 * 1024


def to_dict(struct: struct_pb2.Struct) -> dict[str, Any]:
    if struct.ByteSize() > MAX_METADATA_BYTES:
        raise InvalidArgument(f"metadata is over {MAX_METADATA_BYTES} bytes")
    result: dict[str, Any] = json_format.MessageToDict(struct)
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
        if isinstance(value, bool | str):
            parsed[key] = value
        elif isinstance(value, float) and value.is_integer():
            parsed[key] = int(value)
        else:
            raise InvalidArgument(
                f"filter value for {key!r} must be a string, boolean or integer, got {value!r}"
            )
    return parsed or None
