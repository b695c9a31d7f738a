"""One search request, checked and planned: what to encode, what to ask the index, how to rank.

The pipeline runs a plan (services.gateway.pipeline); a batch of plans shares its encode calls.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from google.protobuf import struct_pb2

from imsearch.core.errors import InvalidArgument
from imsearch.core.index_kind import IndexKind
from imsearch.core.validation import MAX_EXAMPLES, MAX_TOP_K, validate_page
from imsearch.v1 import encoder_pb2, index_pb2, search_pb2
from services.gateway.collections import Binding

DEFAULT_TOP_K = 10


@dataclass
class RankedHit:
    id: str
    score: float
    metadata: struct_pb2.Struct
    vector: list[float]  # empty unless the search asked for vectors
    thumbnail: bytes = b""  # empty unless the search asked for thumbnails


@dataclass
class SearchResult:
    hits: list[RankedHit]
    reranked: bool
    candidates_scored: int
    binding: Binding  # the collection searched and its model


def rerank(query: np.ndarray, hits: Sequence[index_pb2.Hit], top_k: int) -> list[RankedHit]:
    """Exact cosine over the stored float32 vectors of the candidates, best first."""
    if not hits:
        return []
    matrix = np.asarray([h.vector for h in hits], dtype=np.float32)
    norms = np.maximum(np.linalg.norm(matrix, axis=1), 1e-12)
    scores = (matrix @ query) / (norms * max(float(np.linalg.norm(query)), 1e-12))
    order = np.argsort(-scores, kind="stable")[:top_k]
    return [
        RankedHit(hits[i].id, float(scores[i]), hits[i].metadata, list(hits[i].vector), hits[i].thumbnail)
        for i in order
    ]


@dataclass
class QueryPlan:
    request: search_pb2.SearchRequest
    top_k: int
    index: IndexKind
    min_score: float | None
    positives: list[bytes]  # images: `image` first, then positive_images
    negatives: list[bytes]
    regions: list[encoder_pb2.Box] = field(default_factory=list)  # none, or one per image
    by_example: bool = False
    rerank: bool = False
    text: str = ""  # text-to-image search: embedded by the collection's paired text model

    @property
    def images(self) -> list[bytes]:
        return [*self.positives, *self.negatives]

    @property
    def wanted(self) -> int:
        return self.top_k + self.request.offset


def plan_query(request: search_pb2.SearchRequest) -> QueryPlan:
    """Checks everything that needs no other service; INVALID_ARGUMENT saying what is wrong."""
    top_k = request.top_k or DEFAULT_TOP_K
    index = IndexKind.from_proto(request.index)
    min_score = request.min_score if request.HasField("min_score") else None
    validate_page(top_k, request.offset, min_score)
    if request.rerank not in search_pb2.Rerank.values():
        raise InvalidArgument(f"unknown rerank mode {request.rerank}")
    positives = [*([request.image] if request.image else []), *request.positive_images]
    negatives = list(request.negative_images)
    by_example = bool(request.positive_ids or request.negative_ids or request.positive_images or negatives)
    if request.text and (by_example or request.image or request.HasField("box")):
        raise InvalidArgument("a text search takes no image, box or examples")
    if not (by_example or request.image or request.text):
        raise InvalidArgument(
            "give an image or a text to search with, or examples (positive_ids, positive_images)"
        )
    counts = (len(positives) + len(request.positive_ids), len(negatives) + len(request.negative_ids))
    if max(counts) > MAX_EXAMPLES:  # before encoding any of them
        raise InvalidArgument(
            f"at most {MAX_EXAMPLES} positive and {MAX_EXAMPLES} negative examples, "
            f"got {counts[0]} and {counts[1]}"
        )
    regions: list[encoder_pb2.Box] = []
    if request.HasField("box"):
        if not request.image:
            raise InvalidArgument("box is a region of `image`: give the image too")
        regions = [request.box] + [encoder_pb2.Box()] * (len(positives) + len(negatives) - 1)
    do_rerank = (
        not by_example
        and not request.HasField("k_reciprocal")
        and (
            request.rerank == search_pb2.RERANK_ON
            or (request.rerank == search_pb2.RERANK_DEFAULT and index is IndexKind.LSH)
        )
    )
    return QueryPlan(
        request, top_k, index, min_score, positives, negatives, regions, by_example, do_rerank, request.text
    )


def vector_request(
    plan: QueryPlan, binding: Binding, vectors: np.ndarray | None, rerank_factor: int
) -> index_pb2.SearchVectorRequest:
    """What to ask the index, given the plan's images encoded (None when it has none)."""
    request = plan.request
    query = index_pb2.SearchVectorRequest(
        collection=binding.collection,
        index=plan.index.to_proto(),
        filter=request.filter,
        where=request.where if request.HasField("where") else None,
        model=binding.model,
        with_vectors=plan.rerank or request.with_vectors,
        with_thumbnails=request.with_thumbnails,
        expansion=request.expansion if request.HasField("expansion") else None,
        k_reciprocal=request.k_reciprocal if request.HasField("k_reciprocal") else None,
    )
    if plan.by_example:
        found = [] if vectors is None else [index_pb2.Vector(values=v.tolist()) for v in vectors]
        query.positive_ids.extend(request.positive_ids)
        query.negative_ids.extend(request.negative_ids)
        query.positive_vectors.extend(found[: len(plan.positives)])
        query.negative_vectors.extend(found[len(plan.positives) :])
        query.strategy = request.strategy
    else:
        assert vectors is not None
        query.vector.extend(vectors[0].tolist())
    if plan.rerank:  # page after rescoring: fetch from the top
        query.top_k = min(MAX_TOP_K, plan.wanted * rerank_factor)
    else:
        query.top_k, query.offset = plan.top_k, request.offset
        if plan.min_score is not None:
            query.min_score = plan.min_score
    return query


def ranked_hits(
    plan: QueryPlan, response: index_pb2.SearchVectorResponse, vectors: np.ndarray | None
) -> list[RankedHit]:
    if not plan.rerank:
        return [RankedHit(h.id, h.score, h.metadata, list(h.vector), h.thumbnail) for h in response.hits]
    assert vectors is not None
    hits = rerank(vectors[0], response.hits, plan.wanted)[plan.request.offset :]
    return hits if plan.min_score is None else [h for h in hits if h.score >= plan.min_score]
