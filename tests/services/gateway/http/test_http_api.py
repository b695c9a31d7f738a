"""The HTTP/JSON API against a real suite: every route, its answers and its errors."""

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from cli.suite import Suite
from imsearch.v1 import search_pb2
from services.gateway.http.bindings import service_bindings
from tests.conftest import start_http_suite
from tests.helpers import jpeg

COLLECTION = "http_api"
MODEL = "efficientnet_lite0"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Suite]:
    running = start_http_suite(tmp_path_factory.mktemp("http"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def http(suite: Suite) -> Iterator[httpx.Client]:
    assert suite.gateway.http_url is not None
    with httpx.Client(base_url=suite.gateway.http_url, timeout=60) as client:
        created = client.post("/v1/collections", json={"collection": COLLECTION, "model": MODEL})
        assert created.status_code == 200, created.text
        for seed in range(6):
            added = client.post(
                f"/v1/collections/{COLLECTION}/images",
                json={
                    "id": f"img-{seed}",
                    "image": b64(jpeg(seed)),
                    "metadata": {"seed": seed, "kind": "noise"},
                },
            )
            assert added.status_code == 200, added.text
        yield client


def error_of(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    assert set(body) == {"code", "message", "status", "details"}, body
    assert body["message"]
    return body


def test_every_route_of_the_proto_is_covered_here() -> None:
    """A new google.api.http binding needs a test in this module."""
    tested = {
        ("POST", "/v1/collections"),
        ("GET", "/v1/collections"),
        ("GET", "/v1/collections/{collection}"),
        ("DELETE", "/v1/collections/{collection}"),
        ("POST", "/v1/collections/{collection}/images"),
        ("POST", "/v1/images"),
        ("POST", "/v1/collections/{collection}/images:stream"),
        ("POST", "/v1/images:stream"),
        ("POST", "/v1/collections/{collection}:search"),
        ("POST", "/v1/search"),
        ("POST", "/v1/search:batch"),
        ("POST", "/v1/collections/{collection}:findDuplicates"),
        ("POST", "/v1/duplicates"),
        ("POST", "/v1/collections/{collection}/images:delete"),
        ("POST", "/v1/images:delete"),
        ("GET", "/v1/collections/{collection}/stats"),
        ("GET", "/v1/stats"),
        ("POST", "/v1/collections/{collection}:verify"),
        ("POST", "/v1/verify"),
    }
    service = search_pb2.DESCRIPTOR.services_by_name["SearchService"]
    assert {(b.http_method, b.template) for b in service_bindings(service)} == tested


def test_list_and_describe_collections(http: httpx.Client) -> None:
    listed = http.get("/v1/collections").json()["collections"]
    mine = next(c for c in listed if c["collection"] == COLLECTION)
    assert mine["model"] == MODEL and mine["dim"] == 1280
    described = http.get(f"/v1/collections/{COLLECTION}").json()
    assert described["points"] == "6"  # uint64: a string in the proto's JSON mapping
    missing = http.get("/v1/collections/no_such_collection")
    assert missing.status_code == 404
    assert error_of(missing)["status"] == "NOT_FOUND"


def test_create_refuses_a_bad_name_and_a_taken_one(http: httpx.Client) -> None:
    bad = http.post("/v1/collections", json={"collection": "../etc", "model": MODEL})
    assert bad.status_code == 400 and error_of(bad)["code"] == 3
    taken = http.post("/v1/collections", json={"collection": COLLECTION, "model": "color_histogram"})
    assert taken.status_code == 409 and error_of(taken)["status"] == "ALREADY_EXISTS"


def test_search_by_image_with_thumbnails(http: httpx.Client) -> None:
    response = http.post(
        f"/v1/collections/{COLLECTION}:search",
        json={"image": b64(jpeg(3)), "topK": 3, "withThumbnails": True, "index": "INDEX_KIND_EXACT"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["collection"] == COLLECTION and body["index"] == "INDEX_KIND_EXACT"
    top = body["results"][0]
    assert top["id"] == "img-3" and top["score"] > 0.99
    assert top["metadata"] == {"seed": 3, "kind": "noise"}
    thumbnail = base64.b64decode(top["thumbnail"])
    assert thumbnail[:3] == b"\xff\xd8\xff" and len(thumbnail) < 64 * 1024  # a JPEG


def test_search_without_thumbnails_sends_none(http: httpx.Client) -> None:
    body = http.post(f"/v1/collections/{COLLECTION}:search", json={"image": b64(jpeg(1)), "topK": 2}).json()
    assert all(r["thumbnail"] == "" for r in body["results"])


@pytest.mark.parametrize("index", ["INDEX_KIND_HNSW", "INDEX_KIND_LSH"])
def test_thumbnails_come_with_every_index(http: httpx.Client, index: str) -> None:
    body = http.post(
        f"/v1/collections/{COLLECTION}:search",
        json={"image": b64(jpeg(2)), "topK": 2, "withThumbnails": True, "index": index},
    ).json()
    assert body["results"] and all(
        base64.b64decode(r["thumbnail"])[:2] == b"\xff\xd8" for r in body["results"]
    )


def test_more_like_this_filters_and_paging(http: httpx.Client) -> None:
    body = http.post(
        f"/v1/collections/{COLLECTION}:search",
        json={
            "positiveIds": ["img-0"],
            "topK": 2,
            "offset": 1,
            "where": {"must": [{"key": "kind", "equals": "noise"}]},
        },
    ).json()
    assert len(body["results"]) == 2 and "img-0" not in {r["id"] for r in body["results"]}


def test_the_default_collection_routes(http: httpx.Client) -> None:
    added = http.post("/v1/images", json={"id": "default-1", "image": b64(jpeg(40))})
    assert added.status_code == 200, added.text
    found = http.post("/v1/search", json={"image": b64(jpeg(40)), "topK": 1}).json()
    assert found["collection"] == MODEL and found["results"][0]["id"] == "default-1"
    stats = http.get("/v1/stats").json()
    assert stats["collection"]["collection"] == MODEL
    deleted = http.post("/v1/images:delete", json={"ids": ["default-1"]}).json()
    assert deleted == {"deleted": 1}


def test_search_batch(http: httpx.Client) -> None:
    queries = [{"collection": COLLECTION, "image": b64(jpeg(s)), "topK": 1} for s in (4, 5)]
    body = http.post("/v1/search:batch", json={"queries": queries}).json()
    assert [r["results"][0]["id"] for r in body["responses"]] == ["img-4", "img-5"]
    empty = http.post("/v1/search:batch", json={"queries": []})
    assert empty.status_code == 400


def test_bulk_add_as_newline_delimited_json(http: httpx.Client) -> None:
    lines = [json.dumps({"id": f"bulk-{s}", "image": b64(jpeg(100 + s))}) for s in range(3)]
    response = http.post(
        f"/v1/collections/{COLLECTION}/images:stream",
        content="\n".join(lines) + "\n",
        headers={"content-type": "application/x-ndjson"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["added"] == 3
    default = http.post("/v1/images:stream", content=json.dumps({"id": "bulk-d", "image": b64(jpeg(120))}))
    assert default.json()["added"] == 1


def test_a_bad_line_ends_the_bulk_add_with_what_was_stored(http: httpx.Client) -> None:
    good = json.dumps({"id": "line-1", "image": b64(jpeg(130))})
    response = http.post(
        f"/v1/collections/{COLLECTION}/images:stream", content=f"{good}\n{{not json\n{good}\n"
    )
    assert response.status_code == 400
    assert "line 2" in error_of(response)["message"]
    assert response.headers["imsearch-items-stored"] == "1"
    undecodable = json.dumps({"id": "line-bad", "image": b64(b"not an image")})
    failed = http.post(f"/v1/collections/{COLLECTION}/images:stream", content=f"{good}\n{undecodable}\n")
    assert failed.status_code == 400 and failed.headers["imsearch-items-stored"] == "1"


def test_find_duplicates_routes(http: httpx.Client) -> None:
    http.post(f"/v1/collections/{COLLECTION}/images", json={"id": "copy-of-0", "image": b64(jpeg(0))})
    groups = http.post(f"/v1/collections/{COLLECTION}:findDuplicates", json={"minScore": 0.99}).json()
    assert any({"img-0", "copy-of-0"} <= set(g["ids"]) for g in groups["groups"])
    assert http.post("/v1/duplicates", json={}).status_code == 200


def test_stats_and_verify(http: httpx.Client) -> None:
    stats = http.get(f"/v1/collections/{COLLECTION}/stats").json()
    assert stats["model"] == MODEL and stats["dim"] == 1280
    audit = http.post(f"/v1/collections/{COLLECTION}:verify", json={"repair": False}).json()
    assert audit["missingInLsh"] == "0" and audit["diverged"] == "0"
    assert http.post("/v1/verify", json={}).status_code == 200


def test_delete_images_and_drop_a_collection(http: httpx.Client) -> None:
    http.post("/v1/collections", json={"collection": "to_drop", "model": MODEL})
    http.post("/v1/collections/to_drop/images", json={"id": "x", "image": b64(jpeg(7))})
    deleted = http.post("/v1/collections/to_drop/images:delete", json={"ids": ["x", "never-stored"]})
    assert deleted.json() == {"deleted": 1}
    assert http.delete("/v1/collections/to_drop").json() == {"dropped": True}
    assert http.get("/v1/collections/to_drop").status_code == 404


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ('{"topK": "many"}', "topK"),
        ('{"noSuchField": 1}', "noSuchField"),
        ("[1, 2]", "JSON object"),
        ("{not json", "not JSON"),
        ('{"image": "***"}', "image"),
        ('{"image": "' + b64(b"garbage") + '"}', "decodable"),
        ('{"topK": 5000, "image": "' + b64(jpeg(1)) + '"}', "top_k"),
        ('{"collection": "other", "image": "' + b64(jpeg(1)) + '"}', "path"),
    ],
)
def test_bad_requests_get_400_with_the_reason(http: httpx.Client, body: str, says: str) -> None:
    response = http.post(f"/v1/collections/{COLLECTION}:search", content=body)
    assert response.status_code == 400, response.text
    error = error_of(response)
    assert error["status"] == "INVALID_ARGUMENT" and says in error["message"]


def test_query_parameters_of_a_get(http: httpx.Client) -> None:
    assert (
        http.get("/v1/stats", params={"collection": COLLECTION}).json()["collection"]["collection"]
        == COLLECTION
    )
    unknown = http.get("/v1/stats", params={"colection": COLLECTION})
    assert unknown.status_code == 400 and "colection" in error_of(unknown)["message"]
    twice = http.get("/v1/stats", params=[("collection", "a"), ("collection", "b")])
    assert twice.status_code == 400


def test_a_body_over_the_limit_is_413_before_it_is_read(http: httpx.Client, suite: Suite) -> None:
    oversized = b'{"image": "' + b"A" * (41 * 1024 * 1024) + b'"}'
    response = http.post(f"/v1/collections/{COLLECTION}:search", content=oversized)
    assert response.status_code == 413
    assert "limit" in error_of(response)["message"]
    endless_line = b'{"id": "' + b"x" * (41 * 1024 * 1024)  # a stream has no total limit, a line has
    streamed = http.post(f"/v1/collections/{COLLECTION}/images:stream", content=endless_line)
    assert streamed.status_code == 413 and "line 1" in error_of(streamed)["message"]
    # The service is still up.
    assert http.get("/v1/collections").status_code == 200


def test_unknown_routes_and_methods(http: httpx.Client) -> None:
    assert http.get("/v1/nothing-here").status_code == 404
    wrong = http.put(f"/v1/collections/{COLLECTION}", json={})
    assert wrong.status_code == 405 and error_of(wrong)["status"] == "UNIMPLEMENTED"
    # A name is a single path segment: no way into another route or the filesystem.
    assert http.get("/v1/collections/a/b").status_code == 404
    assert http.get("/v1/collections/..%2F..%2Fetc").status_code in (400, 404)


def test_the_page_and_the_openapi_description_are_served(http: httpx.Client) -> None:
    page = http.get("/")
    assert page.status_code == 200 and "<html" in page.text.lower()
    document = http.get("/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    assert "/v1/collections/{collection}:search" in document["paths"]


def test_requests_are_counted_by_route_template(http: httpx.Client, suite: Suite) -> None:
    http.get(f"/v1/collections/{COLLECTION}")
    http.get("/v1/collections/no_such_collection")
    http.get("/v1/nothing-here")
    text = httpx.get(f"http://127.0.0.1:{suite.gateway.metrics_port}/metrics").text
    assert (
        'imsearch_http_requests_total{method="GET",route="/v1/collections/{collection}",status="200"}' in text
    )
    assert (
        'imsearch_http_requests_total{method="GET",route="/v1/collections/{collection}",status="404"}' in text
    )
    assert 'route="unmatched",status="404"' in text
    assert "no_such_collection" not in text  # names never become labels
