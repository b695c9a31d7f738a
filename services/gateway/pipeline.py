"""Search pipeline: encode (encoder service) -> search (index service) -> rerank (here)."""

import contextlib
import contextvars
import itertools
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from imsearch.core.deadline import current_deadline
from imsearch.core.errors import (
    AlreadyExists,
    FailedPrecondition,
    ImsearchError,
    InvalidArgument,
    TooLarge,
)
from imsearch.core.metrics import ServiceMetrics
from imsearch.core.validation import (
    validate_id,
    validate_ids,
    validate_name,
)
from imsearch.v1 import encoder_pb2, encoder_pb2_grpc, index_pb2, index_pb2_grpc, search_pb2
from services.gateway.collections import Binding, CollectionBindings
from services.gateway.duplicates import screen, threshold_of
from services.gateway.queries import QueryPlan, SearchResult, plan_query, ranked_hits, vector_request
from services.gateway.settings import GatewaySettings

log = logging.getLogger(__name__)

MAX_BATCH_QUERIES = 64
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
        self._cause_trailers = cause.trailing_metadata() if isinstance(cause, ImsearchError) else ()

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        return ((STORED_ITEMS_KEY, str(self.stored)), *self._cause_trailers)


T = TypeVar("T")


@dataclass
class AddOutcome:
    stored: int
    duplicates: list[search_pb2.Duplicate]
    already_stored: int = 0  # items left out by skip_existing

    def extend(self, more: "AddOutcome") -> None:
        self.stored += more.stored
        self.duplicates.extend(more.duplicates)
        self.already_stored += more.already_stored


@dataclass
class PreparedAdd:
    """The part of adding a batch that writes nothing, done ahead (add_stream encodes the next
    batch while the index stores this one): the binding it was done for, the ids already
    stored, and the embeddings and thumbnails of the other items, in order."""

    binding: Binding
    already_stored: set[str]
    vectors: np.ndarray | None
    thumbnails: list[bytes]


@dataclass
class _PendingBatch:
    items: list[search_pb2.AddImageRequest]
    first_position: int
    collection: str
    prepared: "Future[PreparedAdd]"


# What the index answers when this gateway's binding of a collection is stale.
_STALE_BINDING = frozenset({grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION})


def status_of(exc: grpc.RpcError | ImsearchError) -> grpc.StatusCode:
    return exc.code if isinstance(exc, ImsearchError) else exc.code()


def _naming(position: int, action: Callable[[], T]) -> T:
    """Runs one query's step of a batch; its error, if any, says which query it was."""
    try:
        return action()
    except grpc.RpcError as exc:
        named = ImsearchError(f"query {position}: {exc.details()}")
        named.code = exc.code()
        raise named from None
    except ImsearchError as exc:
        exc.args = (f"query {position}: {exc}",)
        raise


