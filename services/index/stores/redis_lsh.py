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

Redis layout. A collection's points are spread over `shards` by a hash of their id (16 on a
cluster, 1 on a single Redis), and
every key of a shard carries the same hash tag, so each multi-key command (a write's
MULTI/EXEC, a query's SUNION over buckets) stays in one Redis Cluster slot while the collection
spreads over every master; a single Redis sees the same names. Under `<prefix>:`:
    {<collection>}:config          hash  dim, tables, bits, seed, shards, centre (fixed once set),
                                         version (new on creation and when the centre is fixed)
    {<collection>}:lease           str   the write lease's fencing token (services.index.lease)
    {<collection>.s<NN>}:vec       hash  id -> float16 vector bytes
    {<collection>.s<NN>}:sig       hash  id -> uint32 signature per table (to leave old buckets on replace)
    {<collection>.s<NN>}:meta      hash  id -> metadata JSON
    {<collection>.s<NN>}:dig       hash  id -> the point's digest (services.index.point_digest), as in Qdrant
    {<collection>.s<NN>}:epoch     int   raised by `fence`; every write transaction WATCHes it
    {<collection>.s<NN>}:token     int   the largest lease token that wrote the shard
    {<collection>.s<NN>}:b:<t>:<s> set   ids of the shard in bucket <s> of table <t>
The writes of one batch to one shard are atomic: an upsert is one Lua script (lsh_write.py), a
delete one MULTI/EXEC transaction. All of it lands or none, and none once `fence` has run (a
write we timed out on may still reach a stalled Redis later). A batch over several shards is
several writes; the index service treats a failure of any as a failed write
(services.index.repair settles the ids).

Several index replicas share the store. Each caches a collection's config (planes, centre) and
checks its version: a search reads it in the same pipeline as its buckets and starts again if
it moved; a write learns it from its lease grant. A write under a lease carries the lease's
token, and a shard that has seen a larger one refuses it (FencedOut).
"""

import itertools
import json
import re
import uuid
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import redis
from redis.cluster import RedisCluster

from imsearch.core.errors import NotFound, Unavailable
from imsearch.core.validation import validate_name
from services.index.point_digest import digest_of
from services.index.stores.base import MetadataFilter, ScoredPoint, StoredPoint
from services.index.stores.lsh_write import UPSERT, LeasePassed, ShardKeys, upsert_shard

# Probe candidates per table: single flips of the 8 least certain bits, pairs among the 6 least.
_SINGLE_FLIPS = 8
_PAIR_FLIPS = 6
# Shards per collection, each its own hash tag (its keys share a Redis Cluster slot). On a
# cluster 16 spread a collection over the masters; on a single Redis one is best: every shard
# splits each bucket set, and a key costs Redis memory (16 doubled it at 100k points).
CLUSTER_SHARDS = 16
RedisClient = redis.Redis | RedisCluster


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


class FencedOut(Exception):
    """A write under a lease that has since passed to another replica (a larger token)."""


@dataclass
class _Collection:
    params: LshParams
    planes: np.ndarray  # (tables * bits, dim)
    centre: np.ndarray | None
    shards: int
    version: str


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
    def __init__(
        self, client: RedisClient, params: LshParams, prefix: str = "imsearch:lsh", shards: int = 0
    ) -> None:
        """`client`: a single Redis or a Redis Cluster (redis-py's RedisCluster). `shards` of a
        new collection: 0 for 1 on a single Redis and CLUSTER_SHARDS on a cluster."""
        self._redis = client
        self._params = params
        self._prefix = prefix
        self._new_shards = shards or (CLUSTER_SHARDS if isinstance(client, RedisCluster) else 1)
        self._collections: dict[str, _Collection] = {}
        self._tokens: dict[str, int] = {}  # collection -> the lease token its writes carry
        self._upsert_script = client.register_script(UPSERT)

    @property
    def client(self) -> RedisClient:
        return self._redis

    def ping(self) -> None:
        self._redis.ping()

    # -- key layout (see the module docstring) -----------------------------------------------

    def collection_key(self, collection: str, name: str) -> str:
        """A key in the slot of the collection's config (its lease lives there too)."""
        return f"{self._prefix}:{{{validate_name('collection', collection)}}}:{name}"

    def _config_key(self, collection: str) -> str:
        return self.collection_key(collection, "config")

    def _key(self, collection: str, shard: int, *parts: object) -> str:
        tag = f"{{{validate_name('collection', collection)}.s{shard:02d}}}"
        return ":".join([self._prefix, tag, *map(str, parts)])

    def point_key(self, collection: str, point_id: str, field: str) -> str:
        """The hash (`vec`, `sig`, `meta`, `dig`) that holds `field` of this point, or its
        shard's `epoch`: for tools and tests that look at Redis directly."""
        return self._key(collection, self.shard_of(point_id, self._state(collection).shards), field)

    @staticmethod
    def shard_of(point_id: str, shards: int) -> int:
        return zlib.crc32(point_id.encode()) % shards

    def _shards(self, collection: str) -> range:
        return range(self._state(collection).shards)

    def _by_shard(self, collection: str, ids: Sequence[str]) -> dict[int, list[int]]:
        """Shard -> positions in `ids` of the ids it holds."""
        shards = self._state(collection).shards
        groups: dict[int, list[int]] = defaultdict(list)
        for position, point_id in enumerate(ids):
            groups[self.shard_of(point_id, shards)].append(position)
        return groups

    def _hmget(self, collection: str, field: str, ids: Sequence[str]) -> list[Any]:
        """HMGET of one field for ids over all their shards (one pipeline), in `ids` order."""
        if not ids:
            return []
        groups = self._by_shard(collection, ids)
        pipe = self._redis.pipeline(transaction=False)
        for shard, positions in groups.items():
            pipe.hmget(self._key(collection, shard, field), [ids[p] for p in positions])
        found: list[Any] = [None] * len(ids)
        for positions, values in zip(groups.values(), pipe.execute(), strict=True):
            for position, value in zip(positions, values, strict=True):
                found[position] = value
        return found

    # -- collections -------------------------------------------------------------------------

    def ensure_collection(self, collection: str, dim: int, tables: int = 0, bits: int = 0) -> LshParams:
        """Creates the collection's config if new (tables and bits: 0 for the store's own); an
        existing one keeps its own parameters."""
        self._drop_legacy_layout(collection)
        key = self._config_key(collection)
        fields: dict[str, int | str] = {
            "dim": dim,
            "tables": tables or self._params.tables,
            "bits": bits or self._params.bits,
            "seed": self._params.seed,
            "shards": self._new_shards,
            "version": uuid.uuid4().hex,
        }
        for field, value in fields.items():
            self._redis.hsetnx(key, field, value)
        return self.params(collection)

    def cached_version(self, collection: str) -> str | None:
        state = self._collections.get(collection)
        return None if state is None else state.version

    def forget(self, collection: str) -> None:
        """Drops the cached config: the next use reads it again."""
        self._collections.pop(collection, None)

    @contextmanager
    def fenced(self, collection: str, token: int) -> Iterator[None]:
        """Writes of the block carry the lease `token`."""
        self._tokens[collection] = token
        try:
            yield
        finally:
            self._tokens.pop(collection, None)

    def _drop_legacy_layout(self, collection: str) -> None:
        """Keys of the layout before shards (`<prefix>:<collection>:...`): removed, so the
        start-up reconcile rewrites the collection from Qdrant in today's layout."""
        legacy = f"{self._prefix}:{validate_name('collection', collection)}"
        if self._redis.exists(f"{legacy}:config"):
            self._unlink_matching(re.sub(r"([*?\[\]\\])", r"\\\1", legacy) + ":*")

    def _unlink_matching(self, pattern: str) -> int:
        removed, batch = 0, []
        for key in self._redis.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) == 1000:
                removed += int(self._redis.unlink(*batch))
                batch = []
        if batch:
            removed += int(self._redis.unlink(*batch))
        return removed

    def _state(self, collection: str) -> _Collection:
        state = self._collections.get(collection)
        if state is None:
            stored = self._redis.hgetall(self._config_key(collection))
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
                int(stored[b"shards"]),
                _text(stored.get(b"version", b"")),
            )
            self._collections[collection] = state
        return state

    def params(self, collection: str) -> LshParams:
        return self._state(collection).params

    def drop_collection(self, collection: str) -> int:
        """Removes every key of the collection; returns how many. A write still on its way
        aborts (its WATCHed epoch keys go first)."""
        try:
            shards = self._shards(collection)
        except NotFound:
            return 0
        self._collections.pop(collection, None)
        removed = int(self._redis.unlink(*(self._key(collection, s, "epoch") for s in shards)))
        for shard in shards:
            tag = re.sub(r"([*?\[\]\\])", r"\\\1", self._key(collection, shard))
            removed += self._unlink_matching(tag + ":*")
        removed += int(
            self._redis.unlink(self._config_key(collection), self.collection_key(collection, "lease_seq"))
        )
        self._collections.pop(collection, None)  # a search may have cached it meanwhile
        return removed

    # -- signatures --------------------------------------------------------------------------

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

    # -- writes ------------------------------------------------------------------------------

    def fence(self, collection: str) -> None:
        """Makes every write of `collection` not yet run by Redis abort: one we gave up on
        after a timeout can still reach Redis late, and must not land after a repair."""
        pipe = self._redis.pipeline(transaction=False)
        for shard in self._shards(collection):
            pipe.incr(self._key(collection, shard, "epoch"))
        pipe.execute()

    def _transact(
        self,
        collection: str,
        shard: int,
        ids: Sequence[str],
        build: Callable[[Any, list[np.ndarray | None]], None],
    ) -> None:
        """One MULTI/EXEC on one shard, built by `build(pipe, old signatures of ids)`: all of it
        lands or none, and none if `fence` ran since the signatures were read."""
        token = self._tokens.get(collection)
        token_key = self._key(collection, shard, "token")
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.watch(self._key(collection, shard, "epoch"), token_key)
            if token is not None:
                seen = pipe.get(token_key)
                if seen is not None and int(seen) > token:
                    raise FencedOut(f"the write lease of {collection!r} passed to another replica")
            raw = pipe.hmget(self._key(collection, shard, "sig"), list(ids))
            old = [None if r is None else np.frombuffer(_bytes(r), dtype=np.uint32) for r in raw]
            pipe.multi()
            build(pipe, old)
            if token is not None:
                pipe.set(token_key, token)
            pipe.execute()

    def _shard_keys(self, collection: str, shard: int) -> ShardKeys:
        key = partial(self._key, collection, shard)
        return ShardKeys(
            key("epoch"), key("token"), key("sig"), key("vec"), key("meta"), key("dig"), key("b") + ":"
        )

    def _rewrite(self, collection: str, points: Sequence[StoredPoint], sigs: np.ndarray) -> None:
        """Writes points (float32 vectors) with their signatures: one atomic script per shard
        (services.index.stores.lsh_write), guarded like `_transact`."""
        token = self._tokens.get(collection)
        tables = sigs.shape[1]
        vectors = np.stack([p.vector for p in points]).astype(np.float16)
        for shard, positions in self._by_shard(collection, [p.id for p in points]).items():
            keys = self._shard_keys(collection, shard)
            epoch = self._redis.get(keys.epoch)  # the script refuses to run once it has moved
            rows = [
                (
                    points[i].id,
                    sigs[i].astype("<u4").tobytes(),
                    vectors[i].tobytes(),
                    json.dumps(points[i].metadata),
                    digest_of(points[i]),
                )
                for i in positions
            ]
            try:
                upsert_shard(self._upsert_script, keys, epoch, token, tables, rows)
            except LeasePassed:
                raise FencedOut(f"the write lease of {collection!r} passed to another replica") from None

    def upsert(self, collection: str, points: Sequence[StoredPoint]) -> None:
        if not points:
            return
        vectors = np.stack([p.vector for p in points]).astype(np.float32)
        as_float32 = [
            StoredPoint(p.id, v, p.metadata, p.digest) for p, v in zip(points, vectors, strict=True)
        ]
        self._rewrite(collection, as_float32, self.signatures(collection, vectors))
        state = self._state(collection)
        if state.centre is None and self.count(collection) >= state.params.full_scan_threshold:
            self._fit_centre(collection)

    def _fit_centre(self, collection: str) -> None:
        """Fixes the centre at the mean of what is stored and re-hashes those points, shard by
        shard, then records the centre. Until it is recorded every query scores the whole
        collection, so a crash part-way loses nothing: the next upsert fits it again."""
        points = list(self._iter_points(collection))
        centre = np.mean([p.vector for p in points], axis=0).astype(np.float32)
        state = self._state(collection)
        state.centre = centre
        try:
            self._rewrite(
                collection, points, self.signatures(collection, np.stack([p.vector for p in points]))
            )
            version = uuid.uuid4().hex  # other replicas' cached config (no centre) is stale now
            self._redis.hset(
                self._config_key(collection), mapping={"centre": centre.tobytes(), "version": version}
            )
            state.version = version
        except BaseException:
            state.centre = None
            raise

    def delete(self, collection: str, ids: Sequence[str]) -> None:
        for shard, positions in self._by_shard(collection, ids).items():
            shard_ids = [ids[i] for i in positions]

            def build(
                pipe: Any,
                old_sigs: list[np.ndarray | None],
                shard: int = shard,
                shard_ids: list[str] = shard_ids,
            ) -> None:
                for point_id, old in zip(shard_ids, old_sigs, strict=True):
                    if old is None:
                        continue
                    for table, bucket in enumerate(old):
                        pipe.srem(self._key(collection, shard, "b", table, bucket), point_id)
                    for field in ("vec", "sig", "meta", "dig"):
                        pipe.hdel(self._key(collection, shard, field), point_id)

            self._transact(collection, shard, shard_ids, build)

    # -- reads -------------------------------------------------------------------------------

    def _iter_points(self, collection: str) -> Iterator[StoredPoint]:
        for shard in self._shards(collection):
            metadata = self._redis.hgetall(self._key(collection, shard, "meta"))
            digests = self._redis.hgetall(self._key(collection, shard, "dig"))
            for key, raw in self._redis.hscan_iter(self._key(collection, shard, "vec"), count=1000):
                vector = np.frombuffer(_bytes(raw), dtype=np.float16).astype(np.float32)
                digest = digests.get(key)
                yield StoredPoint(
                    _text(key),
                    vector,
                    json.loads(metadata.get(key, b"{}")),
                    None if digest is None else _text(digest),
                )

    def _probe_keys(self, collection: str, shard: int, probed: list[list[int]]) -> list[str]:
        prefix = self._key(collection, shard, "b")
        return [f"{prefix}:{table}:{bucket}" for table, row in enumerate(probed) for bucket in row]

    def _candidates(self, collection: str, margins: np.ndarray, signature: np.ndarray) -> list[str] | None:
        """The ids in the query's probed buckets of every shard (all ids while uncentred).
        The config's version is read in the same round trip: None (and the cache dropped) if
        it moved since `margins` were computed."""
        state = self._state(collection)
        pipe = self._redis.pipeline(transaction=False)
        pipe.hget(self._config_key(collection), "version")
        if state.centre is None:  # small collection: score everything
            for shard in self._shards(collection):
                pipe.hkeys(self._key(collection, shard, "vec"))
        else:
            flips = probe_flips(np.abs(margins), state.params.probes)
            probed = (signature.astype(np.int64)[:, None] ^ flips).tolist()
            for shard in self._shards(collection):
                # One shard's buckets share a slot; redis-py's cluster pipeline refuses multi-key
                # commands by name, so it gets the raw command, routed by that slot.
                pipe.execute_command("SUNION", *self._probe_keys(collection, shard, probed))
        version, *found = pipe.execute()
        if _text(version or b"") != state.version:
            self.forget(collection)
            return None
        return [_text(c) for ids in found for c in ids]

    def search(
        self,
        collection: str,
        vector: np.ndarray,
        top_k: int,
        metadata_filter: MetadataFilter | None,
    ) -> LshResult:
        """Best `top_k` among the query's buckets (signature-ranked, then re-scored)."""
        for _ in range(2):  # another replica may move the config: once more with the new one
            state = self._state(collection)
            margins = self._margins(collection, vector[None, :])  # once: buckets, probes, ranking
            signature = _pack_sides(margins)[0]
            found = self._candidates(collection, margins[0], signature)
            if found is not None:
                break
        else:
            raise Unavailable(f"the LSH config of {collection!r} is changing; retry")
        candidates = found
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
        raw = self._hmget(collection, "meta", ids)
        return {i: json.loads(r) for i, r in zip(ids, raw, strict=True) if r is not None}

    def _closest_signatures(
        self, collection: str, query: np.ndarray, candidates: list[str], limit: int
    ) -> list[str]:
        """The `limit` candidates whose signatures differ from the query's in the fewest bits."""
        raw = self._hmget(collection, "sig", candidates)
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
        raw_vectors = self._hmget(collection, "vec", ids)
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
        vectors, metadata, digests = (self._hmget(collection, field, ids) for field in ("vec", "meta", "dig"))
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
        digests = self._hmget(collection, "dig", ids)
        signatures = self._hmget(collection, "sig", ids)  # presence, for points without a digest
        return {
            point_id: None if digest is None else _text(digest)
            for point_id, digest, signature in zip(ids, digests, signatures, strict=True)
            if digest is not None or signature is not None
        }

    def count(self, collection: str) -> int:
        pipe = self._redis.pipeline(transaction=False)
        for shard in self._shards(collection):
            pipe.hlen(self._key(collection, shard, "vec"))
        return int(sum(pipe.execute()))

    def iter_ids(self, collection: str, batch: int = 512) -> Iterator[list[str]]:
        """Every stored id, a batch at a time (HSCAN: ids removed meanwhile may still appear)."""
        # HSCAN's NOVALUES needs Redis 7.4; signatures are small, so read and drop them.
        ids: list[str] = []
        for shard in self._shards(collection):
            for key, _ in self._redis.hscan_iter(self._key(collection, shard, "sig"), count=batch):
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
