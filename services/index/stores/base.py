"""What the index service needs from a vector store; Qdrant embedded and server both provide it."""

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

# Metadata filter: every key must equal its value (str, int or bool).
MetadataFilter = Mapping[str, str | int | bool]


@dataclass
class StoredPoint:
    id: str
    vector: np.ndarray
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class ScoredPoint:
    id: str
    score: float
    metadata: dict[str, Any]
    vector: np.ndarray | None = None


class VectorStore(Protocol):
    def collections(self) -> dict[str, int]:
        """Existing collections and their dimension."""
        ...

    def create_collection(self, name: str, dim: int) -> None: ...

    def upsert(self, collection: str, points: Sequence[StoredPoint]) -> None: ...

    def delete(self, collection: str, ids: Sequence[str]) -> None: ...

    def retrieve(self, collection: str, ids: Sequence[str]) -> list[StoredPoint]:
        """The points that exist among `ids`, with vectors and metadata, in request order."""
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

    def iter_points(self, collection: str, batch: int = 512) -> Iterator[StoredPoint]:
        """Every stored point (for repairing the LSH store)."""
        ...

    def hnsw_built(self, collection: str) -> bool: ...

    def optimize(self, collection: str) -> None:
        """(Re)builds the HNSW graph over everything stored."""
        ...

    def close(self) -> None: ...