def _naming_the_query(
    error: grpc.RpcError, start: int, bounds: list[int], members: list[int]
) -> ImsearchError | grpc.RpcError:
    """The encoder's "image K: ..." (K in one call of a batch) as "query Q, image k: ..."."""
    found = re.match(r"image (\d+): (.*)", error.details() or "", re.DOTALL)
    if not found:
        return error
    position = start + int(found.group(1))
    member = next(m for m in range(len(members)) if bounds[m] <= position < bounds[m + 1])
    named = ImsearchError(f"query {members[member]}, image {position - bounds[member]}: {found.group(2)}")
    named.code = error.code()
    return named


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

    def encode(self, images: list[bytes], model: str, regions: Sequence[encoder_pb2.Box] = ()) -> np.ndarray:
        return self._encode_images(encoder_pb2.EncodeRequest(model=model, images=images, regions=regions))[0]

    def _encode_images(self, request: encoder_pb2.EncodeRequest) -> tuple[np.ndarray, list[bytes]]:
        """Embeddings, and thumbnails when the request asks for them."""
        with self._metrics.stage("encode"):
            try:
                response = self._encoder.Encode(request, timeout=self._hop_timeout("encoding"))
            except grpc.RpcError as exc:
                if exc.code() == grpc.StatusCode.NOT_FOUND:  # the encoder no longer serves it
                    raise FailedPrecondition(
                        exc.details() or f"model {request.model!r} is not served"
                    ) from None
                raise
        vectors = np.asarray([e.values for e in response.embeddings], dtype=np.float32)
        return vectors, list(response.thumbnails)

    def encode_texts(self, texts: list[str], model: str) -> np.ndarray:
        with self._metrics.stage("encode_text"):
            response = self._encoder.Encode(
                encoder_pb2.EncodeRequest(model=model, texts=texts),
                timeout=self._hop_timeout("encoding text"),
            )
        return np.asarray([e.values for e in response.embeddings], dtype=np.float32)

    def _check_item(self, item: search_pb2.AddImageRequest) -> None:
        validate_id(item.id)
        if len(item.image) > self._settings.max_image_bytes:
            raise TooLarge(
                f"image is {len(item.image)} bytes, over the {self._settings.max_image_bytes}-byte limit"
            )

    def prepare_add(self, items: Sequence[search_pb2.AddImageRequest], collection: str = "") -> PreparedAdd:
        """What `add` reads and encodes before it writes (see PreparedAdd)."""
        return self._prepare(self.collections.resolve(collection), items)

    def _prepare(self, binding: Binding, items: Sequence[search_pb2.AddImageRequest]) -> PreparedAdd:
        stored = self._already_stored(binding, [item.id for item in items if item.skip_existing])
        new = [item for item in items if item.id not in stored]
        if not new:
            return PreparedAdd(binding, stored, None, [])
        request = encoder_pb2.EncodeRequest(
            model=binding.model,
            images=[item.image for item in new],
            thumbnail_size=self._settings.thumbnail_size,
        )
        vectors, thumbnails = self._encode_images(request)
        return PreparedAdd(binding, stored, vectors, thumbnails)

    def add(
        self,
        items: Sequence[search_pb2.AddImageRequest],
        collection: str = "",
        prepared: PreparedAdd | None = None,
    ) -> AddOutcome:
        """Adds the items; `prepared` (from `prepare_add` on the same items) saves the encoding
        when the collection's binding has not changed since."""
        for item in items:
            self._check_item(item)
            threshold_of(item)  # a bad duplicate policy fails before any encoding

        def store(binding: Binding) -> AddOutcome:
            fresh = prepared is not None and prepared.binding == binding
            ready = prepared if fresh and prepared is not None else self._prepare(binding, items)
            new = [item for item in items if item.id not in ready.already_stored]
            if ready.vectors is None:
                return AddOutcome(0, [], len(items))
            outcome = store_new(binding, new, ready.vectors, ready.thumbnails)
            outcome.already_stored = len(items) - len(new)
            return outcome

        def store_new(
            binding: Binding,
            items: Sequence[search_pb2.AddImageRequest],
            vectors: np.ndarray,
            thumbnails: list[bytes],
        ) -> AddOutcome:
            keep, duplicates = screen(items, vectors, partial(self._nearest_stored, binding))
            points = [
                index_pb2.Point(
                    id=item.id, vector=vector.tolist(), metadata=item.metadata, thumbnail=thumbnail
                )
                for item, vector, thumbnail, kept in zip(
                    items, vectors, thumbnails or [b""] * len(items), keep, strict=True
                )
                if kept
            ]
            if not points:
                return AddOutcome(0, duplicates)
            with self._metrics.stage("index_upsert"):
                response = self._index.Upsert(
                    index_pb2.UpsertRequest(
                        collection=binding.collection, points=points, model=binding.model
                    ),
                    timeout=self._hop_timeout("storing"),
                )
            return AddOutcome(int(response.upserted), duplicates)

        return self._bound(collection, store)

    def _already_stored(self, binding: Binding, ids: list[str]) -> set[str]:
        if not ids:
            return set()
        with self._metrics.stage("skip_existing"):
            response = self._index.GetVectors(
                index_pb2.GetVectorsRequest(collection=binding.collection, ids=ids, ids_only=True),
                timeout=self._hop_timeout("checking which images are stored"),
            )
        return {point.id for point in response.points}

    def _nearest_stored(
        self, binding: Binding, vector: np.ndarray, min_score: float, leave_out: str
    ) -> tuple[str, float] | None:
        with self._metrics.stage("duplicate_check"):
            response = self._index.Search(
                index_pb2.SearchVectorRequest(
                    collection=binding.collection,
                    vector=vector.tolist(),
                    top_k=2,
                    min_score=min_score,
                    model=binding.model,
                ),
                timeout=self._hop_timeout("checking for duplicates"),
            )
        hit = next((h for h in response.hits if h.id != leave_out), None)
        return None if hit is None else (hit.id, float(hit.score))

    def add_stream(self, requests: Iterable[search_pb2.AddImageRequest]) -> AddOutcome:
        """Adds a stream in batches (at most `add_batch` items and `add_batch_bytes` of images).

        The contract: on the first bad item the stream fails with BulkAddFailed, every item
        before it stored (or skipped as a duplicate) and none after; its message names the item
        by stream position and id. Every item goes to the collection the first one names.
        Each full batch is encoded on a second thread while the one before it is stored (and
        checked for duplicates against what is stored), so encoder and index work at once;
        batches are stored in stream order.
        """
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="add-prefetch") as prefetch:
            return self._add_stream(requests, prefetch)

    def _add_stream(
        self, requests: Iterable[search_pb2.AddImageRequest], prefetch: ThreadPoolExecutor
    ) -> AddOutcome:
        done = AddOutcome(0, [])
        processed = 0
        seen: set[str] = set()
        batch: list[search_pb2.AddImageRequest] = []
        batch_bytes = 0
        collection: str | None = None
        pending: _PendingBatch | None = None  # encoding ahead, stored next

        def hand_over(next_batch: _PendingBatch | None) -> None:
            """Stores the pending batch (while `next_batch` encodes) and queues `next_batch`."""
            nonlocal pending
            previous, pending = pending, next_batch
            if previous is not None:
                done.extend(
                    self._add_batch(
                        previous.items, previous.first_position, previous.collection, previous.prepared
                    )
                )

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
                threshold_of(item)
                if item.id in seen:
                    raise InvalidArgument(f"id {item.id!r} appears twice in the stream")
            except (ImsearchError, grpc.RpcError) as exc:
                hand_over(None)  # the good items before it stay
                done.extend(self._add_batch(batch, processed, collection or ""))
                raise BulkAddFailed(exc, position, item_id) from None
            seen.add(item.id)
            if batch and (
                len(batch) == self._settings.add_batch
                or batch_bytes + len(item.image) > self._settings.add_batch_bytes
            ):
                if self._settings.add_pipeline:
                    hand_over(self._prefetch(prefetch, batch, processed, collection))
                else:
                    done.extend(self._add_batch(batch, processed, collection))
                processed += len(batch)
                batch, batch_bytes = [], 0
            batch.append(item)
            batch_bytes += len(item.image)
        hand_over(None)
        done.extend(self._add_batch(batch, processed, collection or ""))
        return done

    def _prefetch(
        self,
        prefetch: ThreadPoolExecutor,
        batch: list[search_pb2.AddImageRequest],
        first_position: int,
        collection: str,
    ) -> "_PendingBatch":
        # The caller's deadline (a context variable) goes along to the other thread.
        future = prefetch.submit(contextvars.copy_context().run, self.prepare_add, batch, collection)
        return _PendingBatch(batch, first_position, collection, future)

    def _add_batch(
        self,
        batch: list[search_pb2.AddImageRequest],
        first_position: int,
        collection: str,
        prepared: "Future[PreparedAdd] | None" = None,
    ) -> AddOutcome:
        """Adds a batch whose first item is the stream's `first_position`th. If one item of it
        is bad (INVALID_ARGUMENT), the items before that one are added singly, then it fails.
        A failed `prepared` is not an answer: the batch is then added from scratch, which meets
        the same error again and finds the item."""
        if not batch:
            return AddOutcome(0, [])
        ready = None
        if prepared is not None:
            with contextlib.suppress(grpc.RpcError, ImsearchError):
                ready = prepared.result()
        try:
            return self.add(batch, collection, ready)
        except (grpc.RpcError, ImsearchError) as exc:
            if status_of(exc) != grpc.StatusCode.INVALID_ARGUMENT or len(batch) == 1:
                raise BulkAddFailed(exc, first_position, batch[0].id) from None
        done = AddOutcome(0, [])
        for offset, item in enumerate(batch):  # find the bad one
            try:
                done.extend(self.add([item], collection))
            except (grpc.RpcError, ImsearchError) as exc:
                raise BulkAddFailed(exc, first_position + offset, item.id) from None
        return done  # none failed alone (the batch's error was not about one item)

    def search(self, request: search_pb2.SearchRequest) -> SearchResult:
        """A search with one image, or by examples (stored ids and images, positive and
        negative). Rerank, when on, rescores a single image's candidates here."""
        return self._run(plan_query(request), encoded=None)

    def search_batch(self, requests: Sequence[search_pb2.SearchRequest]) -> list[SearchResult]:
        """Many searches in one call: the images of all queries that use one model go to the
        encoder together (in calls of up to `max_batch_images`); then one index search each."""
        if not 1 <= len(requests) <= MAX_BATCH_QUERIES:
            raise InvalidArgument(f"a batch holds 1 to {MAX_BATCH_QUERIES} queries, got {len(requests)}")
        plans = []
        for position, request in enumerate(requests):
            try:
                plans.append(plan_query(request))
            except ImsearchError as exc:
                raise type(exc)(f"query {position}: {exc}") from None
        bindings = [
            _naming(position, partial(self.collections.resolve, plan.request.collection))
            for position, plan in enumerate(plans)
        ]
        encoded: list[tuple[str, np.ndarray] | None] = [None] * len(plans)
        for model in dict.fromkeys(b.model for b in bindings):
            members = [i for i, b in enumerate(bindings) if b.model == model and plans[i].images]
            if not members:
                continue
            for i, vectors in zip(members, self._encode_together(plans, members, model), strict=True):
                encoded[i] = (model, vectors)
        return [_naming(i, partial(self._run, plan, encoded[i])) for i, plan in enumerate(plans)]

    def _encode_together(self, every: list[QueryPlan], members: list[int], model: str) -> list[np.ndarray]:
        """The images of the member plans in as few encode calls as the limits allow; one
        (n_images, dim) array per member, in order. A bad image's error names its query."""
        plans = [every[i] for i in members]
        images = [image for plan in plans for image in plan.images]
        any_region = any(plan.regions for plan in plans)
        regions = (
            [region for plan in plans for region in (plan.regions or [encoder_pb2.Box()] * len(plan.images))]
            if any_region
            else []
        )
        bounds = [int(b) for b in np.cumsum([0, *(len(plan.images) for plan in plans)])]
        chunk = self._settings.max_batch_images
        parts = []
        for start in range(0, len(images), chunk):
            try:
                parts.append(
                    self.encode(images[start : start + chunk], model, regions[start : start + chunk])
                )
            except grpc.RpcError as exc:
                raise _naming_the_query(exc, start, bounds, members) from None
        vectors = np.concatenate(parts)
        return [vectors[bounds[i] : bounds[i + 1]] for i in range(len(plans))]

    def _run(self, plan: QueryPlan, encoded: tuple[str, np.ndarray] | None) -> SearchResult:
        """One plan against the index; `encoded`: its images already encoded, with that model."""

        def run(binding: Binding) -> SearchResult:
            if plan.text:
                vectors: np.ndarray | None = self.encode_texts(
                    [plan.text], self.collections.text_model_for(binding.model)
                )
            elif encoded is not None and encoded[0] == binding.model:
                vectors = encoded[1]
            else:  # not encoded yet, or with a model the collection is no longer bound to
                vectors = self.encode(plan.images, binding.model, plan.regions) if plan.images else None
            query = vector_request(plan, binding, vectors, self._settings.rerank_factor)
            with self._metrics.stage("index_search"):
                response = self._index.Search(query, timeout=self._hop_timeout("searching"))
            with self._metrics.stage("rerank") if plan.rerank else contextlib.nullcontext():
                hits = ranked_hits(plan, response, vectors)
            return SearchResult(hits, plan.rerank, int(response.candidates_scored), binding)

        return self._bound(plan.request.collection, run)

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

    def find_duplicates(self, request: index_pb2.FindDuplicatesRequest) -> index_pb2.FindDuplicatesResponse:
        binding = self.collections.resolve(request.collection)
        forwarded = index_pb2.FindDuplicatesRequest()
        forwarded.CopyFrom(request)
        forwarded.collection = binding.collection
        response: index_pb2.FindDuplicatesResponse = self._index.FindDuplicates(
            forwarded,
            timeout=self._hop_timeout("finding duplicates", cap=3600.0),  # a whole scan
        )
        return response

    # -- collections ------------------------------------------------------------------------

    def create_collection(
        self, collection: str, model: str, params: index_pb2.IndexParams | None = None
    ) -> index_pb2.CollectionInfo:
        validate_name("collection", collection)
        try:
            self.collections.describe(collection)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise
        else:
            raise AlreadyExists(f"collection {collection!r} exists; drop it first to make it anew")
        return self.collections.create(collection, model, params)

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
