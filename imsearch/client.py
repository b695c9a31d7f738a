"""A small typed client of the gateway's SearchService, used by the CLI and the benchmarks."""

import os
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Any, Self

from google.protobuf import json_format

from imsearch.core.channels import ClientSecurity, open_channel
from imsearch.core.index_kind import IndexKind
from imsearch.core.structs import to_struct
from imsearch.v1 import encoder_pb2, index_pb2, search_pb2, search_pb2_grpc

DEFAULT_GATEWAY = "127.0.0.1:50050"


def gateway_address(flag: str | None) -> str:
    return flag or os.environ.get("IMSEARCH_GATEWAY") or DEFAULT_GATEWAY


def build_query(
    image: bytes | None = None,
    top_k: int = 10,
    index: IndexKind | str = IndexKind.HNSW,
    metadata_filter: dict[str, Any] | None = None,
    rerank: bool | None = None,
    collection: str = "",
    *,
    like: Sequence[str] = (),
    unlike: Sequence[str] = (),
    like_images: Sequence[bytes] = (),
    unlike_images: Sequence[bytes] = (),
    strategy: str = "average_vector",
    offset: int = 0,
    min_score: float | None = None,
    with_vectors: bool = False,
    omit_metadata: bool = False,
    box: tuple[float, float, float, float] | None = None,
    where: dict[str, Any] | index_pb2.Filter | None = None,
) -> search_pb2.SearchRequest:
    """A SearchRequest. By one image (`box`: only its region x, y, width, height, as fractions), or by
    examples: `like`/`unlike` stored ids, `like_images`/`unlike_images`
    (`image` counts as one more positive); `strategy` "average_vector" or "best_score".
    `where`: must / should / must_not conditions, as an imsearch.v1.Filter or its JSON form,
    e.g. {"must": [{"key": "price", "range": {"lt": 50}}], "must_not": [{"key": "tag", "equals": "x"}]}."""
    mode = {None: search_pb2.RERANK_DEFAULT, True: search_pb2.RERANK_ON, False: search_pb2.RERANK_OFF}
    strategies = {
        "average_vector": index_pb2.EXAMPLE_STRATEGY_AVERAGE_VECTOR,
        "best_score": index_pb2.EXAMPLE_STRATEGY_BEST_SCORE,
    }
    if strategy not in strategies:
        raise ValueError(f"strategy must be one of {', '.join(strategies)}, not {strategy!r}")
    request = search_pb2.SearchRequest(
        image=image or b"",
        top_k=top_k,
        index=IndexKind.parse(index).to_proto(),
        filter=to_struct(metadata_filter or {}),
        rerank=mode[rerank],
        collection=collection,
        positive_ids=like,
        negative_ids=unlike,
        positive_images=like_images,
        negative_images=unlike_images,
        strategy=strategies[strategy],
        offset=offset,
        min_score=min_score,
        with_vectors=with_vectors,
        omit_metadata=omit_metadata,
        box=None if box is None else encoder_pb2.Box(x=box[0], y=box[1], width=box[2], height=box[3]),
        where=json_format.ParseDict(where, index_pb2.Filter()) if isinstance(where, dict) else where,
    )
    return request


class SearchClient:
    def __init__(self, address: str, timeout: float = 60.0, security: ClientSecurity | None = None) -> None:
        """`security`: TLS CA and bearer token; by default from IMSEARCH_TLS_CA and IMSEARCH_TOKEN."""
        self._channel = open_channel(address, security or ClientSecurity.from_environment())
        self._stub = search_pb2_grpc.SearchServiceStub(self._channel)
        self._timeout = timeout

    # -- collections: each bound to the model its images are encoded with --------------------

    def create_collection(self, name: str, model: str = "") -> index_pb2.CollectionInfo:
        """`model`: one the encoder serves; empty for the gateway's default. Admin."""
        info: index_pb2.CollectionInfo = self._stub.CreateCollection(
            search_pb2.CreateCollectionRequest(collection=name, model=model), timeout=self._timeout
        )
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
    ) -> search_pb2.AddImagesResponse:
        """As add_images, checking each image against the stored ones (and the earlier ones):
        "report" stores near-duplicates (cosine >= min_score, default 0.95) and names them,
        "skip" leaves them out. The response lists them."""
        policies = {"report": search_pb2.DUPLICATE_POLICY_REPORT, "skip": search_pb2.DUPLICATE_POLICY_SKIP}
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
