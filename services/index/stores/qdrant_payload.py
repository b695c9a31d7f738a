"""What both Qdrant adapters share: id mapping and the payload layout.

Qdrant wants integer or UUID point ids; ours are strings, mapped by a stable UUIDv5. The
caller's id and metadata live in the payload: {"id": ..., "metadata": {...}, "match": [...],
"numbers": {...}, "digest": ..., "layout": 2, "thumbnail": base64 JPEG (when there is one)}, the
digest being the one the LSH store keeps too (services.index.point_digest). Searches read only
"id" and "metadata" (SEARCH_PAYLOAD): the rest is for filters, audits and retrieval.

"match" holds one typed keyword per filterable field value (`color=s:red`, `flag=b:true`,
`n=i:3`, one per list element): equals and any_of conditions are matched against it. Matching
the raw metadata would follow Qdrant's own typing, which differs from the LSH store's and
between bindings (qdrant-edge-py turns a boolean match into an integer one, so `true` matched
`1`). "numbers" holds each field's numbers (not booleans) as a list, for range conditions.
A point written before this layout reads back without a digest, so reconcile rewrites it.
"""

import base64
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from imsearch.core.filters import Condition, Range, is_number
from imsearch.core.structs import FILTER_KEY
from services.index.point_digest import digest_of
from services.index.stores.base import MetadataFilter, ScoredPoint, StoredPoint

ID_NAMESPACE = uuid.UUID("6f1d3c52-6f4e-4a55-9b1a-1a5f3f0e2b7d")
ID_KEY = "id"
METADATA_KEY = "metadata"
MATCH_KEY = "match"
NUMBERS_KEY = "numbers"
DIGEST_KEY = "digest"
LAYOUT_KEY, LAYOUT = "layout", 2
THUMBNAIL_KEY = "thumbnail"
SEARCH_PAYLOAD = [ID_KEY, METADATA_KEY]


def point_uuid(point_id: str) -> str:
    return str(uuid.uuid5(ID_NAMESPACE, point_id))


def match_token(key: str, value: Any) -> str | None:
    """The keyword a field value is matched by; None for values no filter can ask for."""
    if isinstance(value, bool):
        return f"{key}=b:{'true' if value else 'false'}"
    if isinstance(value, int):
        return f"{key}=i:{value}"
    if isinstance(value, str):
        return f"{key}=s:{value}"
    return None


def match_tokens(metadata: dict[str, Any]) -> list[str]:
    tokens = set()
    for key, value in metadata.items():
        if not FILTER_KEY.match(key):
            continue
        for element in value if isinstance(value, list) else [value]:
            token = match_token(key, element)
            if token is not None:
                tokens.add(token)
    return sorted(tokens)


def number_fields(metadata: dict[str, Any]) -> dict[str, list[float]]:
    numbers: dict[str, list[float]] = {}
    for key, value in metadata.items():
        if not FILTER_KEY.match(key):
            continue
        found = [v for v in (value if isinstance(value, list) else [value]) if is_number(v)]
        if found:
            numbers[key] = found
    return numbers


@dataclass(frozen=True)
class Lowered:
    """A condition as Qdrant sees it: a keyword match (one token or any of several) on
    MATCH_KEY, or a float range on NUMBERS_KEY.<field>."""

    key: str
    tokens: tuple[str, ...] = ()
    range: Range | None = None


@dataclass(frozen=True)
class LoweredFilter:
    must: list[Lowered]
    should: list[Lowered]
    must_not: list[Lowered]


def lower(metadata_filter: MetadataFilter) -> LoweredFilter:
    def one(condition: Condition) -> Lowered:
        if condition.range is not None:
            return Lowered(f"{NUMBERS_KEY}.{condition.key}", range=condition.range)
        tokens = (match_token(condition.key, value) for value in condition.any_of)
        return Lowered(MATCH_KEY, tokens=tuple(t for t in tokens if t is not None))

    return LoweredFilter(
        [one(c) for c in metadata_filter.must],
        [one(c) for c in metadata_filter.should],
        [one(c) for c in metadata_filter.must_not],
    )


def payload_for(point: StoredPoint) -> dict[str, Any]:
    payload = {
        ID_KEY: point.id,
        METADATA_KEY: point.metadata,
        MATCH_KEY: match_tokens(point.metadata),
        NUMBERS_KEY: number_fields(point.metadata),
        DIGEST_KEY: digest_of(point),
        LAYOUT_KEY: LAYOUT,
    }
    if point.thumbnail:  # JSON payload: bytes as base64
        payload[THUMBNAIL_KEY] = base64.b64encode(point.thumbnail).decode()
    return payload


def stored_point(record: Any) -> StoredPoint:
    """A retrieved record (either adapter's type: both have .payload and .vector)."""
    payload = record.payload or {}
    vector = np.asarray(record.vector if record.vector is not None else [], dtype=np.float32)
    current = payload.get(LAYOUT_KEY) == LAYOUT  # else: no digest, so reconcile rewrites it
    digest = payload.get(DIGEST_KEY) if current else None
    thumbnail = base64.b64decode(payload[THUMBNAIL_KEY]) if payload.get(THUMBNAIL_KEY) else b""
    return StoredPoint(payload[ID_KEY], vector, payload.get(METADATA_KEY, {}), digest, thumbnail)


def in_request_order(records: Any, ids: Sequence[str]) -> list[StoredPoint]:
    """The retrieved records as points, in the order of `ids`; ids not found are left out."""
    found = {point.id: point for point in map(stored_point, records)}
    return [found[i] for i in ids if i in found]


def scored_point(hit: Any, with_vector: bool) -> ScoredPoint:
    """A search hit (either adapter's type: both have .payload, .score and .vector)."""
    payload = hit.payload or {}
    vector = np.asarray(hit.vector, dtype=np.float32) if with_vector else None
    return ScoredPoint(payload[ID_KEY], float(hit.score), payload.get(METADATA_KEY, {}), vector)
