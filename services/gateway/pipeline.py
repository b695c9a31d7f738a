"""Search pipeline: encode (encoder service) -> search (index service) -> rerank (here)."""

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np
from google.protobuf import struct_pb2

from imsearch.core.errors import InvalidArgument
from imsearch.core.index_kind import IndexKind
from imsearch.core.metrics import ServiceMetrics
from imsearch.core.validation import MAX_TOP_K, validate_id, validate_ids, validate_name, validate_top_k
from imsearch.v1 import encoder_pb2, encoder_pb2_grpc, index_pb2, index_pb2_grpc, search_pb2
from services.gateway.settings import GatewaySettings

log = logging.getLogger(__name__)

DEFAULT_TOP_K = 10


@dataclass
class RankedHit:
    id: str
    score: float
    metadata: struct_pb2.Struct


@dataclass
class SearchResult:
    hits: list[RankedHit]
    reranked: bool
    candidates_scored: int


def rerank(query: np.ndarray, hits: Sequence[index_pb2.Hit], top_k: int) -> list[RankedHit]:
    """Exact cosine over the stored float32 vectors of the candidates, best first."""
    if not hits:
        return []
    matrix = np.asarray([h.vector for h in hits], dtype=np.float32)
    norms = np.maximum(np.linalg.norm(matrix, axis=1), 1e-12)
    scores = (matrix @ query) / (norms * max(float(np.linalg.norm(query)), 1e-12))
    order = np.argsort(-scores, kind="stable")[:top_k]
    return [RankedHit(hits[i].id, float(scores[i]), hits[i].metadata) for i in order]


class SearchPipeline:
    """Owns its two channels: `close()` closes them."""

    def __init__(
        self,
        settings: GatewaySettings,
        encoder_channel: grpc.Channel,
        index_channel: grpc.Channel,
        metrics: ServiceMetrics,
    ) -> None:
        self._settings = settings
        self._channels = (encoder_channel, index_channel)
        self._encoder = encoder_pb2_grpc.EncoderServiceStub(encoder_channel)
        self._index = index_pb2_grpc.IndexServiceStub(index_channel)
        self._metrics = metrics
        self._timeout = settings.rpc_timeout_s
        models = self._encoder.ListModels(encoder_pb2.ListModelsRequest(), timeout=self._timeout).models
        wanted = settings.model or next((m.name for m in models if m.is_default), "")
        model = next((m for m in models if m.name == wanted), None)
        if model is None:
            raise ValueError(f"encoder does not serve model {wanted!r}")
        self.model, self.dim = model.name, model.dim
        self.collection = validate_name("collection", settings.collection or model.name)
        self._index.EnsureCollection(
            index_pb2.EnsureCollectionRequest(collection=self.collection, dim=self.dim),
            timeout=self._timeout,
        )

    def encode(self, images: list[bytes]) -> np.ndarray:
        with self._metrics.stage("encode"):
            response = self._encoder.Encode(
                encoder_pb2.EncodeRequest(model=self.model, images=images), timeout=self._timeout
            )
        return np.asarray([e.values for e in response.embeddings], dtype=np.float32)

    def add(self, items: Sequence[search_pb2.AddImageRequest]) -> int:
        for item in items:
            validate_id(item.id)
        vectors = self.encode([item.image for item in items])
        points = [
            index_pb2.Point(id=item.id, vector=vector.tolist(), metadata=item.metadata)
            for item, vector in zip(items, vectors, strict=True)
        ]
        with self._metrics.stage("index_upsert"):
            response = self._index.Upsert(
                index_pb2.UpsertRequest(collection=self.collection, points=points),
                timeout=self._timeout,
            )
        return int(response.upserted)

    def add_stream(self, requests: Iterable[search_pb2.AddImageRequest]) -> int:
        """Adds in batches; on a bad item, adds the items before it one by one, then fails."""
        added = 0
        seen: set[str] = set()
        for batch in _batches(requests, self._settings.add_batch):
            for item in batch:
                validate_id(item.id)
                if item.id in seen:
                    raise InvalidArgument(f"id {item.id!r} appears twice in the stream")
                seen.add(item.id)
            try:
                added += self.add(batch)
            except grpc.RpcError:
                for item in batch:  # find the bad one; the good ones before it stay added
                    added += self.add([item])
                raise
        return added

    def search(
        self,
        image: bytes,
        top_k: int,
        index: IndexKind,
        metadata_filter: struct_pb2.Struct,
        rerank_mode: int,
    ) -> SearchResult:
        top_k = top_k or DEFAULT_TOP_K
        validate_top_k(top_k)
        if rerank_mode not in search_pb2.Rerank.values():
            raise InvalidArgument(f"unknown rerank mode {rerank_mode}")
        do_rerank = rerank_mode == search_pb2.RERANK_ON or (
            rerank_mode == search_pb2.RERANK_DEFAULT and index is IndexKind.LSH
        )
        query = self.encode([image])[0]
        fetch = min(MAX_TOP_K, top_k * self._settings.rerank_factor) if do_rerank else top_k
        with self._metrics.stage("index_search"):
            response = self._index.Search(
                index_pb2.SearchVectorRequest(
                    collection=self.collection,
                    vector=query.tolist(),
                    top_k=fetch,
                    index=index.to_proto(),
                    filter=metadata_filter,
                    with_vectors=do_rerank,
                ),
                timeout=self._timeout,
            )
        if do_rerank:
            with self._metrics.stage("rerank"):
                hits = rerank(query, response.hits, top_k)
        else:
            hits = [RankedHit(h.id, h.score, h.metadata) for h in response.hits]
        return SearchResult(hits, do_rerank, int(response.candidates_scored))

    def delete(self, ids: Sequence[str]) -> int:
        validate_ids(ids)
        response = self._index.Delete(
            index_pb2.DeleteRequest(collection=self.collection, ids=ids), timeout=self._timeout
        )
        return int(response.deleted)

    def stats(self) -> index_pb2.CollectionInfo:
        return self._index.GetCollectionInfo(
            index_pb2.GetCollectionInfoRequest(collection=self.collection), timeout=self._timeout
        )

    def close(self) -> None:
        for channel in self._channels:
            channel.close()


def _batches(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
