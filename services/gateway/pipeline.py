"""Search pipeline: encode (encoder service) -> search (index service) -> rerank (here)."""

import itertools
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import grpc
import numpy as np
from google.protobuf import struct_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from imsearch.core.deadline import current_deadline
from imsearch.core.errors import (
    AlreadyExists,
    FailedPrecondition,
    ImsearchError,
    InvalidArgument,
    ResourceExhausted,
)
from imsearch.core.index_kind import IndexKind
from imsearch.core.metrics import ServiceMetrics
from imsearch.core.validation import (
    MAX_EXAMPLES,
    MAX_TOP_K,
    validate_id,
    validate_ids,
    validate_name,
    validate_page,
)
from imsearch.v1 import encoder_pb2, encoder_pb2_grpc, index_pb2, index_pb2_grpc, search_pb2
from services.gateway.collections import Binding, CollectionBindings
from services.gateway.settings import GatewaySettings

log = logging.getLogger(__name__)

DEFAULT_TOP_K = 10
# Trailing metadata on a failed bulk add: how many of the stream's first items are stored.
STORED_ITEMS_KEY = "imsearch-items-stored"


class BulkAddFailed(ImsearchError):
    """A bulk add stopped at `position`; the stream's items before it are stored, none after."""

    def __init__(self, cause: ImsearchError | grpc.RpcError, position: int, item_id: str) -> None:
        if isinstance(cause, ImsearchError):
            self.code, detail = cause.code, str(cause)
        else:
            self.code, detail = cause.code(), cause.details() or ""
        detail = re.sub(r"^image \d+: ", "", detail)  # the position inside one encode call
        before = f"items 0-{position - 1} were stored" if position else "no item was stored"
        named = f"item {position} (id {item_id!r})" if item_id else f"item {position}"
        super().__init__(f"{named}: {detail}; {before}, none after")
        self.stored = position

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        return ((STORED_ITEMS_KEY, str(self.stored)),)


@dataclass
class RankedHit:
    id: str
    score: float
    metadata: struct_pb2.Struct
    vector: list[float]  # empty unless the search asked for vectors


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
    return [RankedHit(hits[i].id, float(scores[i]), hits[i].metadata, list(hits[i].vector)) for i in order]


T = TypeVar("T")
# What the index answers when this gateway's binding of a collection is stale.
_STALE_BINDING = frozenset({grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION})


