"""The OpenAPI 3.1 description of the HTTP API, built from search.proto's descriptors.

`build_openapi` walks the same bindings the front routes by and the messages they carry,
typed as the proto's JSON mapping writes them (64-bit integers as strings, bytes as base64,
enums by name, fields by their lowerCamelCase JSON names). `devtools.protos` writes it, with
the proto comments as descriptions, to openapi.json beside this file and checks it in CI; the
front serves that file at /openapi.json.
"""

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor, ServiceDescriptor

from services.gateway.http.bindings import HttpBinding, service_bindings

OPENAPI_FILE = Path(__file__).resolve().parent / "openapi.json"
# Full proto name -> its leading comment (message, field, enum, value, method).
Comments = Mapping[str, str]

_SCALARS: dict[int, dict[str, Any]] = {
    FieldDescriptor.TYPE_DOUBLE: {"type": "number", "format": "double"},
    FieldDescriptor.TYPE_FLOAT: {"type": "number", "format": "float"},
    FieldDescriptor.TYPE_INT64: {"type": "string", "format": "int64"},
    FieldDescriptor.TYPE_UINT64: {"type": "string", "format": "uint64"},
    FieldDescriptor.TYPE_FIXED64: {"type": "string", "format": "uint64"},
    FieldDescriptor.TYPE_SFIXED64: {"type": "string", "format": "int64"},
    FieldDescriptor.TYPE_SINT64: {"type": "string", "format": "int64"},
    FieldDescriptor.TYPE_INT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_SINT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_UINT32: {"type": "integer", "format": "int64", "minimum": 0, "maximum": 4294967295},
    FieldDescriptor.TYPE_FIXED32: {"type": "integer", "format": "int64", "minimum": 0, "maximum": 4294967295},
    FieldDescriptor.TYPE_BOOL: {"type": "boolean"},
    FieldDescriptor.TYPE_STRING: {"type": "string"},
    FieldDescriptor.TYPE_BYTES: {"type": "string", "contentEncoding": "base64"},
}
# Well-known types have their own JSON forms.
_WELL_KNOWN: dict[str, dict[str, Any]] = {
    "google.protobuf.Struct": {"type": "object", "additionalProperties": True},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array", "items": {}},
}
_STATUS_SCHEMA = {
    "type": "object",
    "description": "An error: google.rpc.Status with the gRPC code's name beside its number.",
    "properties": {
        "code": {
            "type": "integer",
            "description": "the gRPC status code (3: INVALID_ARGUMENT, 5: NOT_FOUND...)",
        },
        "message": {"type": "string"},
        "status": {"type": "string", "description": "the code's name"},
        "details": {"type": "array", "items": {"type": "object"}},
    },
    "required": ["code", "message"],
}
# The statuses the front answers with (services/gateway/http/status.py), per the mapping.
_ERROR_STATUSES = {
    "400": "INVALID_ARGUMENT or FAILED_PRECONDITION: the request is wrong",
    "401": "UNAUTHENTICATED: no or an unknown bearer token",
    "403": "PERMISSION_DENIED: the token's role may not make this call",
    "404": "NOT_FOUND: no such collection, image or route",
    "409": "ALREADY_EXISTS or ABORTED",
    "413": "the body (or a line of a stream) is over the server's limit",
    "429": "RESOURCE_EXHAUSTED: over the server's admission limits; back off and retry",
    "503": "UNAVAILABLE: a service behind the gateway is down; retry",
}


