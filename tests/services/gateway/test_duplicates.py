"""Near-duplicates through the gateway: reported or skipped at add time, listed in groups.

The collection uses the colour-histogram model: the synthetic test pictures are far apart by
colour (cosine about 0.6-0.7) while a recompressed copy stays close (0.99); by a CNN they are
all alike (0.90-0.95), real photos would not be."""

from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from cli.suite import Suite
from imsearch.client import SearchClient
from imsearch.v1 import index_pb2, search_pb2, search_pb2_grpc
from tests.helpers import jpeg

C = "dups"


@pytest.fixture(scope="module")
def client(suite: Suite) -> Iterator[SearchClient]:
    made = SearchClient(suite.address)
    made.create_collection(C, "color_histogram")
    made.add_images(((f"g{i}", jpeg(i), {}) for i in range(6)), C)
    yield made
    made.close()


def points(client: SearchClient) -> int:
    return int(client.stats(C).collection.points)


def test_a_recompressed_copy_is_reported_and_stored(client: SearchClient) -> None:
    before = points(client)
    response = client.add_images_checked([("copy3", jpeg(3, quality=60), {})], C, on_duplicate="report")
    (duplicate,) = response.duplicates
    assert (duplicate.id, duplicate.of, duplicate.skipped) == ("copy3", "g3", False)
    assert duplicate.score >= 0.95 and response.added == 1 and points(client) == before + 1


def test_skip_leaves_duplicates_out_even_within_one_call(client: SearchClient) -> None:
    before = points(client)
    response = client.add_images_checked(
        [
            ("copy4", jpeg(4, quality=60), {}),
            ("new", jpeg(100), {}),
            ("new-again", jpeg(100, quality=70), {}),
        ],
        C,
        on_duplicate="skip",
    )
    skipped = {(d.id, d.of) for d in response.duplicates if d.skipped}
    assert skipped == {("copy4", "g4"), ("new-again", "new")}
    assert response.added == 1 and points(client) == before + 1
    ids = [r.id for r in client.search(jpeg(100), top_k=3, index="exact", collection=C).results]
    assert ids[0] == "new" and "new-again" not in ids


def test_re_adding_an_id_is_a_replacement_not_a_duplicate(client: SearchClient) -> None:
    response = client.add_images_checked([("g5", jpeg(5, quality=80), {})], C, on_duplicate="skip")
    assert response.added == 1 and list(response.duplicates) == []


def test_groups_of_duplicates_are_listed(client: SearchClient) -> None:
    found = client.find_duplicates(C, min_score=0.95)
    groups = [set(g.ids) for g in found.groups]
    assert {"g3", "copy3"} in groups and {"g4", "copy4"} not in groups  # copy4 was skipped
    assert {"new", "new-again"} not in groups
    assert all(len(group & {f"g{i}" for i in range(6)}) <= 1 for group in groups)  # pictures stay apart
    assert found.points_scanned == points(client) and found.groups_found == len(groups)
    assert all(g.min_score >= 0.95 for g in found.groups)


@pytest.mark.parametrize(
    ("call", "code", "message"),
    [
        (
            lambda s: s.AddImage(search_pb2.AddImageRequest(id="x", image=jpeg(), on_duplicate=1, duplicate_min_score=0.2)),
            "INVALID_ARGUMENT",
            "duplicate_min_score must be between 0.5 and 1",
        ),
        (
            lambda s: s.AddImage(search_pb2.AddImageRequest(id="x", image=jpeg(), on_duplicate=9)),
            "INVALID_ARGUMENT",
            "unknown duplicate policy 9",
        ),
        (
            lambda s: s.FindDuplicates(index_pb2.FindDuplicatesRequest(min_score=0.3)),
            "INVALID_ARGUMENT",
            "between 0.5 and 1",
        ),
        (
            lambda s: s.FindDuplicates(index_pb2.FindDuplicatesRequest(max_groups=20000)),
            "INVALID_ARGUMENT",
            "max_groups must be between 1 and 10000",
        ),
        (
            lambda s: s.FindDuplicates(index_pb2.FindDuplicatesRequest(collection="nope")),
            "NOT_FOUND",
            "does not exist",
        ),
    ],
)  # fmt: skip
def test_bad_duplicate_requests(
    suite: Suite, client: SearchClient, call: object, code: str, message: str
) -> None:
    stub = search_pb2_grpc.SearchServiceStub(grpc.insecure_channel(suite.address))
    with pytest.raises(grpc.RpcError) as error:
        call(stub)
    assert (error.value.code().name, message in (error.value.details() or "")) == (code, True), (
        error.value.details()
    )


def test_a_stream_screens_each_batch_against_the_batches_stored_before_it(client: SearchClient) -> None:
    """The gateway encodes the next batch (16 items) while it stores this one: the copy at
    position 18 must still meet its original at position 3, stored one batch earlier."""
    before = points(client)
    items: list[tuple[str, bytes, dict[str, Any]]] = [(f"s{i}", jpeg(500 + i), {}) for i in range(18)]
    items.append(("s3-copy", jpeg(503, quality=60), {}))
    response = client.add_images_checked(items, C, on_duplicate="skip")
    skipped = [(d.id, d.of) for d in response.duplicates if d.skipped]
    assert skipped == [("s3-copy", "s3")]
    assert response.added == 18 and points(client) == before + 18
