"""The HTTP routes of a gRPC service, read from the google.api.http options of its methods.

search.proto is the one place a path is written: this module turns each method's HttpRule
(and its additional bindings) into an `HttpBinding` the front routes by, and the OpenAPI
description is built from the same list.
"""

import re
from collections.abc import Iterator
from dataclasses import dataclass

from google.api import annotations_pb2, http_pb2  # type: ignore[import-untyped]
from google.protobuf import descriptor, message_factory
from google.protobuf.message import Message

# `{collection}` in a template: a single path segment, never across '/' or the ':verb' suffix.
_VARIABLE = re.compile(r"\{([a-z_][a-z0-9_]*)\}")
_VERBS = ("get", "put", "post", "delete", "patch")


@dataclass(frozen=True)
class HttpBinding:
    method: descriptor.MethodDescriptor
    http_method: str  # GET, POST, DELETE...
    template: str  # /v1/collections/{collection}:search
    body: str  # "*": the whole request is the body; "": none (fields from the query string)
    pattern: re.Pattern[str]

    @property
    def rpc(self) -> str:
        return str(self.method.name)

    @property
    def full_method(self) -> str:
        """The gRPC path the front calls: /imsearch.v1.SearchService/Search."""
        return f"/{self.method.containing_service.full_name}/{self.method.name}"

    @property
    def client_streaming(self) -> bool:
        return bool(self.method.client_streaming)

    @property
    def path_fields(self) -> list[str]:
        return _VARIABLE.findall(self.template)

    def request_class(self) -> type[Message]:
        return message_factory.GetMessageClass(self.method.input_type)

    def response_class(self) -> type[Message]:
        return message_factory.GetMessageClass(self.method.output_type)

    def match(self, http_method: str, path: str) -> dict[str, str] | None:
        if http_method != self.http_method:
            return None
        found = self.pattern.fullmatch(path)
        return found.groupdict() if found else None


def _compile(template: str) -> re.Pattern[str]:
    parts, last = [], 0
    for variable in _VARIABLE.finditer(template):
        parts.append(re.escape(template[last : variable.start()]))
        parts.append(f"(?P<{variable[1]}>[^/:]+)")
        last = variable.end()
    parts.append(re.escape(template[last:]))
    return re.compile("".join(parts))


def _rules(rule: http_pb2.HttpRule) -> Iterator[http_pb2.HttpRule]:
    yield rule
    yield from rule.additional_bindings


def service_bindings(service: descriptor.ServiceDescriptor) -> list[HttpBinding]:
    """Every binding of every method that has a google.api.http option, in proto order."""
    bindings = []
    for method in service.methods:
        options = method.GetOptions()
        if not options.HasExtension(annotations_pb2.http):
            continue
        for rule in _rules(options.Extensions[annotations_pb2.http]):
            verb = rule.WhichOneof("pattern")
            if verb not in _VERBS:
                raise ValueError(f"{method.full_name}: unsupported HTTP pattern {verb!r}")
            template = getattr(rule, verb)
            bindings.append(HttpBinding(method, verb.upper(), template, rule.body, _compile(template)))
    return bindings
