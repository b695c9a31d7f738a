"""The OpenAPI description: valid OpenAPI 3.1, generated from the protos (make check-protos
fails when it is stale), and true to what the front answers."""

from typing import Any

import pytest
from openapi_spec_validator import validate

from imsearch.v1 import search_pb2
from services.gateway.http.bindings import service_bindings
from services.gateway.http.openapi import build_openapi, load_openapi


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return load_openapi()


def test_it_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    validate(document)


def test_every_binding_is_described_once(document: dict[str, Any]) -> None:
    service = search_pb2.DESCRIPTOR.services_by_name["SearchService"]
    described = {(path, method.upper()) for path, item in document["paths"].items() for method in item}
    assert described == {(b.template, b.http_method) for b in service_bindings(service)}
    ids = [op["operationId"] for item in document["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))


def test_schemas_follow_the_json_mapping(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    request = schemas["imsearch.v1.SearchRequest"]["properties"]
    assert request["topK"]["type"] == "integer"  # lowerCamelCase JSON names
    assert request["image"]["contentEncoding"] == "base64"
    assert request["index"]["$ref"] == "#/components/schemas/imsearch.v1.IndexKind"
    assert schemas["imsearch.v1.IndexKind"]["enum"][1] == "INDEX_KIND_HNSW"
    assert (
        schemas["imsearch.v1.SearchResponse"]["properties"]["candidatesScored"]["type"] == "string"
    )  # uint64
    assert "thumbnail" in schemas["imsearch.v1.SearchResult"]["properties"]
    assert request["topK"]["description"].startswith("1..1000")  # the proto's comment


def test_the_stream_takes_newline_delimited_json(document: dict[str, Any]) -> None:
    body = document["paths"]["/v1/images:stream"]["post"]["requestBody"]["content"]
    assert list(body) == ["application/x-ndjson"]


def test_get_routes_take_query_parameters(document: dict[str, Any]) -> None:
    stats = document["paths"]["/v1/stats"]["get"]
    assert [(p["name"], p["in"]) for p in stats["parameters"]] == [("collection", "query")]


def test_the_built_description_matches_the_checked_in_one_in_shape(document: dict[str, Any]) -> None:
    # Comments come from protoc's source info (devtools.protos); without them the rest is equal.
    built = build_openapi(search_pb2.DESCRIPTOR.services_by_name["SearchService"])
    assert built["paths"].keys() == document["paths"].keys()
    assert built["components"]["schemas"].keys() == document["components"]["schemas"].keys()
