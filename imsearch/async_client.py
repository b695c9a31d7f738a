"""The asyncio client of the gateway's SearchService: the same calls as `imsearch.client`,
awaitable, for services written with asyncio (grpc.aio underneath)."""

from collections.abc import AsyncIterable, AsyncIterator, Iterable
from types import TracebackType
from typing import Any, Self

import grpc

from imsearch.core.channels import GRPC_OPTIONS, ClientSecurity
from imsearch.core.search_request import build_query
from imsearch.core.structs import to_struct
from imsearch.core.tls import channel_credentials
from imsearch.v1 import index_pb2, search_pb2, search_pb2_grpc

Item = tuple[str, bytes, dict[str, Any]]


def open_async_channel(target: str, security: ClientSecurity) -> grpc.aio.Channel:
    options: list[tuple[str, Any]] = list(GRPC_OPTIONS)
    if security.server_name:
        options.append(("grpc.ssl_target_name_override", security.server_name))
    if security.tls:
        credentials = channel_credentials(security.tls_ca, security.tls_cert, security.tls_key)
        return grpc.aio.secure_channel(target, credentials, options=options)
    return grpc.aio.insecure_channel(target, options=options)


class AsyncSearchClient:
    def __init__(self, address: str, timeout: float = 60.0, security: ClientSecurity | None = None) -> None:
        """`security`: TLS CA and bearer token; by default from IMSEARCH_TLS_CA and IMSEARCH_TOKEN."""
        security = security or ClientSecurity.from_environment()
        self._channel = open_async_channel(address, security)
        self._stub = search_pb2_grpc.SearchServiceStub(self._channel)
        self._timeout = timeout
        self._metadata = (("authorization", f"Bearer {security.token}"),) if security.token else ()

    async def search(
        self, image: bytes | None = None, top_k: int = 10, **options: Any
    ) -> search_pb2.SearchResponse:
        """The options of `imsearch.client.build_query`."""
        request = build_query(image, top_k, **options)
        response: search_pb2.SearchResponse = await self._stub.Search(
            request, timeout=self._timeout, metadata=self._metadata
        )
        return response

    async def search_batch(self, queries: Iterable[dict[str, Any]]) -> list[search_pb2.SearchResponse]:
        request = search_pb2.SearchBatchRequest(queries=[build_query(**query) for query in queries])
        response = await self._stub.SearchBatch(request, timeout=self._timeout, metadata=self._metadata)
        return list(response.responses)

    async def add_images(self, items: Iterable[Item] | AsyncIterable[Item], collection: str = "") -> int:
        async def each() -> AsyncIterator[Item]:
            if isinstance(items, AsyncIterable):
                async for item in items:
                    yield item
            else:
                for item in items:
                    yield item

        async def requests() -> AsyncIterator[search_pb2.AddImageRequest]:
            async for i, data, meta in each():
                yield search_pb2.AddImageRequest(
                    id=i, image=data, metadata=to_struct(meta), collection=collection
                )

        response = await self._stub.AddImages(requests(), metadata=self._metadata)
        return int(response.added)

    async def delete(self, ids: list[str], collection: str = "") -> int:
        request = search_pb2.DeleteImagesRequest(ids=ids, collection=collection)
        response = await self._stub.DeleteImages(request, timeout=self._timeout, metadata=self._metadata)
        return int(response.deleted)

    async def stats(self, collection: str = "") -> search_pb2.Stats:
        request = search_pb2.GetStatsRequest(collection=collection)
        stats: search_pb2.Stats = await self._stub.GetStats(
            request, timeout=self._timeout, metadata=self._metadata
        )
        return stats

    async def create_collection(self, name: str, model: str = "") -> index_pb2.CollectionInfo:
        request = search_pb2.CreateCollectionRequest(collection=name, model=model)
        info: index_pb2.CollectionInfo = await self._stub.CreateCollection(
            request, timeout=self._timeout, metadata=self._metadata
        )
        return info

    async def list_collections(self) -> list[index_pb2.CollectionInfo]:
        listed = await self._stub.ListCollections(
            index_pb2.ListCollectionsRequest(), timeout=self._timeout, metadata=self._metadata
        )
        return list(listed.collections)

    async def drop_collection(self, name: str) -> bool:
        request = index_pb2.DropCollectionRequest(collection=name)
        response = await self._stub.DropCollection(request, timeout=self._timeout, metadata=self._metadata)
        return bool(response.dropped)

    async def find_duplicates(
        self, collection: str = "", min_score: float = 0.95, max_groups: int = 100
    ) -> index_pb2.FindDuplicatesResponse:
        request = index_pb2.FindDuplicatesRequest(
            collection=collection, min_score=min_score, max_groups=max_groups
        )
        response: index_pb2.FindDuplicatesResponse = await self._stub.FindDuplicates(
            request, metadata=self._metadata
        )
        return response

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.close()
