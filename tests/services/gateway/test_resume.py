"""A bulk add with skip_existing leaves stored ids as they are, without decoding or encoding
them, so an interrupted `imsearch index` resumes where it stopped."""

import grpc
import pytest

from cli.suite import Suite
from imsearch.client import SearchClient
from tests.helpers import jpeg


def test_stored_ids_are_neither_decoded_nor_replaced(suite: Suite) -> None:
    client = SearchClient(suite.address)
    client.create_collection("resume")
    client.add_images([(f"r{i}", jpeg(i), {"round": 1}) for i in range(3)], "resume")
    # The stored ids come back as bytes that cannot decode: only skipping them lets this pass.
    again = [(f"r{i}", b"not an image", {"round": 2}) for i in range(3)] + [("r3", jpeg(3), {"round": 2})]
    response = client.add_images_checked(again, "resume", "allow", skip_existing=True)
    assert (response.added, response.already_stored) == (1, 3)
    hit = client.search(jpeg(0), collection="resume", top_k=1).results[0]
    assert (hit.id, dict(hit.metadata)["round"]) == ("r0", 1)  # untouched
    with pytest.raises(grpc.RpcError) as refused:  # without it, the same items are decoded
        client.add_images_checked(again, "resume", "allow")
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    client.drop_collection("resume")
    client.close()
