"""Qdrant server through qdrant-client: the production store (one Qdrant collection per ours).

Constructed with a URL for a Qdrant server; `location=":memory:"` runs qdrant-client's local
mode, which the congruence tests use to check this adapter against the embedded one.
"""

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import tenacity
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from imsearch.core.errors import NotFound, Unavailable
from services.index.stores.base import (
    INT8,
    OVERSAMPLING,
    CollectionSpec,
    MetadataFilter,
    ScoredPoint,
    StoredPoint,
)
from services.index.stores.qdrant_payload import (
    MATCH_KEY,
    SEARCH_PAYLOAD,
    Lowered,
    in_request_order,
    lower,
    payload_for,
    point_uuid,
    scored_point,
    stored_point,
)

MODEL_KEY = "imsearch_model"
_TRANSIENT_HTTP = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Distribution:
    """How a new collection is spread over a Qdrant cluster; 0 leaves it to the server."""

    shards: int = 0
    replication_factor: int = 0
    write_consistency: int = 0

    def create_arguments(self) -> dict[str, int]:
        given = {
            "shard_number": self.shards,
            "replication_factor": self.replication_factor,
            "write_consistency_factor": self.write_consistency,
        }
        return {name: value for name, value in given.items() if value}


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 3  # after the first attempt
    backoff_s: float = 0.2  # doubling from this, capped at 2 s


# Calls that may run twice with the same effect (upserts and deletes by id, reads): retried.
# Creating and dropping collections are not: a repeat after a timeout would fail or undo.
_IDEMPOTENT = frozenset(
    {"get_collections", "get_collection", "collection_exists", "retrieve", "query_points", "count",
     "scroll", "upsert", "delete", "create_payload_index"}
)  # fmt: skip


class _TransientAsUnavailable:
    """The client with its transient failures (no connection, timeouts, 429 and 5xx answers)
    raised as Unavailable, which callers may retry, instead of surfacing as INTERNAL; the
    idempotent calls are first retried here, with exponential backoff (tenacity)."""

    def __init__(self, client: QdrantClient, retry: RetryPolicy) -> None:
        self._client = client
        self._retry = retry

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute

        def once(*args: Any, **kwargs: Any) -> Any:
            try:
                return attribute(*args, **kwargs)
            except ResponseHandlingException as exc:
                raise Unavailable(f"qdrant unreachable: {exc}") from None
            except UnexpectedResponse as exc:
                if exc.status_code in _TRANSIENT_HTTP:
                    raise Unavailable(f"qdrant answered {exc.status_code}: {exc.reason_phrase}") from None
                raise

        if name not in _IDEMPOTENT or not self._retry.retries:
            return once
        retrying = tenacity.retry(
            retry=tenacity.retry_if_exception_type(Unavailable),
            stop=tenacity.stop_after_attempt(1 + self._retry.retries),
            wait=tenacity.wait_exponential(multiplier=self._retry.backoff_s, max=2.0),
            reraise=True,
        )
        wrapped: Callable[..., Any] = retrying(once)
        return wrapped


def _client_condition(lowered: Lowered) -> models.FieldCondition:
    if lowered.range is not None:
        bounds = lowered.range
        return models.FieldCondition(
            key=lowered.key, range=models.Range(gte=bounds.gte, gt=bounds.gt, lte=bounds.lte, lt=bounds.lt)
        )
    if len(lowered.tokens) == 1:
        return models.FieldCondition(key=lowered.key, match=models.MatchValue(value=lowered.tokens[0]))
    return models.FieldCondition(key=lowered.key, match=models.MatchAny(any=list(lowered.tokens)))


def _client_filter(metadata_filter: MetadataFilter | None) -> models.Filter | None:
    if not metadata_filter:
        return None
    lowered = lower(metadata_filter)
    return models.Filter(
        must=[_client_condition(c) for c in lowered.must] or None,
        should=[_client_condition(c) for c in lowered.should] or None,
        must_not=[_client_condition(c) for c in lowered.must_not] or None,
    )


