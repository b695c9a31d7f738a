"""Qdrant wants integer or UUID point ids; ours are strings, mapped by a stable UUIDv5.

The caller's id and metadata live in the payload: {"id": ..., "metadata": {...}}.
"""

import uuid
from typing import Any

ID_NAMESPACE = uuid.UUID("6f1d3c52-6f4e-4a55-9b1a-1a5f3f0e2b7d")
ID_KEY = "id"
METADATA_KEY = "metadata"


def point_uuid(point_id: str) -> str:
    return str(uuid.uuid5(ID_NAMESPACE, point_id))


def payload_for(point_id: str, metadata: dict[str, Any]) -> dict[str, Any]:
    return {ID_KEY: point_id, METADATA_KEY: metadata}


def metadata_key(key: str) -> str:
    return f"{METADATA_KEY}.{key}"
