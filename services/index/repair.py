"""Keeping the LSH store equal to Qdrant, the source of truth: ids in doubt after a failed
write, full reconciles, and audits.

A failed LSH write may still land later (Redis stalled past our timeout, then ran the
transaction we gave up on), so its ids are held "in doubt" and settled against Qdrant by a
background repairer and before the next write to their collection; settling first fences the
collection (services.index.stores.redis_lsh), so such a late transaction aborts. A collection
whose undo failed is reconciled in full. Every point carries a digest in both stores
(services.index.point_digest): reconciling compares digests a batch at a time without reading
vectors; `verify` compares the content too.
"""

import logging
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

import numpy as np

from services.index.point_digest import digest_of, point_digest
from services.index.redis_connection import with_redis
from services.index.stores.base import StoredPoint, VectorStore
from services.index.stores.redis_lsh import RedisLshStore

log = logging.getLogger(__name__)


@dataclass
class Audit:
    points: int = 0
    lsh_points: int = 0
    missing_in_lsh: int = 0
    extra_in_lsh: int = 0
    diverged: int = 0
    undigested: int = 0  # stored before digests existed (given one on repair, not a difference)
    repaired: int = 0
    sample_ids: list[str] = field(default_factory=list)

    @property
    def consistent(self) -> bool:
        return not (self.missing_in_lsh or self.extra_in_lsh or self.diverged)

    def note(self, point_id: str) -> None:
        if len(self.sample_ids) < AUDIT_SAMPLE:
            self.sample_ids.append(point_id)


AUDIT_SAMPLE = 20
AUDIT_BATCH = 512


