"""A small typed client of the gateway's SearchService, used by the CLI and the benchmarks."""

import os
from collections.abc import Iterable
from types import TracebackType
from typing import Any, Self

from imsearch.core.channels import ClientSecurity, open_channel
from imsearch.core.search_request import build_query
from imsearch.core.structs import to_struct
from imsearch.v1 import index_pb2, search_pb2, search_pb2_grpc

DEFAULT_GATEWAY = "127.0.0.1:50050"


def gateway_address(flag: str | None) -> str:
    return flag or os.environ.get("IMSEARCH_GATEWAY") or DEFAULT_GATEWAY


class SearchClient:
    def __init__(self, address: str, timeout: float = 60.0, security: ClientSecurity | None = None) -> None:
        """`security`: TLS CA and bearer token; by default from IMSEARCH_TLS_CA and IMSEARCH_TOKEN."""
        self._channel = open_channel(address, security or ClientSecurity.from_environment())
        self._stub = search_pb2_grpc.SearchServiceStub(self._channel)
        self._timeout = timeout

    # -- collections: each bound to the model its images are encoded with --------------------

    def create_collection(self, name: str, model: str = "", **params: Any) -> index_pb2.CollectionInfo:
        """`model`: one the encoder serves; empty for the gateway's default. `params`: lsh_tables,
        lsh_bits, hnsw_m, hnsw_ef_construct (the index service's settings otherwise), and
        quantization (index_pb2.VECTOR_QUANTIZATION_INT8: int8 vectors in Qdrant's RAM). Admin."""
        request = search_pb2.CreateCollectionRequest(
            collection=name, model=model, params=index_pb2.IndexParams(**params) if params else None
        )
        info: index_pb2.CollectionInfo = self._stub.CreateCollection(request, timeout=self._timeout)
        return info

    def list_collections(self) -> list[index_pb2.CollectionInfo]:
        listed = self._stub.ListCollections(index_pb2.ListCollectionsRequest(), timeout=self._timeout)
        return list(listed.collections)

    def describe_collection(self, name: str = "") -> index_pb2.CollectionInfo:
        info: index_pb2.CollectionInfo = self._stub.DescribeCollection(
            index_pb2.GetCollectionInfoRequest(collection=name), timeout=self._timeout
        )
        return info

    def drop_collection(self, name: str) -> bool:
        """Removes the collection and its images; False if there was none. Admin."""
        request = index_pb2.DropCollectionRequest(collection=name)
        return bool(self._stub.DropCollection(request, timeout=self._timeout).dropped)

    # -- images; collection "" is the gateway's default one ----------------------------------

    def add_images(self, items: Iterable[tuple[str, bytes, dict[str, Any]]], collection: str = "") -> int:
        requests = (
            search_pb2.AddImageRequest(id=i, image=data, metadata=to_struct(meta), collection=collection)
            for i, data, meta in items
        )
        return int(self._stub.AddImages(requests).added)

    def search(
        self, image: bytes | None = None, top_k: int = 10, **options: Any
    ) -> search_pb2.SearchResponse:
        """See `build_query` for the options (index, filter, collection, examples, paging, box)."""
        request = build_query(image, top_k, **options)
        response: search_pb2.SearchResponse = self._stub.Search(request, timeout=self._timeout)
        return response

    def search_batch(self, queries: Iterable[dict[str, Any]]) -> list[search_pb2.SearchResponse]:
        """Many searches in one call, each given as `build_query`'s keyword arguments."""
        request = search_pb2.SearchBatchRequest(queries=[build_query(**query) for query in queries])
        return list(self._stub.SearchBatch(request, timeout=self._timeout).responses)

    def add_images_checked(
        self,
        items: Iterable[tuple[str, bytes, dict[str, Any]]],
        collection: str = "",
        on_duplicate: str = "report",
        min_score: float | None = None,
        skip_existing: bool = False,
    ) -> search_pb2.AddImagesResponse:
        """As add_images, checking each image against the stored ones (and the earlier ones):
        "report" stores near-duplicates (cosine >= min_score, default 0.95) and names them,
        "skip" leaves them out, "allow" does not look. The response lists them. With
        `skip_existing`, ids already stored are left as they are (a re-run resumes)."""
        policies = {
            "allow": search_pb2.DUPLICATE_POLICY_ALLOW,
            "report": search_pb2.DUPLICATE_POLICY_REPORT,
            "skip": search_pb2.DUPLICATE_POLICY_SKIP,
        }
        if on_duplicate not in policies:
            raise ValueError(f"on_duplicate must be one of {', '.join(policies)}, not {on_duplicate!r}")
        requests = (
            search_pb2.AddImageRequest(
                id=i,
                image=data,
                metadata=to_struct(meta),
                collection=collection,
                on_duplicate=policies[on_duplicate],
                duplicate_min_score=min_score,
                skip_existing=skip_existing,
            )
            for i, data, meta in items
        )
        response: search_pb2.AddImagesResponse = self._stub.AddImages(requests)
        return response

    def find_duplicates(
        self, collection: str = "", min_score: float = 0.95, max_groups: int = 100
    ) -> index_pb2.FindDuplicatesResponse:
        """Groups of near-duplicate stored images (a scan of the collection)."""
        request = index_pb2.FindDuplicatesRequest(
            collection=collection, min_score=min_score, max_groups=max_groups
        )
        response: index_pb2.FindDuplicatesResponse = self._stub.FindDuplicates(request)
        return response

    def delete(self, ids: list[str], collection: str = "") -> int:
        request = search_pb2.DeleteImagesRequest(ids=ids, collection=collection)
        return int(self._stub.DeleteImages(request, timeout=self._timeout).deleted)

    def stats(self, collection: str = "") -> search_pb2.Stats:
        request = search_pb2.GetStatsRequest(collection=collection)
        stats: search_pb2.Stats = self._stub.GetStats(request, timeout=self._timeout)
        return stats

    def verify(self, repair: bool = False, collection: str = "") -> index_pb2.VerifyResponse:
        """Audits a collection (admin): both stores hold the same points?"""
        request = index_pb2.VerifyRequest(repair=repair, collection=collection)
        response: index_pb2.VerifyResponse = self._stub.VerifyIndex(request)
        return response

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()
