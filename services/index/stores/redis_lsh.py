"""Our LSH bucket store in Redis: random-hyperplane signatures in several hash tables.

Each table has `bits` random hyperplanes; a vector's signature in a table is the side of each
plane it falls on. Similar vectors (small angle) share signatures with high probability, so a
query only scores the vectors in its own buckets, plus, with `probe_radius=1`, the buckets one
bit away (multi-probe LSH). Collections up to `full_scan_threshold` points are scored in full.
Candidates are re-scored exactly (cosine) against the vectors kept
here in float16; the gateway's rerank re-scores the top ones again in float32 from Qdrant.

Redis layout under `<prefix>:<collection>`:
    :config          hash  dim, tables, bits, seed (fixed when the collection is made)
    :vec             hash  id -> float16 vector bytes
    :sig             hash  id -> uint32 signature per table (to leave old buckets on replace)
    :meta            hash  id -> metadata JSON
    :b:<table>:<sig> set   ids in that bucket
Writes of one batch are one MULTI/EXEC transaction: all of it lands or none.
"""

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import redis

from imsearch.common.errors import NotFound
from services.index.stores.base import MetadataFilter, ScoredPoint, StoredPoint


@dataclass(frozen=True)
class LshParams:
    tables: int = 16  # more tables: higher recall, more candidates, more memory
    bits: int = 14  # more bits per table: smaller buckets, fewer candidates, lower recall
    seed: int = 0  # hyperplanes are drawn from this seed, so every process agrees
    probe_radius: int = 1  # query time: 0 = own bucket, 1 = also buckets one bit away
    # Query time: collections this small are scored in full (buckets would be nearly empty).
    full_scan_threshold: int = 1000

    def __post_init__(self) -> None:
        if not 1 <= self.bits <= 32 or self.tables < 1 or self.probe_radius not in (0, 1):
            raise ValueError("LSH needs 1 <= bits <= 32, tables >= 1, probe_radius in {0, 1}")


def matches(metadata: dict[str, Any], metadata_filter: MetadataFilter | None) -> bool:
    return not metadata_filter or all(metadata.get(k) == v for k, v in metadata_filter.items())


