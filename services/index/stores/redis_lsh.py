"""Our LSH bucket store in Redis: random-hyperplane signatures in several hash tables.

Each table has `bits` random hyperplanes through the collection's centre; a vector's signature
in a table is the side of each plane it falls on. Similar vectors (small angle) share signatures
with high probability, so a query scores only the vectors in its buckets. Multi-probe (Lv et
al., 2007): each table also probes the buckets reached by flipping the query's least certain
bits (smallest margin to their plane, singly and in pairs), `probes` buckets per table in all.

Centring matters: CNN embeddings sit in one orthant (ReLU features), so planes through the
origin split them badly. The centre is the mean of the first `full_scan_threshold` points and
is fixed from then on (stored in Redis); up to that size every query scores the whole
collection, so buckets are only needed once the centre exists, and the few points stored
before are re-hashed then.

Scoring is two-stage. The candidates (the union of the probed buckets, ~8% of 100k points with
the defaults) are first ranked by the Hamming distance between their stored signatures (all
tables, 832 bits: SimHash, Charikar 2002) and the query's, which estimates the angle from 256
bytes per point; only the closest `rescore` of them are fetched as float16 vectors and scored
exactly (cosine). Pulling every candidate's vector out of Redis (20 MB per query at 100k) was
what made LSH slower than exact search. The gateway's rerank re-scores the top ones again in
float32 from Qdrant.

Redis layout under `<prefix>:<collection>`:
    :config          hash  dim, tables, bits, seed, centre (fixed once set)
    :vec             hash  id -> float16 vector bytes
    :sig             hash  id -> uint32 signature per table (to leave old buckets on replace)
    :meta            hash  id -> metadata JSON
    :dig             hash  id -> the point's digest (services.index.point_digest), as in Qdrant
    :epoch           int   raised by `fence`; every write transaction WATCHes it
    :b:<table>:<sig> set   ids in that bucket
Writes of one batch are one MULTI/EXEC transaction: all of it lands or none, and none once
`fence` has run (a transaction we timed out on may still reach a stalled Redis later).
"""

import itertools
import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import redis

from imsearch.core.errors import NotFound
from imsearch.core.validation import validate_name
from services.index.point_digest import digest_of
from services.index.stores.base import MetadataFilter, ScoredPoint, StoredPoint

# Probe candidates per table: single flips of the 8 least certain bits, pairs among the 6 least.
_SINGLE_FLIPS = 8
_PAIR_FLIPS = 6


@dataclass(frozen=True)
class LshParams:
    tables: int = 64  # more tables: higher recall, more candidates, more Redis memory
    bits: int = 13  # more bits per table: smaller buckets, fewer candidates, lower recall
    seed: int = 0  # hyperplanes are drawn from this seed, so every process agrees
    probes: int = 8  # query time: buckets looked up per table (1 = own bucket only)
    # Query time: candidates re-scored exactly after the signature ranking (0 = all of them).
    rescore: int = 200
    # Up to this many points, queries score the whole collection; the centre is fitted on them.
    full_scan_threshold: int = 1000

    def __post_init__(self) -> None:
        if not 1 <= self.bits <= 32 or self.tables < 1:
            raise ValueError("LSH needs 1 <= bits <= 32 and tables >= 1")
        if not 1 <= self.probes <= 1 + _SINGLE_FLIPS + _PAIR_FLIPS * (_PAIR_FLIPS - 1) // 2:
            raise ValueError("LSH probes must be between 1 and 24")
        if self.rescore < 0:
            raise ValueError("LSH rescore must be >= 0 (0 re-scores every candidate)")


@dataclass
class LshResult:
    hits: list[ScoredPoint]
    candidates: int  # points in the probed buckets (every point below the centre threshold)
    rescored: int  # of those, scored exactly against their stored vector


@dataclass
class _Collection:
    params: LshParams
    planes: np.ndarray  # (tables * bits, dim)
    centre: np.ndarray | None


