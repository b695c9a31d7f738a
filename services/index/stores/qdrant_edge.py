"""Embedded Qdrant: the real engine in-process (qdrant-edge-py), one on-disk shard per collection.

Edge builds the HNSW graph only when `optimize()` runs; the index service calls it as the
collection grows (see `services.index.engine`).
"""

import fcntl
import json
import logging
import os
import shutil
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

import numpy as np
import qdrant_edge as qe

from imsearch.core.errors import FailedPrecondition, InvalidArgument, NotFound
from imsearch.core.validation import is_valid_name, validate_name
from services.index.stores.base import (
    INT8,
    OVERSAMPLING,
    CollectionSpec,
    MetadataFilter,
    ScoredPoint,
    StoredPoint,
)
from services.index.stores.qdrant_payload import (
    MATCH_KEY,
    SEARCH_PAYLOAD,
    Lowered,
    in_request_order,
    lower,
    payload_for,
    point_uuid,
    scored_point,
    stored_point,
)

log = logging.getLogger(__name__)

# Beside the engine's own edge_config.json in each shard directory: what the index records of
# a collection (its model) that the engine has no place for.
SPEC_FILE = "imsearch-collection.json"


def _edge_condition(lowered: Lowered) -> qe.FieldCondition:
    if lowered.range is not None:
        bounds = lowered.range
        return qe.FieldCondition(
            key=lowered.key, range=qe.RangeFloat(gte=bounds.gte, gt=bounds.gt, lte=bounds.lte, lt=bounds.lt)
        )
    if len(lowered.tokens) == 1:
        return qe.FieldCondition(key=lowered.key, match=qe.MatchValue(lowered.tokens[0]))
    return qe.FieldCondition(key=lowered.key, match=qe.MatchAny(list(lowered.tokens)))


def _edge_filter(metadata_filter: MetadataFilter | None) -> qe.Filter | None:
    if not metadata_filter:
        return None
    lowered = lower(metadata_filter)
    return qe.Filter(
        must=[_edge_condition(c) for c in lowered.must] or None,
        should=[_edge_condition(c) for c in lowered.should] or None,
        must_not=[_edge_condition(c) for c in lowered.must_not] or None,
    )