class QdrantServerStore:
    def __init__(
        self,
        url: str | None = None,
        location: str | None = None,
        api_key: str | None = None,
        hnsw_m: int = 16,
        hnsw_ef_construct: int = 128,
        hnsw_ef: int = 128,
        distribution: Distribution = Distribution(),
        retry: RetryPolicy = RetryPolicy(),
    ) -> None:
        if api_key is not None and url is not None and not url.startswith("https://"):
            # qdrant-client would send the key in clear text (it only warns).
            raise ValueError("a Qdrant API key is sent only over https: use an https:// qdrant_url")
        self._client = _TransientAsUnavailable(
            QdrantClient(url=url, location=location, api_key=api_key), retry
        )
        self._distribution = distribution
        self._hnsw = models.HnswConfigDiff(m=hnsw_m, ef_construct=hnsw_ef_construct)
        self._hnsw_ef = hnsw_ef

    def collections(self) -> dict[str, CollectionSpec]:
        specs = {}
        for c in self._client.get_collections().collections:
            spec = _spec_of(self._client.get_collection(c.name).config)
            if spec is not None:
                specs[c.name] = spec
        return specs

    def collection_spec(self, name: str) -> CollectionSpec | None:
        if not self._client.collection_exists(name):
            return None
        return _spec_of(self._client.get_collection(name).config)

    def create_collection(self, name: str, spec: CollectionSpec) -> None:
        if self._client.collection_exists(name):
            return
        self._client.create_collection(
            name,
            vectors_config=models.VectorParams(size=spec.dim, distance=models.Distance.COSINE),
            hnsw_config=models.HnswConfigDiff(
                m=spec.hnsw_m or self._hnsw.m, ef_construct=spec.hnsw_ef_construct or self._hnsw.ef_construct
            ),
            quantization_config=(
                models.ScalarQuantization(
                    scalar=models.ScalarQuantizationConfig(
                        type=models.ScalarType.INT8, quantile=0.99, always_ram=True
                    )
                )
                if spec.quantization == INT8
                else None
            ),
            # Qdrant's collection metadata (1.16+): what the index records of the collection.
            metadata={
                MODEL_KEY: spec.model,
                "hnsw_m": spec.hnsw_m,
                "hnsw_ef_construct": spec.hnsw_ef_construct,
                "quantization": spec.quantization,
            },
            **self._distribution.create_arguments(),
        )
        # Every equals / any_of condition matches this keyword field: index it.
        self._client.create_payload_index(name, MATCH_KEY, models.PayloadSchemaType.KEYWORD)

    def drop_collection(self, name: str) -> bool:
        return bool(self._client.collection_exists(name) and self._client.delete_collection(name))

    def _require(self, collection: str) -> None:
        if not self._client.collection_exists(collection):
            raise NotFound(f"collection {collection!r} does not exist")

    def upsert(self, collection: str, points: Sequence[StoredPoint]) -> None:
        self._client.upsert(
            collection,
            points=[
                models.PointStruct(
                    id=point_uuid(p.id),
                    vector=p.vector.tolist(),
                    payload=payload_for(p),
                )
                for p in points
            ],
            wait=True,
        )

    def delete(self, collection: str, ids: Sequence[str]) -> None:
        self._client.delete(
            collection,
            points_selector=models.PointIdsList(points=[point_uuid(i) for i in ids]),
            wait=True,
        )

    def retrieve(self, collection: str, ids: Sequence[str], with_vectors: bool = True) -> list[StoredPoint]:
        records = self._client.retrieve(
            collection, [point_uuid(i) for i in ids], with_payload=True, with_vectors=with_vectors
        )
        return in_request_order(records, ids)

    def search(
        self,
        collection: str,
        vector: np.ndarray,
        top_k: int,
        metadata_filter: MetadataFilter | None,
        exact: bool,
        with_vectors: bool,
    ) -> list[ScoredPoint]:
        response = self._client.query_points(
            collection,
            query=vector.tolist(),
            limit=top_k,
            query_filter=_client_filter(metadata_filter),
            search_params=models.SearchParams(
                hnsw_ef=self._hnsw_ef,
                exact=exact,
                quantization=models.QuantizationSearchParams(
                    ignore=exact, rescore=True, oversampling=OVERSAMPLING
                ),
            ),
            with_payload=SEARCH_PAYLOAD,
            with_vectors=with_vectors,
        )
        return [scored_point(hit, with_vectors) for hit in response.points]

    def count(self, collection: str) -> int:
        self._require(collection)
        return int(self._client.count(collection, exact=True).count)

    def iter_points(
        self, collection: str, batch: int = 512, with_vectors: bool = True
    ) -> Iterator[list[StoredPoint]]:
        offset = None
        while True:
            records, offset = self._client.scroll(
                collection, offset=offset, limit=batch, with_payload=True, with_vectors=with_vectors
            )
            if records:
                yield [stored_point(record) for record in records]
            if offset is None:
                return

    def hnsw_built(self, collection: str) -> bool:
        # The server indexes in the background once a segment passes its indexing threshold.
        info = self._client.get_collection(collection)
        return bool(info.points_count and (info.indexed_vectors_count or 0) >= info.points_count)

    def optimize(self, collection: str) -> None:
        """The server runs its optimizers by itself; nothing to trigger."""

    def close(self) -> None:
        self._client.close()


def _spec_of(config: models.CollectionConfig) -> CollectionSpec | None:
    """What the index recorded of a collection; None for one of named vectors (not ours)."""
    if not isinstance(config.params.vectors, models.VectorParams):
        return None
    recorded = config.metadata or {}
    return CollectionSpec(
        config.params.vectors.size,
        str(recorded.get(MODEL_KEY, "")),
        int(recorded.get("hnsw_m", 0)),
        int(recorded.get("hnsw_ef_construct", 0)),
        str(recorded.get("quantization", "")),
    )