class _Schemas:
    """Collects a component schema for every message and enum reachable from the requests."""

    def __init__(self, comments: Comments) -> None:
        self._comments = comments
        self.components: dict[str, Any] = {}

    def ref(self, full_name: str) -> dict[str, str]:
        return {"$ref": f"#/components/schemas/{full_name}"}

    def _described(self, schema: dict[str, Any], full_name: str) -> dict[str, Any]:
        comment = self._comments.get(full_name)
        return {**schema, "description": comment} if comment else schema

    def message(self, message: Descriptor) -> dict[str, Any]:
        name = message.full_name
        if name in _WELL_KNOWN:
            return _WELL_KNOWN[name]
        if name not in self.components:
            self.components[name] = {}  # placeholder: recursive messages stop here
            properties = {f.json_name: self.field(f) for f in message.fields}
            self.components[name] = self._described({"type": "object", "properties": properties}, name)
        return self.ref(name)

    def enum(self, enum: EnumDescriptor) -> dict[str, Any]:
        name = enum.full_name
        if name not in self.components:
            values = [v.name for v in enum.values]
            lines = [
                f"{v.name}: {self._comments[f'{name}.{v.name}']}"
                for v in enum.values
                if f"{name}.{v.name}" in self._comments
            ]
            description = "\n".join(filter(None, [self._comments.get(name, ""), *lines]))
            schema: dict[str, Any] = {"type": "string", "enum": values}
            self.components[name] = {**schema, "description": description} if description else schema
        return self.ref(name)

    def field(self, field: FieldDescriptor) -> dict[str, Any]:
        if field.message_type is not None:
            item = self.message(field.message_type)
        elif field.enum_type is not None:
            item = self.enum(field.enum_type)
        else:
            item = dict(_SCALARS[field.type])
        schema = {"type": "array", "items": item} if field.is_repeated else item
        comment = self._comments.get(field.full_name)
        if comment:  # beside a $ref a description is allowed in 3.1
            schema = {**schema, "description": comment}
        return schema


def _operation(
    binding: HttpBinding, operation_id: str, schemas: _Schemas, comments: Comments
) -> dict[str, Any]:
    request, response = binding.method.input_type, binding.method.output_type
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in binding.path_fields
    ]
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "tags": [binding.method.containing_service.name],
    }
    comment = comments.get(binding.method.full_name)
    if comment:
        operation["description"] = comment
    if binding.body == "*":
        media = "application/x-ndjson" if binding.client_streaming else "application/json"
        operation["requestBody"] = {
            "required": True,
            "content": {media: {"schema": schemas.message(request)}},
        }
    else:
        for field in request.fields:
            if field.name in binding.path_fields or field.message_type is not None:
                continue
            parameters.append(
                {"name": field.name, "in": "query", "required": False, "schema": schemas.field(field)}
            )
    if parameters:
        operation["parameters"] = parameters
    operation["responses"] = {
        "200": {"description": "OK", "content": {"application/json": {"schema": schemas.message(response)}}},
        **{
            status: {
                "description": text,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Status"}}},
            }
            for status, text in _ERROR_STATUSES.items()
        },
    }
    return operation


def build_openapi(service: ServiceDescriptor, comments: Comments | None = None) -> dict[str, Any]:
    comments = comments or {}
    schemas = _Schemas(comments)
    paths: dict[str, dict[str, Any]] = {}
    seen: dict[str, int] = {}
    for binding in service_bindings(service):
        seen[binding.rpc] = seen.get(binding.rpc, 0) + 1
        suffix = "" if seen[binding.rpc] == 1 else str(seen[binding.rpc])
        operation_id = f"{service.name}_{binding.rpc}{suffix}"
        paths.setdefault(binding.template, {})[binding.http_method.lower()] = _operation(
            binding, operation_id, schemas, comments
        )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": f"imsearch {service.full_name}",
            "version": service.file.package.rpartition(".")[2],
            "description": comments.get(service.full_name, ""),
        },
        "paths": paths,
        "components": {
            "schemas": {**dict(sorted(schemas.components.items())), "Status": _STATUS_SCHEMA},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{}, {"bearer": []}],
    }


def render(document: Mapping[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def load_openapi() -> dict[str, Any]:
    """The checked-in description (generated by `make protos`)."""
    document: dict[str, Any] = json.loads(OPENAPI_FILE.read_text())
    return document