def probe_flips(margins: np.ndarray, probes: int) -> np.ndarray:
    """(tables, bits) margins -> (tables, probes) XOR masks of the most likely buckets, own first.

    A bucket's cost is the summed margin of the bits it flips; candidates are the own bucket,
    single flips of the least certain bits and pairs among the least certain few.
    """
    tables, bits = margins.shape
    order = np.argsort(margins, axis=1, kind="stable")
    singles = order[:, :_SINGLE_FLIPS]
    pairs = np.array(list(itertools.combinations(range(min(_PAIR_FLIPS, bits)), 2)), dtype=np.int64)
    pairs = pairs.reshape(-1, 2)
    single_cost = np.take_along_axis(margins, singles, axis=1)
    single_mask = np.left_shift(np.int64(1), singles)
    costs = np.concatenate(
        [np.zeros((tables, 1)), single_cost, single_cost[:, pairs[:, 0]] + single_cost[:, pairs[:, 1]]],
        axis=1,
    )
    masks = np.concatenate(
        [
            np.zeros((tables, 1), dtype=np.int64),
            single_mask,
            single_mask[:, pairs[:, 0]] | single_mask[:, pairs[:, 1]],
        ],
        axis=1,
    )
    cheapest = np.argsort(costs, axis=1, kind="stable")[:, :probes]
    chosen: np.ndarray = np.take_along_axis(masks, cheapest, axis=1)
    return chosen