class RedisLshStore:
    def __init__(self, client: redis.Redis, params: LshParams, prefix: str = "imsearch:lsh") -> None:
        self._redis = client
        self._params = params
        self._prefix = prefix
        self._planes: dict[str, np.ndarray] = {}
        self._config: dict[str, LshParams] = {}

    def _key(self, collection: str, *parts: object) -> str:
        return ":".join([self._prefix, collection, *map(str, parts)])

    def ensure_collection(self, collection: str, dim: int) -> LshParams:
        """Creates the collection's config if new; an existing one keeps its own parameters."""
        key = self._key(collection, "config")
        wanted = {"dim": dim, "tables": self._params.tables, "bits": self._params.bits}
        self._redis.hsetnx(key, "created", 1)
        for field, value in {**wanted, "seed": self._params.seed}.items():
            self._redis.hsetnx(key, field, value)
        return self.params(collection)

    def params(self, collection: str) -> LshParams:
        if collection not in self._config:
            stored = self._redis.hgetall(self._key(collection, "config"))
            if not stored:
                raise NotFound(f"LSH collection {collection!r} does not exist")
            self._config[collection] = LshParams(
                tables=int(stored[b"tables"]),
                bits=int(stored[b"bits"]),
                seed=int(stored[b"seed"]),
                probe_radius=self._params.probe_radius,
                full_scan_threshold=self._params.full_scan_threshold,
            )
            params = self._config[collection]
            rng = np.random.default_rng(params.seed)
            dim = int(stored[b"dim"])
            self._planes[collection] = rng.standard_normal((params.tables * params.bits, dim)).astype(
                np.float32
            )
        return self._config[collection]

    def signatures(self, collection: str, vectors: np.ndarray) -> np.ndarray:
        """(n, dim) -> (n, tables) uint32 bucket signatures."""
        params = self.params(collection)
        sides = (vectors @ self._planes[collection].T) > 0
        sides = sides.reshape(len(vectors), params.tables, params.bits).astype(np.uint64)
        weights = (1 << np.arange(params.bits, dtype=np.uint64)).astype(np.uint64)
        signatures: np.ndarray = (sides @ weights).astype(np.uint32)
        return signatures

    def _old_signatures(self, collection: str, ids: Sequence[str]) -> list[np.ndarray | None]:
        raw = self._redis.hmget(self._key(collection, "sig"), list(ids))
        return [None if r is None else np.frombuffer(_bytes(r), dtype=np.uint32) for r in raw]

    def upsert(self, collection: str, points: Sequence[StoredPoint]) -> None:
        if not points:
            return
        vectors = np.stack([p.vector for p in points]).astype(np.float32)
        new_sigs = self.signatures(collection, vectors)
        old_sigs = self._old_signatures(collection, [p.id for p in points])
        pipe = self._redis.pipeline(transaction=True)
        for point, vector, sig, old in zip(points, vectors, new_sigs, old_sigs, strict=True):
            if old is not None:
                for table, bucket in enumerate(old):
                    pipe.srem(self._key(collection, "b", table, bucket), point.id)
            for table, bucket in enumerate(sig):
                pipe.sadd(self._key(collection, "b", table, bucket), point.id)
            pipe.hset(self._key(collection, "vec"), point.id, vector.astype(np.float16).tobytes())
            pipe.hset(self._key(collection, "sig"), point.id, sig.tobytes())
            pipe.hset(self._key(collection, "meta"), point.id, json.dumps(point.metadata))
        pipe.execute()

    def delete(self, collection: str, ids: Sequence[str]) -> None:
        old_sigs = self._old_signatures(collection, ids)
        pipe = self._redis.pipeline(transaction=True)
        for point_id, old in zip(ids, old_sigs, strict=True):
            if old is None:
                continue
            for table, bucket in enumerate(old):
                pipe.srem(self._key(collection, "b", table, bucket), point_id)
            for field in ("vec", "sig", "meta"):
                pipe.hdel(self._key(collection, field), point_id)
        pipe.execute()

    def _probe_keys(self, collection: str, query: np.ndarray) -> list[str]:
        params = self.params(collection)
        sig = self.signatures(collection, query[None, :])[0]
        keys = []
        for table, bucket in enumerate(sig.tolist()):
            probes = [bucket]
            if params.probe_radius == 1:
                probes += [bucket ^ (1 << b) for b in range(params.bits)]
            keys += [self._key(collection, "b", table, p) for p in probes]
        return keys

    def search(
        self,
        collection: str,
        vector: np.ndarray,
        top_k: int,
        metadata_filter: MetadataFilter | None,
    ) -> tuple[list[ScoredPoint], int]:
        """Best `top_k` among the query's buckets, and how many candidates were scored."""
        params = self.params(collection)
        raw_ids: Iterable[bytes | str]
        if self.count(collection) <= params.full_scan_threshold:
            raw_ids = self._redis.hkeys(self._key(collection, "vec"))
        else:
            raw_ids = self._redis.sunion(self._probe_keys(collection, vector))
        candidates = [_text(c) for c in raw_ids]
        if not candidates:
            return [], 0
        pipe = self._redis.pipeline(transaction=False)
        pipe.hmget(self._key(collection, "vec"), candidates)
        pipe.hmget(self._key(collection, "meta"), candidates)
        raw_vectors, raw_meta = pipe.execute()
        present = [i for i, r in enumerate(raw_vectors) if r is not None]
        matrix = np.frombuffer(b"".join(raw_vectors[i] for i in present), dtype=np.float16)
        matrix = matrix.reshape(len(present), -1).astype(np.float32)
        scores = matrix @ vector.astype(np.float32)
        hits = []
        for position in np.argsort(-scores, kind="stable"):
            index = present[position]
            metadata = json.loads(raw_meta[index]) if raw_meta[index] else {}
            if matches(metadata, metadata_filter):
                hits.append(ScoredPoint(candidates[index], float(scores[position]), metadata))
                if len(hits) == top_k:
                    break
        return hits, len(present)

    def count(self, collection: str) -> int:
        return int(self._redis.hlen(self._key(collection, "vec")))

    def iter_ids(self, collection: str) -> Iterator[str]:
        # HSCAN's NOVALUES needs Redis 7.4; signatures are small, so read and drop them.
        for key, _ in self._redis.hscan_iter(self._key(collection, "sig"), count=1000):
            yield _text(key)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()