class LshRepair:
    def __init__(
        self,
        vectors: VectorStore,
        lsh: RedisLshStore,
        exclusive: Callable[[str], AbstractContextManager[None]],
        dim_of: Callable[[str], int],
        interval_s: float = 1.0,
    ) -> None:
        """`exclusive(collection)` is the engine's write lease: repairs never interleave with a
        write, on this replica or another."""
        self._vectors, self._lsh, self._exclusive, self._dim_of = vectors, lsh, exclusive, dim_of
        self._needs_repair: set[str] = set()  # collections to reconcile in full
        self._in_doubt: dict[str, set[str]] = {}  # ids whose LSH write failed: it may still land
        self._doubt_lock = threading.Lock()
        self._repairer: threading.Thread | None = None
        self._repair_interval_s = interval_s
        self._closed = threading.Event()

    def hold_in_doubt(self, collection: str, ids: Sequence[str]) -> None:
        with self._doubt_lock:
            self._in_doubt.setdefault(collection, set()).update(ids)
        self._start_repairer()

    def mark_for_repair(self, collection: str) -> None:
        self._needs_repair.add(collection)

    def forget(self, collection: str) -> None:
        """The collection is gone: nothing of it is left to repair."""
        with self._doubt_lock:
            self._in_doubt.pop(collection, None)
        self._needs_repair.discard(collection)

    def close(self) -> None:
        self._closed.set()
        if self._repairer is not None:
            self._repairer.join()

    def settle_before_write(self, collection: str) -> None:
        """Under the write lock: nothing written on top of a store that may differ."""
        if collection in self._needs_repair:
            with_redis(lambda: self.reconcile(collection))
        with_redis(lambda: self._settle(collection))

    def _settle(self, collection: str) -> int:
        """Makes the LSH store agree with Qdrant on the ids in doubt; returns how many it fixed."""
        with self._doubt_lock:
            ids = sorted(self._in_doubt.get(collection, ()))
            if not ids:
                self._in_doubt.pop(collection, None)
                return 0
        self._lsh.fence(collection)  # a failed write that Redis has not run yet now never will
        fixed = 0
        for start in range(0, len(ids), AUDIT_BATCH):
            batch = ids[start : start + AUDIT_BATCH]
            truth = {p.id: p for p in self._vectors.retrieve(collection, batch)}
            held = self._lsh.digests(collection, batch)
            stale = [i for i in batch if i in held and i not in truth]
            wrong = [p for i, p in truth.items() if held.get(i, "") != digest_of(p)]
            if stale:
                self._lsh.delete(collection, stale)
            if wrong:
                self._lsh.upsert(collection, wrong)
            fixed += len(stale) + len(wrong)
            with self._doubt_lock:
                left = self._in_doubt[collection]
                left.difference_update(batch)
                if not left:
                    del self._in_doubt[collection]
        if fixed:
            log.warning("settled %d point(s) of %s whose LSH write had failed", fixed, collection)
        return fixed

    def _start_repairer(self) -> None:  # under no lock
        with self._doubt_lock:
            if self._repairer is not None and self._repairer.is_alive():
                return
            self._repairer = threading.Thread(target=self._repair_loop, name="lsh-repairer", daemon=True)
            self._repairer.start()

    def _repair_loop(self) -> None:
        """Settles ids in doubt as soon as Redis answers again, so no restart is needed."""
        while not self._closed.wait(self._repair_interval_s):
            with self._doubt_lock:
                pending = list(self._in_doubt)
            if not pending:
                return
            for collection in pending:
                try:
                    with self._exclusive(collection):
                        self._settle(collection)
                except Exception as exc:  # Redis still away: try again on the next round
                    log.info("LSH store of %s not settled yet: %s", collection, exc)

    def in_doubt(self) -> int:
        """Points whose failed LSH write is not settled yet (0 when both stores agree)."""
        with self._doubt_lock:
            return sum(map(len, self._in_doubt.values()))

    def reconcile(self, collection: str) -> Audit:
        """Makes the LSH store hold exactly Qdrant's points by comparing digests (no vectors
        read but those rewritten); points stored before digests existed get one in both."""
        self._lsh.ensure_collection(collection, self._dim_of(collection))
        audit = self._scan(collection, repair=True, deep=False)
        if audit.repaired:
            log.warning("reconciled the LSH store of %s with Qdrant: %s", collection, audit)
        return audit

    def verify(self, collection: str, repair: bool = False) -> Audit:
        """Compares the two stores point by point (digests and content), in batches; with
        `repair`, rewrites the LSH store from Qdrant where they differ."""
        with self._exclusive(collection):  # a consistent view: no write lands mid-audit
            return with_redis(lambda: self._scan(collection, repair, deep=True))

    def _scan(self, collection: str, repair: bool, deep: bool) -> Audit:
        """One pass over Qdrant, then one over the LSH ids, a batch at a time: memory holds a
        batch of points, never the collection."""
        if repair:
            self._lsh.fence(collection)
        audit = Audit(lsh_points=self._lsh.count(collection))
        for batch in self._vectors.iter_points(collection, AUDIT_BATCH, with_vectors=deep):
            audit.points += len(batch)
            wrong, undigested = self._compare(collection, batch, deep, audit)
            audit.undigested += len(undigested)
            if repair and (wrong or undigested):
                self._rewrite(collection, wrong, undigested, have_vectors=deep)
                audit.repaired += len(wrong)
        for ids in self._lsh.iter_ids(collection, AUDIT_BATCH):
            present = {p.id for p in self._vectors.retrieve(collection, ids, with_vectors=False)}
            extra = [i for i in ids if i not in present]
            audit.extra_in_lsh += len(extra)
            for point_id in extra:
                audit.note(point_id)
            if repair and extra:
                self._lsh.delete(collection, extra)
                audit.repaired += len(extra)
        if repair:
            self._needs_repair.discard(collection)
        if not audit.consistent:
            log.warning("audit of %s: %s", collection, audit)
        return audit

    def _compare(
        self, collection: str, batch: list[StoredPoint], deep: bool, audit: Audit
    ) -> tuple[list[StoredPoint], list[StoredPoint]]:
        """Qdrant's points that the LSH store lacks or holds otherwise, and those with no digest."""
        ids = [p.id for p in batch]
        copies = self._lsh.stored(collection, ids) if deep else {}
        held = {i: c.digest for i, c in copies.items()} if deep else self._lsh.digests(collection, ids)
        wrong, undigested = [], []
        for point in batch:
            if point.digest is None:
                undigested.append(point)
            if point.id not in held:
                audit.missing_in_lsh += 1
            else:
                # A point without a digest has nothing to compare it with: only its content tells.
                digest_agrees = point.digest is None or held[point.id] == point.digest
                if digest_agrees and (not deep or _same_content(point, copies[point.id])):
                    continue
                audit.diverged += 1
            audit.note(point.id)
            wrong.append(point)
        return wrong, undigested

    def _rewrite(
        self, collection: str, wrong: list[StoredPoint], undigested: list[StoredPoint], have_vectors: bool
    ) -> None:
        """Copies Qdrant's version of `wrong` to the LSH store; gives `undigested` points (stored
        before digests, and before typed match keywords) both in both stores."""
        ids = list(dict.fromkeys(p.id for p in [*wrong, *undigested]))
        points = (
            {p.id: p for p in [*wrong, *undigested]}
            if have_vectors
            else {p.id: p for p in self._vectors.retrieve(collection, ids)}
        )
        backfill = [points[p.id] for p in undigested if p.id in points]
        for point in backfill:
            point.digest = point_digest(point.vector, point.metadata)
        if backfill:
            self._vectors.upsert(collection, backfill)  # the payload gains digest and match keywords
        self._lsh.upsert(collection, [points[i] for i in ids if i in points])


def _same_content(point: StoredPoint, copy: StoredPoint) -> bool:
    """The LSH store keeps float16 copies: equal within float16 rounding, metadata exactly."""
    if copy.vector.shape != point.vector.shape or copy.metadata != point.metadata:
        return False
    return bool(np.allclose(copy.vector.astype(np.float32), point.vector, rtol=1e-3, atol=1e-3))