class RedisLshStore:
    def __init__(self, client: redis.Redis, params: LshParams, prefix: str = "imsearch:lsh") -> None:
        self._redis = client
        self._params = params
        self._prefix = prefix
        self._collections: dict[str, _Collection] = {}

    def ping(self) -> None:
        self._redis.ping()

    def _key(self, collection: str, *parts: object) -> str:
        return ":".join([self._prefix, validate_name("collection", collection), *map(str, parts)])

    def ensure_collection(self, collection: str, dim: int, tables: int = 0, bits: int = 0) -> LshParams:
        """Creates the collection's config if new (tables and bits: 0 for the store's own); an
        existing one keeps its own parameters."""
        key = self._key(collection, "config")
        for field, value in {
            "dim": dim,
            "tables": tables or self._params.tables,
            "bits": bits or self._params.bits,
            "seed": self._params.seed,
        }.items():
            self._redis.hsetnx(key, field, value)
        return self.params(collection)

    def _state(self, collection: str) -> _Collection:
        state = self._collections.get(collection)
        if state is None:
            stored = self._redis.hgetall(self._key(collection, "config"))
            if not stored:
                raise NotFound(f"LSH collection {collection!r} does not exist")
            params = LshParams(
                tables=int(stored[b"tables"]),
                bits=int(stored[b"bits"]),
                seed=int(stored[b"seed"]),
                probes=self._params.probes,
                rescore=self._params.rescore,
                full_scan_threshold=self._params.full_scan_threshold,
            )
            planes = np.random.default_rng(params.seed).standard_normal(
                (params.tables * params.bits, int(stored[b"dim"]))
            )
            centre = stored.get(b"centre")
            state = _Collection(
                params,
                planes.astype(np.float32),
                None if centre is None else np.frombuffer(_bytes(centre), dtype=np.float32),
            )
            self._collections[collection] = state
        return state

    def params(self, collection: str) -> LshParams:
        return self._state(collection).params

    def _margins(self, collection: str, vectors: np.ndarray) -> np.ndarray:
        """(n, dim) -> (n, tables, bits) signed distances to the planes through the centre."""
        state = self._state(collection)
        centred = vectors if state.centre is None else vectors - state.centre
        margins: np.ndarray = (centred @ state.planes.T).reshape(
            len(vectors), state.params.tables, state.params.bits
        )
        return margins

    def signatures(self, collection: str, vectors: np.ndarray) -> np.ndarray:
        """(n, dim) -> (n, tables) uint32 bucket signatures."""
        return _pack_sides(self._margins(collection, vectors))

    def fence(self, collection: str) -> None:
        """Makes every write of `collection` not yet run by Redis abort: one we gave up on
        after a timeout can still reach Redis late, and must not land after a repair."""
        self._redis.incr(self._key(collection, "epoch"))

    def _transact(
        self,
        collection: str,
        ids: Sequence[str],
        build: Callable[[Any, list[np.ndarray | None]], None],
    ) -> None:
        """One MULTI/EXEC, built by `build(pipe, old signatures of ids)`: all of it lands or
        none, and none if `fence` ran since the signatures were read (WATCH on the epoch)."""
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.watch(self._key(collection, "epoch"))  # type: ignore[no-untyped-call]
            raw = pipe.hmget(self._key(collection, "sig"), list(ids))
            old = [None if r is None else np.frombuffer(_bytes(r), dtype=np.uint32) for r in raw]
            pipe.multi()
            build(pipe, old)
            pipe.execute()

    def _write(
        self, pipe: Any, collection: str, point: StoredPoint, sig: np.ndarray, old: np.ndarray | None
    ) -> None:
        if old is not None:
            for table, bucket in enumerate(old):
                pipe.srem(self._key(collection, "b", table, bucket), point.id)
        for table, bucket in enumerate(sig):
            pipe.sadd(self._key(collection, "b", table, bucket), point.id)
        pipe.hset(self._key(collection, "vec"), point.id, point.vector.astype(np.float16).tobytes())
        pipe.hset(self._key(collection, "sig"), point.id, sig.tobytes())
        pipe.hset(self._key(collection, "meta"), point.id, json.dumps(point.metadata))
        pipe.hset(self._key(collection, "dig"), point.id, digest_of(point))

    def upsert(self, collection: str, points: Sequence[StoredPoint]) -> None:
        if not points:
            return
        vectors = np.stack([p.vector for p in points]).astype(np.float32)
        new_sigs = self.signatures(collection, vectors)

        def build(pipe: Any, old_sigs: list[np.ndarray | None]) -> None:
            for point, vector, sig, old in zip(points, vectors, new_sigs, old_sigs, strict=True):
                as_float32 = StoredPoint(point.id, vector, point.metadata, point.digest)
                self._write(pipe, collection, as_float32, sig, old)

        self._transact(collection, [p.id for p in points], build)
        state = self._state(collection)
        if state.centre is None and self.count(collection) >= state.params.full_scan_threshold:
            self._fit_centre(collection)

    def _fit_centre(self, collection: str) -> None:
        """Fixes the centre at the mean of what is stored and re-hashes those points, atomically."""
        points = list(self._iter_points(collection))
        centre = np.mean([p.vector for p in points], axis=0).astype(np.float32)
        state = self._state(collection)
        state.centre = centre
        try:
            new_sigs = self.signatures(collection, np.stack([p.vector for p in points]))

            def build(pipe: Any, old_sigs: list[np.ndarray | None]) -> None:
                pipe.hset(self._key(collection, "config"), "centre", centre.tobytes())
                for point, sig, old in zip(points, new_sigs, old_sigs, strict=True):
                    self._write(pipe, collection, point, sig, old)

            self._transact(collection, [p.id for p in points], build)
        except BaseException:
            state.centre = None
            raise

    def _iter_points(self, collection: str) -> Iterator[StoredPoint]:
        metadata = self._redis.hgetall(self._key(collection, "meta"))
        digests = self._redis.hgetall(self._key(collection, "dig"))
        for key, raw in self._redis.hscan_iter(self._key(collection, "vec"), count=1000):
            vector = np.frombuffer(_bytes(raw), dtype=np.float16).astype(np.float32)
            digest = digests.get(key)
            yield StoredPoint(
                _text(key),
                vector,
                json.loads(metadata.get(key, b"{}")),
                None if digest is None else _text(digest),
            )

    def delete(self, collection: str, ids: Sequence[str]) -> None:
        def build(pipe: Any, old_sigs: list[np.ndarray | None]) -> None:
            for point_id, old in zip(ids, old_sigs, strict=True):
                if old is None:
                    continue
                for table, bucket in enumerate(old):
                    pipe.srem(self._key(collection, "b", table, bucket), point_id)
                for field in ("vec", "sig", "meta", "dig"):
                    pipe.hdel(self._key(collection, field), point_id)

        self._transact(collection, ids, build)

    def drop_collection(self, collection: str) -> int:
        """Removes every key of the collection; returns how many. A write still on its way
        aborts (its WATCHed epoch key goes first)."""
        self._collections.pop(collection, None)
        pattern = re.sub(r"([*?\[\]\\])", r"\\\1", self._key(collection)) + ":*"
        removed = self._redis.unlink(self._key(collection, "epoch"))
        batch: list[bytes] = []
        for key in self._redis.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) == 1000:
                removed += self._redis.unlink(*batch)
                batch = []
        if batch:
            removed += self._redis.unlink(*batch)
        self._collections.pop(collection, None)  # a search may have cached it meanwhile
        return int(removed)

    def _probe_keys(self, collection: str, margins: np.ndarray, signature: np.ndarray) -> list[str]:
        """The query's (tables, bits) margins and (tables,) signature -> bucket keys to read."""
        probes = self.params(collection).probes
        probed = signature.astype(np.int64)[:, None] ^ probe_flips(np.abs(margins), probes)
        prefix = self._key(collection, "b")
        return [f"{prefix}:{table}:{bucket}" for table, row in enumerate(probed.tolist()) for bucket in row]

    def search(
        self,
        collection: str,
        vector: np.ndarray,
        top_k: int,
        metadata_filter: MetadataFilter | None,
    ) -> LshResult:
        """Best `top_k` among the query's buckets (signature-ranked, then re-scored)."""
        state = self._state(collection)
        margins = self._margins(collection, vector[None, :])  # once: buckets, probes, ranking
        signature = _pack_sides(margins)[0]
        raw_ids: Iterable[bytes | str]
        if state.centre is None:  # small collection: score everything
            raw_ids = self._redis.hkeys(self._key(collection, "vec"))
        else:
            raw_ids = self._redis.sunion(self._probe_keys(collection, margins[0], signature))
        candidates = [_text(c) for c in raw_ids]
        metadata: dict[str, dict[str, Any]] | None = None  # read up front only to filter
        if metadata_filter:  # filter first, so the shortlist holds only points that may be returned
            metadata = self._metadata(collection, candidates)
            candidates = [c for c in candidates if c in metadata and metadata_filter.matches(metadata[c])]
        shortlist = candidates
        limit = max(state.params.rescore, top_k)
        if state.centre is not None and state.params.rescore and len(candidates) > limit:
            shortlist = self._closest_signatures(collection, signature, candidates, limit)
        hits = self._rescore(collection, vector, shortlist, top_k, metadata)
        return LshResult(hits, len(candidates), len(shortlist))

    def _metadata(self, collection: str, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        raw = self._redis.hmget(self._key(collection, "meta"), list(ids)) if ids else []
        return {i: json.loads(r) for i, r in zip(ids, raw, strict=True) if r is not None}

    def _closest_signatures(
        self, collection: str, query: np.ndarray, candidates: list[str], limit: int
    ) -> list[str]:
        """The `limit` candidates whose signatures differ from the query's in the fewest bits."""
        raw: list[Any] = self._redis.hmget(self._key(collection, "sig"), candidates)
        present = [i for i, r in enumerate(raw) if r is not None]  # deleted since the union
        signatures = np.frombuffer(b"".join(raw[i] for i in present), dtype=np.uint32)
        distance = np.bitwise_count(signatures.reshape(len(present), -1) ^ query).sum(axis=1)
        if len(present) > limit:
            closest = np.argpartition(distance, limit)[:limit]
        else:
            closest = np.arange(len(present))
        return [candidates[present[i]] for i in closest]

    def _rescore(
        self,
        collection: str,
        vector: np.ndarray,
        ids: list[str],
        top_k: int,
        metadata: dict[str, dict[str, Any]] | None,
    ) -> list[ScoredPoint]:
        """The best `top_k` of `ids` by cosine against their stored float16 vectors."""
        if not ids:
            return []
        raw_vectors: list[Any] = self._redis.hmget(self._key(collection, "vec"), ids)
        present = [i for i, r in enumerate(raw_vectors) if r is not None]
        matrix = np.frombuffer(b"".join(raw_vectors[i] for i in present), dtype=np.float16)
        scores = matrix.reshape(len(present), -1).astype(np.float32) @ vector.astype(np.float32)
        best = np.argsort(-scores, kind="stable")[:top_k]
        top = [ids[present[p]] for p in best]
        if metadata is None:  # unfiltered: read metadata for the returned points only
            metadata = self._metadata(collection, top)
        return [
            ScoredPoint(point_id, float(scores[p]), metadata.get(point_id, {}))
            for point_id, p in zip(top, best, strict=True)
        ]

    def stored(self, collection: str, ids: Sequence[str]) -> dict[str, StoredPoint]:
        """What the store holds for each of `ids` that it has: float16 vector, metadata, digest."""
        if not ids:
            return {}
        pipe = self._redis.pipeline(transaction=False)
        for field in ("vec", "meta", "dig"):
            pipe.hmget(self._key(collection, field), list(ids))
        vectors, metadata, digests = pipe.execute()
        return {
            point_id: StoredPoint(
                point_id,
                np.frombuffer(_bytes(vector), dtype=np.float16),
                json.loads(meta or b"{}"),
                None if digest is None else _text(digest),
            )
            for point_id, vector, meta, digest in zip(ids, vectors, metadata, digests, strict=True)
            if vector is not None
        }

    def digests(self, collection: str, ids: Sequence[str]) -> dict[str, str | None]:
        """The digest of each of `ids` the store has (None: stored before digests existed)."""
        if not ids:
            return {}
        pipe = self._redis.pipeline(transaction=False)
        pipe.hmget(self._key(collection, "dig"), list(ids))
        pipe.hmget(self._key(collection, "sig"), list(ids))  # presence, for points without a digest
        digests, signatures = pipe.execute()
        return {
            point_id: None if digest is None else _text(digest)
            for point_id, digest, signature in zip(ids, digests, signatures, strict=True)
            if digest is not None or signature is not None
        }

    def count(self, collection: str) -> int:
        return int(self._redis.hlen(self._key(collection, "vec")))

    def iter_ids(self, collection: str, batch: int = 512) -> Iterator[list[str]]:
        """Every stored id, a batch at a time (HSCAN: ids removed meanwhile may still appear)."""
        # HSCAN's NOVALUES needs Redis 7.4; signatures are small, so read and drop them.
        ids: list[str] = []
        for key, _ in self._redis.hscan_iter(self._key(collection, "sig"), count=batch):
            ids.append(_text(key))
            if len(ids) == batch:
                yield ids
                ids = []
        if ids:
            yield ids


def _pack_sides(margins: np.ndarray) -> np.ndarray:
    """(n, tables, bits) margins -> (n, tables) uint32 signatures: bit b set on the plane's + side."""
    bits = margins.shape[2]
    sides = (margins > 0).astype(np.uint64)
    packed: np.ndarray = (sides @ (np.uint64(1) << np.arange(bits, dtype=np.uint64))).astype(np.uint32)
    return packed


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()
