"""The index service's core: one write path over Qdrant and the LSH store, three search paths.

Vectors are stored and compared as unit vectors (cosine on every index). Writes go to Qdrant
first, then to the LSH store in one Redis transaction. If the LSH write fails, the Qdrant write
is undone (old points restored, new ones removed), so neither store is left half-written, and
the ids are handed to the repair (services.index.repair), which settles a transaction that
lands late; if even the undo fails, the collection is reconciled in full before its next write.
Searches by example and duplicate groups build on the same three search paths
(services.index.examples, services.index.duplicates).

Several replicas may serve one Qdrant server and one Redis: every write and repair of a
collection holds its lease in Redis (services.index.lease), whose grant tells whether this
replica's cached config of the collection is stale, and nothing else cached outlives a version
change or a miss. The HNSW graph is built once, by the Qdrant server's optimizer; an embedded
shard belongs to one process (services.index.stores.qdrant_edge), so it has one replica.
"""

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import redis

from imsearch.core.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from imsearch.core.index_kind import IndexKind
from imsearch.core.metrics import ServiceMetrics
from imsearch.core.validation import (
    MAX_TOP_K,
    validate_id,
    validate_ids,
    validate_name,
    validate_page,
)
from services.index.disk_guard import DiskGuard
from services.index.duplicates import DuplicateGroups, find_groups
from services.index.examples import Examples, ExampleStrategy, average_query, best_scores
from services.index.k_reciprocal import KReciprocal, reranked
from services.index.lease import CollectionLeases
from services.index.point_digest import point_digest
from services.index.query_expansion import QueryExpansion, expanded_query
from services.index.redis_connection import with_redis
from services.index.repair import AUDIT_BATCH, Audit, LshRepair
from services.index.stores.base import (
    QUANTIZATIONS,
    CollectionSpec,
    MetadataFilter,
    ScoredPoint,
    StoredPoint,
    VectorStore,
)
from services.index.stores.redis_lsh import FencedOut, RedisLshStore

log = logging.getLogger(__name__)

MAX_DIM = 65536
# Vectors arrive as protobuf repeated floats, lists or arrays; np.asarray takes them all.
VectorLike = Sequence[float] | np.ndarray
# (id, vector, metadata), or with a thumbnail JPEG as a fourth element.
NewPoint = tuple[str, VectorLike, dict[str, Any]] | tuple[str, VectorLike, dict[str, Any], bytes]
MAX_THUMBNAIL_BYTES = 64 * 1024


@dataclass(frozen=True)
class IndexParameters:
    """A new collection's own index parameters; 0 keeps the service's setting."""

    lsh_tables: int = 0
    lsh_bits: int = 0
    hnsw_m: int = 0
    hnsw_ef_construct: int = 0
    quantization: str = ""  # "" or "int8" (services.index.stores.base)

    def validate(self) -> None:
        if self.quantization not in QUANTIZATIONS:
            raise InvalidArgument(f"unknown quantization {self.quantization!r}")
        for name, (low, high) in PARAMETER_RANGES.items():
            value = getattr(self, name)
            if value and not low <= value <= high:
                raise InvalidArgument(
                    f"{name} must be between {low} and {high} (or 0 for the default), got {value}"
                )


PARAMETER_RANGES = {
    "lsh_tables": (1, 256),
    "lsh_bits": (1, 24),
    "hnsw_m": (4, 128),
    "hnsw_ef_construct": (8, 1024),
}


@dataclass
class CollectionStats:
    dim: int
    model: str
    points: int
    lsh_points: int
    hnsw_built: bool
    lsh_tables: int
    lsh_bits: int


# Near-duplicates: each point's this many nearest neighbours are compared with the threshold.
DUPLICATE_NEIGHBOURS = 10
MAX_DUPLICATE_GROUPS = 10_000
# Best-score search gathers this many times the hits wanted around each positive example.
BEST_SCORE_FANOUT = 4


@dataclass
class SearchOutcome:
    hits: list[ScoredPoint]
    candidates_scored: int  # vectors scored exactly
    candidates: int  # points looked at (0 for HNSW: unknown); LSH ranks them by signature first


