"""The asyncio client against a real suite: every call it has, awaited."""

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest

from cli.suite import Suite
from imsearch.async_client import AsyncSearchClient
from imsearch.client import SearchClient
from tests.helpers import jpeg


async def gallery(n: int) -> AsyncIterator[tuple[str, bytes, dict[str, int]]]:
    for i in range(n):
        yield f"a{i}", jpeg(i), {"n": i}


def test_the_async_client_does_what_the_blocking_one_does(suite: Suite) -> None:
    async def scenario() -> None:
        async with AsyncSearchClient(suite.address) as client:
            made = await client.create_collection("async-c", "color_histogram")
            assert made.model == "color_histogram"
            assert await client.add_images(gallery(6), "async-c") == 6
            assert await client.add_images([("b0", jpeg(40), {})], "async-c") == 1
            found, again = await asyncio.gather(
                client.search(jpeg(3), top_k=2, index="exact", collection="async-c"),
                client.search(like=["a3"], top_k=2, index="exact", collection="async-c"),
            )
            assert found.results[0].id == "a3" and "a3" not in [r.id for r in again.results]
            batch = await client.search_batch([{"image": jpeg(4), "collection": "async-c", "top_k": 1}])
            assert batch[0].results[0].id == "a4"
            assert (await client.stats("async-c")).collection.points == 7
            assert "async-c" in {c.collection for c in await client.list_collections()}
            assert (await client.find_duplicates("async-c")).points_scanned == 7
            assert await client.delete(["a1", "nope"], "async-c") == 1
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await client.search(jpeg(1), collection="never-made")
            assert error.value.code() == grpc.StatusCode.NOT_FOUND
            assert await client.drop_collection("async-c")

    asyncio.run(scenario())
    with SearchClient(suite.address) as blocking:  # the same suite, seen by the blocking client
        assert "async-c" not in {c.collection for c in blocking.list_collections()}
