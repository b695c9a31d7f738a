"""What both Qdrant adapters share: id mapping and the payload layout.

Qdrant wants integer or UUID point ids; ours are strings, mapped by a stable UUIDv5. The
caller's id and metadata live in the payload: {"id": ..., "metadata": {...}}.
"""

import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np

from services.index.stores.base import ScoredPoint, StoredPoint

ID_NAMESPACE = uuid.UUID("6f1d3c52-6f4e-4a55-9b1a-1a5f3f0e2b7d")
ID_KEY = "id"
METADATA_KEY = "metadata"


def point_uuid(point_id: str) -> str:
    return str(uuid.uuid5(ID_NAMESPACE, point_id))


def payload_for(point_id: str, metadata: dict[str, Any]) -> dict[str, Any]:
    return {ID_KEY: point_id, METADATA_KEY: metadata}


def metadata_key(key: str) -> str:
    return f"{METADATA_KEY}.{key}"


def stored_point(record: Any) -> StoredPoint:
    """A retrieved record (either adapter's type: both have .payload and .vector)."""
    payload = record.payload or {}
    return StoredPoint(
        payload[ID_KEY], np.asarray(record.vector, dtype=np.float32), payload.get(METADATA_KEY, {})
    )


def in_request_order(records: Any, ids: Sequence[str]) -> list[StoredPoint]:
    """The retrieved records as points, in the order of `ids`; ids not found are left out."""
    found = {point.id: point for point in map(stored_point, records)}
    return [found[i] for i in ids if i in found]


def scored_point(hit: Any, with_vector: bool) -> ScoredPoint:
    """A search hit (either adapter's type: both have .payload, .score and .vector)."""
    payload = hit.payload or {}
    vector = np.asarray(hit.vector, dtype=np.float32) if with_vector else None
    return ScoredPoint(payload[ID_KEY], float(hit.score), payload.get(METADATA_KEY, {}), vector)