class QdrantEdgeStore:
    def __init__(
        self,
        root: Path,
        hnsw_m: int = 16,
        hnsw_ef_construct: int = 128,
        hnsw_ef: int = 128,
        full_scan_threshold_kb: int = 1000,
    ) -> None:
        self._root = root
        self._root.mkdir(parents=True, exist_ok=True)
        self._dir_lock = _lock_directory(root)
        self._hnsw = qe.HnswIndexConfig(
            m=hnsw_m, ef_construct=hnsw_ef_construct, full_scan_threshold=full_scan_threshold_kb
        )
        self._hnsw_ef = hnsw_ef
        self._lock = threading.Lock()
        self._shards: dict[str, qe.EdgeShard] = {}
        self._specs: dict[str, CollectionSpec] = {}
        for path in sorted(p for p in root.iterdir() if p.is_dir()):
            if not is_valid_name(path.name):
                log.warning("ignoring %s: not a collection name", path)
                continue
            try:
                shard = qe.EdgeShard.load(str(path))
                spec = read_spec(path)
            except Exception:  # never delete a shard we cannot read: leave it for a person
                log.exception("ignoring shard %s: it does not load", path)
                continue
            self._shards[path.name] = shard
            self._specs[path.name] = spec

    def _config(self, spec: CollectionSpec) -> qe.EdgeConfig:
        hnsw = self._hnsw
        if spec.hnsw_m or spec.hnsw_ef_construct:
            hnsw = qe.HnswIndexConfig(
                m=spec.hnsw_m or self._hnsw.m,
                ef_construct=spec.hnsw_ef_construct or self._hnsw.ef_construct,
                full_scan_threshold=self._hnsw.full_scan_threshold,
            )
        quantization = (
            qe.ScalarQuantizationConfig(type=qe.ScalarType.Int8, quantile=0.99, always_ram=True)
            if spec.quantization == INT8
            else None
        )
        return qe.EdgeConfig(
            vectors=qe.EdgeVectorParams(size=spec.dim, distance=qe.Distance.Cosine),
            hnsw_config=hnsw,
            quantization_config=quantization,
            # The engine decides *when* to build (see IndexEngine._maybe_optimize), so any
            # segment over 1 KB gets its HNSW graph when optimize() runs.
            optimizers=qe.EdgeOptimizersConfig(indexing_threshold=1, default_segment_number=1),
        )

    def collections(self) -> dict[str, CollectionSpec]:
        return dict(self._specs)

    def collection_spec(self, name: str) -> CollectionSpec | None:
        return self._specs.get(name)

    def create_collection(self, name: str, spec: CollectionSpec) -> None:
        with self._lock:
            if name in self._shards:
                return
            path = self._shard_path(name)
            if path.exists():  # a shard that did not load at start: never delete it
                raise FailedPrecondition(
                    f"collection {name!r} has a shard directory that did not load; see the index log"
                )
            shard = qe.EdgeShard.create(str(path), self._config(spec))
            # Every equals / any_of condition matches this keyword field: index it.
            shard.update(qe.UpdateOperation.create_field_index(MATCH_KEY, qe.KeywordIndexParams()))
            write_spec(path, spec)
            self._shards[name], self._specs[name] = shard, spec

    def drop_collection(self, name: str) -> bool:
        with self._lock:
            shard = self._shards.pop(name, None)
            if shard is None:
                return False
            del self._specs[name]
            shard.close()
            # A search still holding the shard reads its files through open handles; the
            # directory goes only after the shard is out of the map, so nothing new opens it.
            shutil.rmtree(self._shard_path(name))
            return True

    def _shard_path(self, name: str) -> Path:
        path = self._root / validate_name("collection", name)
        if path.resolve().parent != self._root.resolve():  # belt and braces: inside the root only
            raise InvalidArgument(f"collection name {name!r} is invalid")
        return path

    def _shard(self, name: str) -> qe.EdgeShard:
        shard = self._shards.get(name)
        if shard is None:
            raise NotFound(f"collection {name!r} does not exist")
        return shard

    def upsert(self, collection: str, points: Sequence[StoredPoint]) -> None:
        self._shard(collection).update(
            qe.UpdateOperation.upsert_points(
                [qe.Point(point_uuid(p.id), p.vector.tolist(), payload_for(p)) for p in points]
            )
        )

    def delete(self, collection: str, ids: Sequence[str]) -> None:
        self._shard(collection).update(qe.UpdateOperation.delete_points([point_uuid(i) for i in ids]))

    def retrieve(self, collection: str, ids: Sequence[str], with_vectors: bool = True) -> list[StoredPoint]:
        records = self._shard(collection).retrieve(
            [point_uuid(i) for i in ids], with_payload=True, with_vector=with_vectors
        )
        return in_request_order(records, ids)

    def search(
        self,
        collection: str,
        vector: np.ndarray,
        top_k: int,
        metadata_filter: MetadataFilter | None,
        exact: bool,
        with_vectors: bool,
    ) -> list[ScoredPoint]:
        hits = self._shard(collection).search(
            qe.SearchRequest(
                query=qe.Query.Nearest(vector.tolist()),
                limit=top_k,
                filter=_edge_filter(metadata_filter),
                params=qe.SearchParams(
                    hnsw_ef=self._hnsw_ef,
                    exact=exact,
                    # No effect on a float32 collection; exact search reads the originals only.
                    quantization=qe.QuantizationSearchParams(
                        ignore=exact, rescore=True, oversampling=OVERSAMPLING
                    ),
                ),
                with_payload=SEARCH_PAYLOAD,
                with_vector=with_vectors,
            )
        )
        return [scored_point(hit, with_vectors) for hit in hits]

    def count(self, collection: str) -> int:
        return int(self._shard(collection).count(qe.CountRequest(exact=True)))

    def iter_points(
        self, collection: str, batch: int = 512, with_vectors: bool = True
    ) -> Iterator[list[StoredPoint]]:
        shard = self._shard(collection)
        offset = None
        while True:
            records, offset = shard.scroll(
                qe.ScrollRequest(offset=offset, limit=batch, with_payload=True, with_vector=with_vectors)
            )
            if records:
                yield [stored_point(record) for record in records]
            if offset is None:
                return

    def hnsw_built(self, collection: str) -> bool:
        info = self._shard(collection).info()
        return bool(info.points_count > 0 and info.indexed_vectors_count >= info.points_count)

    def optimize(self, collection: str) -> None:
        self._shard(collection).optimize()

    def close(self) -> None:
        with self._lock:
            for shard in self._shards.values():
                shard.flush()
                shard.close()
            self._shards.clear()
            self._dir_lock.close()  # closing the file releases its lock


def _lock_directory(root: Path) -> IO[str]:
    """An exclusive lock on the shard directory for this process's life. A second process
    would fail to open each shard's WAL and, finding no collections, could create them anew;
    embedded shards have one index replica, and several replicas share a Qdrant server."""
    handle = (root / ".lock").open("a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise RuntimeError(
            f"{root} is in use by another index process: embedded Qdrant shards belong to one "
            "process (run several index replicas against a Qdrant server, IMSEARCH_INDEX_QDRANT_URL)"
        ) from None
    return handle


def read_spec(path: Path) -> CollectionSpec:
    dim = next(iter(shard_vectors(path).values()))
    spec_file = path / SPEC_FILE
    recorded = json.loads(spec_file.read_text()) if spec_file.is_file() else {}
    return CollectionSpec(
        dim,
        str(recorded.get("model", "")),
        int(recorded.get("hnsw_m", 0)),
        int(recorded.get("hnsw_ef_construct", 0)),
        str(recorded.get("quantization", "")),
    )


def write_spec(path: Path, spec: CollectionSpec) -> None:
    """Atomically: a crash leaves the old file or the new one, never half of one."""
    partial = path / f"{SPEC_FILE}.partial"
    recorded = {
        "model": spec.model,
        "hnsw_m": spec.hnsw_m,
        "hnsw_ef_construct": spec.hnsw_ef_construct,
        "quantization": spec.quantization,
    }
    partial.write_text(json.dumps(recorded))
    os.replace(partial, path / SPEC_FILE)


def shard_vectors(path: Path) -> dict[str, int]:
    """Vector name -> dimension, read from the shard's persisted config."""
    config = json.loads((path / "edge_config.json").read_text())
    return {name: int(params["size"]) for name, params in config["vectors"].items()}
