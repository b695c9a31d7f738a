"""JSON in, protobuf message out, and back: the proto's own JSON mapping (json_format).

A request is built from the path's variables and either the JSON body (`body: "*"`) or the
query string (no body); anything that does not fit the message is the caller's error.
"""

import json
from collections.abc import Mapping, Sequence
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from imsearch.core.errors import InvalidArgument
from services.gateway.http.bindings import HttpBinding


def parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidArgument(f"the body is not JSON: {exc}") from None


def message_from_json(document: Any, message: Message) -> Message:
    if not isinstance(document, dict):
        raise InvalidArgument(f"the body must be a JSON object (a {message.DESCRIPTOR.name})")
    try:
        json_format.ParseDict(document, message)
    except json_format.ParseError as exc:
        raise InvalidArgument(f"the body is not a valid {message.DESCRIPTOR.name}: {exc}") from None
    return message


def _query_value(field: FieldDescriptor, raw: str) -> Any:
    if field.type == FieldDescriptor.TYPE_BOOL:
        if raw not in ("true", "false", "1", "0"):
            raise InvalidArgument(f"query parameter {field.name}: expected true or false, got {raw!r}")
        return raw in ("true", "1")
    if field.message_type is not None:
        raise InvalidArgument(f"query parameter {field.name}: a message cannot come from the query string")
    # Numbers, strings, bytes (base64) and enum names: json_format parses each from its string
    # form, and says when it does not fit.
    return raw


def message_from_query(query: Sequence[tuple[str, str]], message: Message) -> Message:
    """`?collection=a&top_k=5`: top-level scalar fields by proto or JSON name; repeated
    fields by repeating the parameter."""
    fields = message.DESCRIPTOR.fields_by_name
    by_json = {f.json_name: f for f in message.DESCRIPTOR.fields}
    document: dict[str, Any] = {}
    for key, raw in query:
        field = fields.get(key) or by_json.get(key)
        if field is None:
            raise InvalidArgument(f"unknown query parameter {key!r} for {message.DESCRIPTOR.name}")
        value = _query_value(field, raw)
        if field.is_repeated:
            document.setdefault(field.name, []).append(value)
        elif field.name in document:
            raise InvalidArgument(f"query parameter {key!r} given twice")
        else:
            document[field.name] = value
    return message_from_json(document, message)


def apply_path(binding: HttpBinding, path: Mapping[str, str], message: Message) -> Message:
    """Path variables fill their fields; a body that names a different value is refused."""
    for name, value in path.items():
        current = getattr(message, name)
        if current and current != value:
            raise InvalidArgument(f"{name} is {value!r} in the path but {current!r} in the body")
        setattr(message, name, value)
    return message


def request_message(
    binding: HttpBinding, path: Mapping[str, str], body: bytes, query: Sequence[tuple[str, str]]
) -> Message:
    message = binding.request_class()()
    if binding.body == "*":
        if query:
            raise InvalidArgument(f"{binding.http_method} {binding.template} takes its fields in the body")
        message_from_json(parse_json(body) if body.strip() else {}, message)
    else:
        message_from_query(query, message)
    return apply_path(binding, path, message)


def message_to_json(message: Message) -> dict[str, Any]:
    # Every field, defaults too: a client reads `"added": 0` rather than guessing from absence.
    return json_format.MessageToDict(message, always_print_fields_with_no_presence=True)