def status_of(exc: grpc.RpcError | ImsearchError) -> grpc.StatusCode:
    return exc.code if isinstance(exc, ImsearchError) else exc.code()


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
        model = settings.model or next((m.name for m in models if m.is_default), "")
        self.collections = CollectionBindings(
            self._encoder, self._index, model, settings.collection or model, self._hop_timeout
        )
        self.collections.resolve("")  # the default collection exists from the start

    def _hop_timeout(self, before: str, cap: float | None = None) -> float:
        """The caller's time left for the next downstream call (at most rpc_timeout_s); raises
        DEADLINE_EXCEEDED or CANCELLED instead if the caller has gone."""
        deadline = current_deadline()
        deadline.check(before)
        return deadline.hop_timeout(cap or self._timeout)

    def _bound(self, collection: str, action: Callable[[Binding], T]) -> T:
        """Runs `action` with the collection's binding; if the index refuses it as stale (the
        collection dropped, or made again with another model), once more with a fresh one."""
        binding = self.collections.resolve(collection)
        try:
            return action(binding)
        except grpc.RpcError as exc:
            if exc.code() not in _STALE_BINDING:
                raise
            self.collections.forget(binding.collection)
            fresh = self.collections.resolve(collection)  # NOT_FOUND if it is gone
            if fresh == binding:
                raise
            return action(fresh)

    def encode(self, images: list[bytes], model: str) -> np.ndarray:
        with self._metrics.stage("encode"):
            try:
                response = self._encoder.Encode(
                    encoder_pb2.EncodeRequest(model=model, images=images),
                    timeout=self._hop_timeout("encoding"),
                )
            except grpc.RpcError as exc:
                if exc.code() == grpc.StatusCode.NOT_FOUND:  # the encoder no longer serves it
                    raise FailedPrecondition(exc.details() or f"model {model!r} is not served") from None
                raise
        return np.asarray([e.values for e in response.embeddings], dtype=np.float32)

    def _check_item(self, item: search_pb2.AddImageRequest) -> None:
        validate_id(item.id)
        if len(item.image) > self._settings.max_image_bytes:
            raise ResourceExhausted(
                f"image is {len(item.image)} bytes, over the {self._settings.max_image_bytes}-byte limit"
            )

    def add(self, items: Sequence[search_pb2.AddImageRequest], collection: str = "") -> int:
        for item in items:
            self._check_item(item)

        def store(binding: Binding) -> int:
            vectors = self.encode([item.image for item in items], binding.model)
            points = [
                index_pb2.Point(id=item.id, vector=vector.tolist(), metadata=item.metadata)
                for item, vector in zip(items, vectors, strict=True)
            ]
            with self._metrics.stage("index_upsert"):
                response = self._index.Upsert(
                    index_pb2.UpsertRequest(
                        collection=binding.collection, points=points, model=binding.model
                    ),
                    timeout=self._hop_timeout("storing"),
                )
            return int(response.upserted)

        return self._bound(collection, store)

    def add_stream(self, requests: Iterable[search_pb2.AddImageRequest]) -> int:
        """Adds a stream in batches (at most `add_batch` items and `add_batch_bytes` of images).

        The contract: on the first bad item the stream fails with BulkAddFailed, every item
        before it stored and none after; its message names the item by stream position and id.
        Every item goes to the collection the first one names.
        """
        stored = 0
        seen: set[str] = set()
        batch: list[search_pb2.AddImageRequest] = []
        batch_bytes = 0
        collection: str | None = None
        items = iter(requests)
        for position in itertools.count():
            item_id = ""
            try:
                item = next(items, None)  # may raise: the stream idled out or broke
                if item is None:
                    break
                item_id = item.id
                if collection is None:
                    collection = item.collection
                    self.collections.resolve(collection)  # an unknown one fails at item 0
                elif item.collection != collection:
                    raise InvalidArgument(
                        f"collection {item.collection!r} differs from the stream's {collection!r}; "
                        "one stream adds to one collection"
                    )
                self._check_item(item)
                if item.id in seen:
                    raise InvalidArgument(f"id {item.id!r} appears twice in the stream")
            except (ImsearchError, grpc.RpcError) as exc:
                stored += self._add_batch(batch, stored, collection or "")  # the good items before it stay
                raise BulkAddFailed(exc, position, item_id) from None
            seen.add(item.id)
            if batch and (
                len(batch) == self._settings.add_batch
                or batch_bytes + len(item.image) > self._settings.add_batch_bytes
            ):
                stored += self._add_batch(batch, stored, collection)
                batch, batch_bytes = [], 0
            batch.append(item)
            batch_bytes += len(item.image)
        return stored + self._add_batch(batch, stored, collection or "")

    def _add_batch(
        self, batch: list[search_pb2.AddImageRequest], first_position: int, collection: str
    ) -> int:
        """Adds a batch whose first item is the stream's `first_position`th. If one item of it
        is bad (INVALID_ARGUMENT), the items before that one are added singly, then it fails."""
        if not batch:
            return 0
        try:
            return self.add(batch, collection)
        except (grpc.RpcError, ImsearchError) as exc:
            if status_of(exc) != grpc.StatusCode.INVALID_ARGUMENT or len(batch) == 1:
                raise BulkAddFailed(exc, first_position, batch[0].id) from None
        for offset, item in enumerate(batch):  # find the bad one
            try:
                self.add([item], collection)
            except (grpc.RpcError, ImsearchError) as exc:
                raise BulkAddFailed(exc, first_position + offset, item.id) from None
        return len(batch)  # none failed alone (the batch's error was not about one item)

    def search(self, request: search_pb2.SearchRequest) -> SearchResult:
        """A search with one image, or by examples (stored ids and images, positive and
        negative). Rerank, when on, rescores a single image's candidates here."""
        top_k = request.top_k or DEFAULT_TOP_K
        index = IndexKind.from_proto(request.index)
        min_score = request.min_score if request.HasField("min_score") else None
        validate_page(top_k, request.offset, min_score)
        if request.rerank not in search_pb2.Rerank.values():
            raise InvalidArgument(f"unknown rerank mode {request.rerank}")
        positives = [*([request.image] if request.image else []), *request.positive_images]
        negatives = list(request.negative_images)
        by_example = bool(
            request.positive_ids or request.negative_ids or request.positive_images or negatives
        )
        if not (by_example or request.image):
            raise InvalidArgument("give an image to search with, or examples (positive_ids, positive_images)")
        counts = (len(positives) + len(request.positive_ids), len(negatives) + len(request.negative_ids))
        if max(counts) > MAX_EXAMPLES:  # before encoding any of them
            raise InvalidArgument(
                f"at most {MAX_EXAMPLES} positive and {MAX_EXAMPLES} negative examples, "
                f"got {counts[0]} and {counts[1]}"
            )
        do_rerank = not by_example and (
            request.rerank == search_pb2.RERANK_ON
            or (request.rerank == search_pb2.RERANK_DEFAULT and index is IndexKind.LSH)
        )
        wanted = top_k + request.offset

        def run(binding: Binding) -> SearchResult:
            vectors = self.encode([*positives, *negatives], binding.model) if positives or negatives else None
            query = index_pb2.SearchVectorRequest(
                collection=binding.collection,
                index=index.to_proto(),
                filter=request.filter,
                model=binding.model,
                with_vectors=do_rerank or request.with_vectors,
            )
            if by_example:
                found = [] if vectors is None else [index_pb2.Vector(values=v.tolist()) for v in vectors]
                query.positive_ids.extend(request.positive_ids)
                query.negative_ids.extend(request.negative_ids)
                query.positive_vectors.extend(found[: len(positives)])
                query.negative_vectors.extend(found[len(positives) :])
                query.strategy = request.strategy
            else:
                assert vectors is not None
                query.vector.extend(vectors[0].tolist())
            if do_rerank:  # page after rescoring: fetch from the top
                query.top_k = min(MAX_TOP_K, wanted * self._settings.rerank_factor)
            else:
                query.top_k, query.offset = top_k, request.offset
                if min_score is not None:
                    query.min_score = min_score
            with self._metrics.stage("index_search"):
                response = self._index.Search(query, timeout=self._hop_timeout("searching"))
            if do_rerank:
                assert vectors is not None
                with self._metrics.stage("rerank"):
                    hits = rerank(vectors[0], response.hits, wanted)[request.offset :]
                if min_score is not None:
                    hits = [h for h in hits if h.score >= min_score]
            else:
                hits = [RankedHit(h.id, h.score, h.metadata, list(h.vector)) for h in response.hits]
            return SearchResult(hits, do_rerank, int(response.candidates_scored), binding)

        return self._bound(request.collection, run)

    def delete(self, ids: Sequence[str], collection: str = "") -> int:
        validate_ids(ids)
        binding = self.collections.resolve(collection)
        response = self._index.Delete(
            index_pb2.DeleteRequest(collection=binding.collection, ids=ids),
            timeout=self._hop_timeout("deleting"),
        )
        return int(response.deleted)

    def stats(self, collection: str = "") -> tuple[Binding, index_pb2.CollectionInfo]:
        binding = self.collections.resolve(collection)
        return binding, self.collections.describe(binding.collection)

    def verify(self, repair: bool, collection: str = "") -> index_pb2.VerifyResponse:
        response: index_pb2.VerifyResponse = self._index.Verify(
            index_pb2.VerifyRequest(
                collection=self.collections.resolve(collection).collection, repair=repair
            ),
            timeout=self._hop_timeout("verifying", cap=3600.0),  # reads every point: may be long
        )
        return response

    # -- collections ------------------------------------------------------------------------

    def create_collection(self, collection: str, model: str) -> index_pb2.CollectionInfo:
        validate_name("collection", collection)
        try:
            self.collections.describe(collection)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise
        else:
            raise AlreadyExists(f"collection {collection!r} exists; drop it first to make it anew")
        return self.collections.create(collection, model)

    def list_collections(self) -> list[index_pb2.CollectionInfo]:
        response = self._index.ListCollections(
            index_pb2.ListCollectionsRequest(), timeout=self._hop_timeout("listing collections")
        )
        default = self.collections.default_collection
        for info in response.collections:
            if info.collection == default and not info.model:
                info.model = self.collections.default_model
        return list(response.collections)

    def drop_collection(self, collection: str) -> bool:
        validate_name("collection", collection)
        response = self._index.DropCollection(
            index_pb2.DropCollectionRequest(collection=collection), timeout=self._hop_timeout("dropping")
        )
        self.collections.forget(collection)
        return bool(response.dropped)

    def health_problem(self) -> str | None:
        """SERVING only while the encoder and the index both say SERVING."""
        for name, channel in zip(("encoder", "index"), self._channels, strict=True):
            try:
                status = (
                    health_pb2_grpc.HealthStub(channel)
                    .Check(health_pb2.HealthCheckRequest(), timeout=2)
                    .status
                )
            except grpc.RpcError as exc:
                return f"{name} unreachable: {exc.code().name}"
            if status != health_pb2.HealthCheckResponse.SERVING:
                return f"{name} is not serving"
        return None

    def close(self) -> None:
        for channel in self._channels:
            channel.close()
