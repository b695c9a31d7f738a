"""What the index service needs from a vector store; Qdrant embedded and server both provide it."""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from imsearch.core.filters import Filter

MetadataFilter = Filter  # imsearch.core.filters: must / should / must_not conditions

# Scalar int8 quantization: a quarter of float32's RAM per vector. Searches fetch OVERSAMPLING
# times the candidates by their int8 scores and rescore them with the float32 originals
# (measured by bench.capacity: recall@10 0.999 with it, 0.975 from int8 scores alone).
INT8 = "int8"
QUANTIZATIONS = ("", INT8)
OVERSAMPLING = 2.0


@dataclass(frozen=True)
class CollectionSpec:
    dim: int
    # The model whose embeddings the collection holds: the gateway encodes adds and queries
    # with it. "" for a collection made before collections were bound to models.
    model: str = ""
    hnsw_m: int = 0  # 0: the store's default
    hnsw_ef_construct: int = 0
    quantization: str = ""  # "" (float32 in RAM) or INT8


@dataclass
class StoredPoint:
    id: str
    vector: np.ndarray
    metadata: dict[str, Any] = field(default_factory=dict)
    # What the store recorded for this point (services.index.point_digest); None when read from
    # a point stored before digests existed, or without its payload.
    digest: str | None = None
    # A small JPEG for clients to show; kept in the vector store's payload only (not in the
    # LSH store, not in the digest).
    thumbnail: bytes = b""


@dataclass
class ScoredPoint:
    id: str
    score: float
    metadata: dict[str, Any]
    vector: np.ndarray | None = None
    thumbnail: bytes = b""


class VectorStore(Protocol):
    def collections(self) -> dict[str, CollectionSpec]:
        """Existing collections and what they were created with."""
        ...

    def collection_spec(self, name: str) -> CollectionSpec | None:
        """One collection's spec, None if it does not exist (one lookup, not a listing)."""
        ...

    def create_collection(self, name: str, spec: CollectionSpec) -> None: ...

    def drop_collection(self, name: str) -> bool:
        """Removes the collection and every point in it; False if there was none."""
        ...

    def upsert(self, collection: str, points: Sequence[StoredPoint]) -> None: ...

    def delete(self, collection: str, ids: Sequence[str]) -> None: ...

    def retrieve(self, collection: str, ids: Sequence[str], with_vectors: bool = True) -> list[StoredPoint]:
        """The points that exist among `ids`, with metadata (and vectors), in request order;
        without vectors each point's vector is empty."""
        ...

    def search(
        self,
        collection: str,
        vector: np.ndarray,
        top_k: int,
        metadata_filter: MetadataFilter | None,
        exact: bool,
        with_vectors: bool,
    ) -> list[ScoredPoint]:
        """Cosine similarity, best first. `exact` scans every vector instead of the HNSW graph."""
        ...

    def count(self, collection: str) -> int: ...

    def iter_points(
        self, collection: str, batch: int = 512, with_vectors: bool = True
    ) -> Iterator[list[StoredPoint]]:
        """Every stored point, a batch at a time (for auditing and repairing the LSH store)."""
        ...

    def hnsw_built(self, collection: str) -> bool: ...

    def optimize(self, collection: str) -> None:
        """(Re)builds the HNSW graph over everything stored."""
        ...

    def close(self) -> None: ...
