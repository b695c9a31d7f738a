"""The public SearchRequest built from keyword arguments: shared by the blocking and the asyncio
clients (imsearch.client, imsearch.async_client)."""

from collections.abc import Sequence
from typing import Any

from google.protobuf import json_format

from imsearch.core.index_kind import IndexKind
from imsearch.core.structs import to_struct
from imsearch.v1 import encoder_pb2, index_pb2, search_pb2


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
    text: str = "",
    expansion: tuple[int, float] | None = None,
) -> search_pb2.SearchRequest:
    """A SearchRequest. By one image (`box`: only its region x, y, width, height, as fractions), or by
    examples: `like`/`unlike` stored ids, `like_images`/`unlike_images`
    (`image` counts as one more positive); `strategy` "average_vector" or "best_score".
    `text`: text-to-image search instead of an image (a CLIP collection with its text tower).
    `expansion`: (neighbours, alpha) of alpha query expansion in the index.
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
        text=text,
        expansion=None
        if expansion is None
        else index_pb2.QueryExpansion(neighbours=expansion[0], alpha=expansion[1]),
    )
    return request