class IndexEngine:
    def __init__(
        self,
        vectors: VectorStore,
        lsh: RedisLshStore,
        metrics: ServiceMetrics,
        optimize_min_points: int = 1000,
        disk_guard: DiskGuard | None = None,
        repair_interval_s: float = 1.0,
        leases: CollectionLeases | None = None,
    ) -> None:
        self._vectors = vectors
        self._disk_guard = disk_guard
        self._lsh = lsh
        self._metrics = metrics
        self._write_lock = threading.Lock()  # one writer thread here; the lease orders replicas
        self._leases = leases or CollectionLeases(lsh.client, lsh.collection_key)
        self._repair = LshRepair(vectors, lsh, self._exclusive, self._dim, repair_interval_s)
        self._optimize_min_points = optimize_min_points
        self._optimized_at: dict[str, int] = {}
        self._optimizing: set[str] = set()
        self._optimizer_threads: list[threading.Thread] = []
        # A collection's dimension and model are fixed at creation: read once here (a server
        # round trip per collection), then kept, so searches never ask the store again. Another
        # replica may create, drop or re-create one: a miss reads again, and so does a write
        # whose lease grant shows a new config version.
        self._specs: dict[str, CollectionSpec] = self._vectors.collections()
        for name in list(self._specs):
            with_redis(partial(self.reconcile, name))

    # -- helpers ----------------------------------------------------------------------------

    def spec(self, collection: str) -> CollectionSpec:
        spec = self._specs.get(collection) or self._reread_spec(collection)
        if spec is None:
            raise NotFound(f"collection {collection!r} does not exist")
        return spec

    def _reread_spec(self, collection: str) -> CollectionSpec | None:
        """The store's spec of the collection now (another replica may have changed it)."""
        validate_name("collection", collection)  # a bad name never reaches the store
        self._lsh.forget(collection)
        spec = self._vectors.collection_spec(collection)
        if spec is None:
            self._specs.pop(collection, None)
        else:
            self._specs[collection] = spec
        return spec

    @contextlib.contextmanager
    def _exclusive(self, collection: str) -> Iterator[None]:
        """Writes and repairs of `collection`: one thread of this process, and one replica at a
        time, whose LSH writes carry the lease's fencing token."""
        with self._write_lock, self._leases.hold(collection) as grant:
            if grant.config_version != self._lsh.cached_version(collection):
                self._reread_spec(collection)  # the centre was fixed or the collection is new
            with self._lsh.fenced(collection, grant.token):
                yield

    def _dim(self, collection: str) -> int:
        return self.spec(collection).dim

    def _dim_for(self, collection: str, given: int) -> int:
        """The dimension, read again from the store if `given` differs (the collection may
        have been re-created by another replica)."""
        dim = self._dim(collection)
        if given != dim:
            spec = self._reread_spec(collection)
            dim = spec.dim if spec is not None else dim
        return dim

    def check_model(self, collection: str, model: str) -> None:
        """Refuses vectors of `model` for a collection bound to another ("" checks nothing)."""
        bound = self.spec(collection).model
        if model and bound and model != bound:
            raise FailedPrecondition(
                f"collection {collection!r} holds embeddings of model {bound!r}, not {model!r}"
            )

    def _check_vector(self, collection: str, values: VectorLike, what: str) -> np.ndarray:
        dim = self._dim_for(collection, len(values))
        if len(values) != dim:
            raise InvalidArgument(f"{what} has dimension {len(values)}, collection {collection!r} has {dim}")
        vector = np.asarray(values, dtype=np.float32)
        if not np.all(np.isfinite(vector)):
            raise InvalidArgument(f"{what} has NaN or infinite values")
        wide = vector.astype(np.float64)  # float64: the norm of large values does not overflow
        norm = float(np.linalg.norm(wide))
        if norm == 0.0:
            raise InvalidArgument(f"{what} is all zeros (cosine is undefined)")
        # Every index ranks by cosine: store and query unit vectors, so LSH's dot products are
        # cosines too (raw vectors once gave LSH scores of 3.45 and inf).
        unit: np.ndarray = (wide / norm).astype(np.float32)
        return unit

    # -- collections ------------------------------------------------------------------------

    def ensure_collection(
        self, collection: str, dim: int, model: str = "", params: IndexParameters = IndexParameters()
    ) -> bool:
        """Creates the collection unless it exists with this dimension (and model, if both
        name one); returns whether it was created. `params` apply to a new collection only."""
        validate_name("collection", collection)
        if model:
            validate_name("model", model)
        params.validate()
        if not 1 <= dim <= MAX_DIM:
            raise InvalidArgument(f"dim must be between 1 and {MAX_DIM}, got {dim}")
        with self._exclusive(collection):
            existing = self._specs.get(collection)
            if existing is not None:
                if existing.dim != dim:
                    raise FailedPrecondition(
                        f"collection {collection!r} exists with dimension {existing.dim}, not {dim}"
                    )
                self.check_model(collection, model)
                return False
            self._check_disk("creating a collection")
            spec = CollectionSpec(dim, model, params.hnsw_m, params.hnsw_ef_construct, params.quantization)
            with_redis(
                lambda: self._lsh.ensure_collection(collection, dim, params.lsh_tables, params.lsh_bits)
            )
            self._vectors.create_collection(collection, spec)
            self._specs[collection] = spec
            return True

    def list_collections(self) -> list[str]:
        self._specs = self._vectors.collections()  # with what other replicas made or dropped
        return sorted(self._specs)

    def drop_collection(self, collection: str) -> bool:
        """Removes the collection from both stores: the LSH store first, so a crash in between
        leaves a Qdrant collection that start-up reconciles whole, never LSH keys of nothing."""
        validate_name("collection", collection)
        self.wait_for_optimize()  # no HNSW build runs on a shard being removed
        with self._exclusive(collection):
            if collection not in self._specs:
                return False
            with_redis(lambda: self._lsh.drop_collection(collection))
            del self._specs[collection]
            self._vectors.drop_collection(collection)
            self._repair.forget(collection)
            self._optimized_at.pop(collection, None)
            for store in ("qdrant", IndexKind.LSH):
                with contextlib.suppress(KeyError):  # never recorded
                    self._metrics.index_points.remove(collection, store)
            return True

    def info(self, collection: str) -> CollectionStats:
        dim = self._dim(collection)
        points, lsh_points = self._record_sizes(collection)
        params = with_redis(lambda: self._lsh.params(collection))
        return CollectionStats(
            dim,
            self.spec(collection).model,
            points,
            lsh_points,
            self._vectors.hnsw_built(collection),
            params.tables,
            params.bits,
        )

    def _record_sizes(self, collection: str) -> tuple[int, int]:
        points = self._vectors.count(collection)
        lsh_points = with_redis(lambda: self._lsh.count(collection))
        self._metrics.index_points.labels(collection, "qdrant").set(points)
        self._metrics.index_points.labels(collection, IndexKind.LSH).set(lsh_points)
        return points, lsh_points

    # -- writes -----------------------------------------------------------------------------

    def _check_disk(self, what: str) -> None:
        if self._disk_guard is not None:
            self._disk_guard.check(what)

    def upsert(self, collection: str, items: Sequence[NewPoint]) -> int:
        """Points as (id, vector, metadata) or (id, vector, metadata, thumbnail JPEG)."""
        if not items:
            raise InvalidArgument("no points given")
        self._check_disk("add")
        validate_ids([item[0] for item in items])
        seen: set[str] = set()
        points = []
        for item in items:
            point_id, values, metadata = item[:3]
            thumbnail = item[3] if len(item) > 3 else b""
            validate_id(point_id)
            if point_id in seen:
                raise InvalidArgument(f"id {point_id!r} appears twice in one request")
            seen.add(point_id)
            if len(thumbnail) > MAX_THUMBNAIL_BYTES:
                raise InvalidArgument(
                    f"thumbnail of {point_id!r} is {len(thumbnail):,} bytes, over {MAX_THUMBNAIL_BYTES:,}"
                )
            unit = self._check_vector(collection, values, f"vector of {point_id!r}")
            points.append(StoredPoint(point_id, unit, metadata, point_digest(unit, metadata), thumbnail))
        ids = [p.id for p in points]
        with self._exclusive(collection):
            self._repair.settle_before_write(collection)
            previous = self._vectors.retrieve(collection, ids)
            self._vectors.upsert(collection, points)
            self._write_lsh(collection, lambda: self._lsh.upsert(collection, points), previous, ids)
            self._record_sizes(collection)
        self._maybe_optimize(collection)
        return len(points)

    def delete(self, collection: str, ids: Sequence[str]) -> int:
        validate_ids(ids)
        with self._exclusive(collection):
            self._repair.settle_before_write(collection)
            previous = self._vectors.retrieve(collection, ids)
            self._vectors.delete(collection, ids)
            self._write_lsh(collection, lambda: self._lsh.delete(collection, ids), previous, ids)
            self._record_sizes(collection)
        return len(previous)

    def _write_lsh(
        self, collection: str, write: Callable[[], None], previous: list[StoredPoint], ids: Sequence[str]
    ) -> None:
        """The LSH half of a write; on failure Qdrant is put back and the ids are held in doubt."""
        try:
            with_redis(write)
        except FencedOut:
            # Our lease ran out mid-write and another replica writes now: putting Qdrant back
            # could undo its writes, so the collection is reconciled in full under a new lease.
            self._repair.mark_for_repair(collection)
            raise Unavailable(f"the write lease of {collection!r} ran out; retry") from None
        except Exception:
            self._undo(collection, previous, ids)
            self._repair.hold_in_doubt(collection, ids)
            raise

    def _undo(self, collection: str, previous: list[StoredPoint], ids: Sequence[str]) -> None:
        """Puts Qdrant back as it was before a write whose LSH half failed."""
        try:
            restored = {p.id for p in previous}
            added = [i for i in ids if i not in restored]
            if added:
                self._vectors.delete(collection, added)
            if previous:
                self._vectors.upsert(collection, previous)
        except Exception:
            log.exception("could not undo a write to %s; marking it for repair", collection)
            self._repair.mark_for_repair(collection)

    # -- repair ---------------------------------------------------------------------------

    def in_doubt(self) -> int:
        """Points whose failed LSH write is not settled yet (0 when both stores agree)."""
        return self._repair.in_doubt()

    def reconcile(self, collection: str) -> Audit:
        self._dim(collection)
        with self._exclusive(collection):
            return self._repair.reconcile(collection)

    def verify(self, collection: str, repair: bool = False) -> Audit:
        self._dim(collection)
        return self._repair.verify(collection, repair)

    def _maybe_optimize(self, collection: str) -> None:
        """Rebuilds the HNSW graph in the background each time the collection doubles."""
        count = self._vectors.count(collection)
        threshold = max(self._optimize_min_points, 2 * self._optimized_at.get(collection, 0))
        if count < threshold or collection in self._optimizing:
            return
        self._optimizing.add(collection)

        def run() -> None:
            try:
                self.optimize(collection)
            except Exception:
                log.exception("building the HNSW graph of %s failed", collection)
            finally:
                self._optimizing.discard(collection)

        thread = threading.Thread(target=run, name=f"optimize-{collection}", daemon=True)
        self._optimizer_threads.append(thread)
        thread.start()

    def wait_for_optimize(self) -> None:
        """Blocks until background HNSW builds finish (for tests, benchmarks and shutdown)."""
        while self._optimizer_threads:
            self._optimizer_threads.pop().join()

    def optimize(self, collection: str) -> None:
        count = self._vectors.count(collection)
        with self._metrics.stage("optimize"):
            self._vectors.optimize(collection)
        self._optimized_at[collection] = count

    # -- reads ------------------------------------------------------------------------------

    def search(
        self,
        collection: str,
        values: VectorLike,
        top_k: int,
        index: IndexKind,
        metadata_filter: MetadataFilter | None,
        with_vectors: bool,
        offset: int = 0,
        min_score: float | None = None,
        expansion: QueryExpansion | None = None,
        k_reciprocal: KReciprocal | None = None,
    ) -> SearchOutcome:
        validate_page(top_k, offset, min_score)
        query = self._check_vector(collection, values, "query vector")
        if expansion is not None:
            expansion.validate()
            query = self._expand(collection, query, index, metadata_filter, expansion)
        if k_reciprocal is None:
            outcome = self._nearest(collection, query, top_k + offset, index, metadata_filter, with_vectors)
        else:
            k_reciprocal.validate(top_k + offset)
            outcome = self._nearest(collection, query, k_reciprocal.candidates, index, metadata_filter, True)
            outcome.hits = self._k_reciprocal(query, outcome.hits, k_reciprocal, with_vectors)
        outcome.hits = _page(outcome.hits, offset, top_k, min_score, leave_out=set())
        return outcome

    @staticmethod
    def _k_reciprocal(
        query: np.ndarray, hits: list[ScoredPoint], params: KReciprocal, with_vectors: bool
    ) -> list[ScoredPoint]:
        """The hits reordered (services.index.k_reciprocal), scored 1 - the final distance."""
        if len(hits) > 1:
            order, scores = reranked(
                query, np.stack([h.vector for h in hits if h.vector is not None]), params
            )
            hits = [hits[i] for i in order]
            for hit, score in zip(hits, scores, strict=True):
                hit.score = float(score)
        if not with_vectors:
            for hit in hits:
                hit.vector = None
        return hits

    def search_by_example(
        self,
        collection: str,
        examples: Examples,
        top_k: int,
        index: IndexKind,
        metadata_filter: MetadataFilter | None,
        with_vectors: bool,
        offset: int = 0,
        min_score: float | None = None,
    ) -> SearchOutcome:
        """Qdrant's recommend on every index (services.index.examples); the examples given by
        id are left out of the results."""
        validate_page(top_k, offset, min_score)
        examples.validate()
        positives = self._example_matrix(
            collection, examples.positive_ids, examples.positive_vectors, "positive"
        )
        negatives = self._example_matrix(
            collection, examples.negative_ids, examples.negative_vectors, "negative"
        )
        wanted = min(MAX_TOP_K, top_k + offset + len(examples.ids))
        if examples.strategy is ExampleStrategy.AVERAGE_VECTOR:
            query = average_query(positives, negatives)
            outcome = self._nearest(collection, query, wanted, index, metadata_filter, with_vectors)
        else:
            outcome = self._best_score(
                collection, positives, negatives, wanted, index, metadata_filter, with_vectors
            )
        outcome.hits = _page(outcome.hits, offset, top_k, min_score, leave_out=examples.ids)
        return outcome

    def _expand(
        self,
        collection: str,
        query: np.ndarray,
        index: IndexKind,
        metadata_filter: MetadataFilter | None,
        expansion: QueryExpansion,
    ) -> np.ndarray:
        """The query moved towards its nearest neighbours on the same index and filter."""
        with self._metrics.stage("query_expansion"):
            first = self._nearest(collection, query, expansion.neighbours, index, metadata_filter, True)
            hits = [h for h in first.hits if h.vector is not None]
            if not hits:
                return query
            neighbours = np.stack([np.asarray(h.vector, dtype=np.float32) for h in hits])
            scores = np.array([h.score for h in hits])
            return expanded_query(query, neighbours, scores, expansion.alpha)

    def find_duplicates(self, collection: str, min_score: float, max_groups: int) -> DuplicateGroups:
        """Groups of points with cosine >= min_score to another of the group (HNSW neighbours)."""
        if not 0.5 <= min_score <= 1.0:
            raise InvalidArgument(f"min_score for duplicates must be between 0.5 and 1, got {min_score}")
        if not 1 <= max_groups <= MAX_DUPLICATE_GROUPS:
            raise InvalidArgument(
                f"max_groups must be between 1 and {MAX_DUPLICATE_GROUPS}, got {max_groups}"
            )
        self._dim(collection)

        def neighbours(point: StoredPoint) -> list[ScoredPoint]:
            return self._vectors.search(collection, point.vector, DUPLICATE_NEIGHBOURS, None, False, False)

        batches = self._vectors.iter_points(collection, AUDIT_BATCH, with_vectors=True)
        with self._metrics.stage("find_duplicates"):
            return find_groups(batches, neighbours, min_score, max_groups)

    def _example_matrix(
        self, collection: str, ids: list[str], vectors: list[np.ndarray], kind: str
    ) -> np.ndarray:
        """Unit vectors of the examples: those given by id read from Qdrant (NOT_FOUND if one
        is not stored), those given as vectors checked like any query."""
        stored = {p.id: p.vector for p in self._vectors.retrieve(collection, ids)} if ids else {}
        missing = [i for i in ids if i not in stored]
        if missing:
            raise NotFound(f"{kind} example {missing[0]!r} is not in collection {collection!r}")
        rows = [np.asarray(stored[i], dtype=np.float32) for i in ids]
        rows += [
            self._check_vector(collection, v, f"{kind} example vector {n}") for n, v in enumerate(vectors)
        ]
        if not rows:
            return np.zeros((0, self._dim(collection)), dtype=np.float32)
        matrix = np.stack(rows)
        unit: np.ndarray = matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
        return unit

    def _best_score(
        self,
        collection: str,
        positives: np.ndarray,
        negatives: np.ndarray,
        wanted: int,
        index: IndexKind,
        metadata_filter: MetadataFilter | None,
        with_vectors: bool,
    ) -> SearchOutcome:
        """Candidates from a search around each positive (BEST_SCORE_FANOUT x the hits wanted),
        each scored against every example from its stored float32 vector."""
        fetch = min(MAX_TOP_K, wanted * BEST_SCORE_FANOUT)
        ids: dict[str, None] = {}
        looked_at = 0
        for positive in positives:
            around = self._nearest(collection, positive, fetch, index, metadata_filter, with_vectors=False)
            ids.update(dict.fromkeys(h.id for h in around.hits))
            looked_at += around.candidates
        points = self._vectors.retrieve(collection, list(ids))
        if not points:
            return SearchOutcome([], 0, looked_at)
        matrix = np.stack([p.vector for p in points]).astype(np.float32)
        scores = best_scores(matrix, positives, negatives)
        order = np.argsort(-scores, kind="stable")[:wanted]
        hits = [
            ScoredPoint(
                points[i].id, float(scores[i]), points[i].metadata, points[i].vector if with_vectors else None
            )
            for i in order
        ]
        return SearchOutcome(hits, len(points), looked_at)

    def _nearest(
        self,
        collection: str,
        query: np.ndarray,
        top_k: int,
        index: IndexKind,
        metadata_filter: MetadataFilter | None,
        with_vectors: bool,
    ) -> SearchOutcome:
        with self._metrics.stage(f"search_{index}"):
            if index is IndexKind.LSH:
                result = with_redis(lambda: self._lsh.search(collection, query, top_k, metadata_filter))
                hits = result.hits
                if with_vectors and hits:
                    stored = {
                        p.id: p.vector for p in self._vectors.retrieve(collection, [h.id for h in hits])
                    }
                    hits = [h for h in hits if h.id in stored]
                    for hit in hits:
                        hit.vector = stored[hit.id]
                return SearchOutcome(hits, result.rescored, result.candidates)
            exact = index is IndexKind.EXACT
            hits = self._vectors.search(collection, query, top_k, metadata_filter, exact, with_vectors)
            scored = self._vectors.count(collection) if exact else 0
            return SearchOutcome(hits, scored, scored)

    def health_problem(self) -> str | None:
        try:
            self._lsh.ping()
        except redis.exceptions.RedisError as exc:
            return f"LSH store (Redis) unreachable: {exc}"
        try:
            self._vectors.collections()
        except Exception as exc:
            return f"vector store (Qdrant) unreachable: {exc}"
        return None

    def close(self) -> None:
        self._repair.close()
        self._leases.close()
        self.wait_for_optimize()
        with self._write_lock:
            self._vectors.close()

    def get_vectors(self, collection: str, ids: Sequence[str]) -> list[StoredPoint]:
        validate_ids(ids)
        self._dim(collection)
        return self._vectors.retrieve(collection, ids)

    def attach_thumbnails(self, collection: str, hits: list[ScoredPoint]) -> None:
        """Fills each hit's thumbnail from the vector store (one read of the page's points;
        searches themselves never read thumbnails)."""
        if not hits:
            return
        stored = {p.id: p.thumbnail for p in self._vectors.retrieve(collection, [h.id for h in hits], False)}
        for hit in hits:
            hit.thumbnail = stored.get(hit.id, b"")

    def stored_ids(self, collection: str, ids: Sequence[str]) -> list[str]:
        """Those of `ids` the collection holds, in request order (no vectors read)."""
        validate_ids(ids)
        self._dim(collection)
        return [p.id for p in self._vectors.retrieve(collection, ids, with_vectors=False)]


def _page(
    hits: list[ScoredPoint], offset: int, top_k: int, min_score: float | None, leave_out: set[str]
) -> list[ScoredPoint]:
    """Best first: the examples left out, then `offset` skipped, `top_k` kept, and those under
    `min_score` dropped."""
    kept = [h for h in hits if h.id not in leave_out][offset : offset + top_k]
    return kept if min_score is None else [h for h in kept if h.score >= min_score]
