"""A digest per stored point, written beside it in both stores, so they can be compared cheaply.

The two-store write (Qdrant, then the LSH store) can leave them apart: a crash between the two,
or a Redis that stalls past our timeout and then applies the transaction we gave up on. Each
store keeps the digest of what it was given; comparing digests finds every missing, extra or
replaced point without reading the vectors. It covers the float16 form of the unit vector (what
the LSH store keeps, so its copy digests the same) and the metadata in canonical JSON.
"""

import hashlib
import json
from typing import Any

import numpy as np

from services.index.stores.base import StoredPoint

DIGEST_BYTES = 16


def point_digest(vector: np.ndarray, metadata: dict[str, Any]) -> str:
    digest = hashlib.blake2b(digest_size=DIGEST_BYTES)
    digest.update(np.asarray(vector, dtype=np.float16).tobytes())
    digest.update(json.dumps(metadata, sort_keys=True, separators=(",", ":")).encode())
    return digest.hexdigest()


def digest_of(point: StoredPoint) -> str:
    """The point's recorded digest, or the one its content gives (points stored before digests)."""
    return point.digest or point_digest(point.vector, point.metadata)
