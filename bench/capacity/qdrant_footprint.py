"""Qdrant shards, float32 and int8: bytes per vector by file kind, build CPU, HNSW recall and QPS."""

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import qdrant_edge as qe

from bench.capacity.pinning import pinned, two_cores
from bench.capacity.rates import RUNS, Rate
from bench.capacity.search_figures import SearchFigures
from bench.capacity.vector_set import K, Vectors, point_id, recall
from services.index.stores.base import StoredPoint
from services.index.stores.qdrant_payload import MATCH_KEY, payload_for, point_uuid

HNSW_M, HNSW_EF_CONSTRUCT, HNSW_EF = 16, 128, 128  # the index service's defaults
FULL_SCAN_KB = 1000  # QdrantEdgeStore's default full_scan_threshold
OVERSAMPLING = 2.0  # int8 candidates fetched per result, then rescored with float32
HNSW_PASSES = 5  # passes over the queries per HNSW run: a run of one pass is too short to time

QUANTIZED, ORIGINAL, GRAPH, PAYLOAD, WAL, IDS = (
    "quantized vectors (int8)",
    "original vectors (float32)",
    "HNSW graph",
    "payload and its index",
    "WAL",
    "ids, deletion flags, config",
)
FILE_KINDS = (QUANTIZED, ORIGINAL, GRAPH, PAYLOAD, WAL, IDS)
# What every search touches, so what must sit in RAM for it to be fast. With always_ram the int8
# copy and the graph are in RAM, and the float32 vectors stay on disk, read only to rescore.
IN_RAM = {"int8": (QUANTIZED, GRAPH, IDS), "float32": (ORIGINAL, GRAPH, IDS)}


def kind_of(path: Path) -> str:
    """The kind of a file of a shard, from its path inside the shard directory."""
    parts = set(path.parts)
    if "wal" in parts:
        return WAL
    if "deleted" in path.name or "deleted" in parts:
        return IDS
    if path.name.startswith("quantized"):
        return QUANTIZED
    if "vector_storage" in parts:
        return ORIGINAL
    if "vector_index" in parts:
        return GRAPH
    if parts & {"payload_storage", "payload_index"}:
        return PAYLOAD
    return IDS


def disk_by_kind(root: Path) -> dict[str, tuple[int, int]]:
    """File kind -> (bytes allocated on disk, apparent size); Qdrant preallocates sparse files,
    so the allocated bytes are what the data takes."""
    sizes = dict.fromkeys(FILE_KINDS, (0, 0))
    for path in root.rglob("*"):
        if path.is_file():
            kind, stat = kind_of(path.relative_to(root)), path.stat()
            allocated, apparent = sizes[kind]
            sizes[kind] = (allocated + stat.st_blocks * 512, apparent + stat.st_size)
    return sizes


def int8_type() -> qe.ScalarType:
    """The int8 member of qe.ScalarType, found by name (its spelling differs between versions)."""
    (name,) = [n for n in dir(qe.ScalarType) if n.lower() == "int8"]
    member: qe.ScalarType = getattr(qe.ScalarType, name)
    return member


def edge_config(dim: int, quantized: bool) -> qe.EdgeConfig:
    quantization = (
        qe.ScalarQuantizationConfig(type=int8_type(), quantile=0.99, always_ram=True) if quantized else None
    )
    return qe.EdgeConfig(
        vectors=qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine),
        hnsw_config=qe.HnswIndexConfig(
            m=HNSW_M, ef_construct=HNSW_EF_CONSTRUCT, full_scan_threshold=FULL_SCAN_KB
        ),
        quantization_config=quantization,
        optimizers=qe.EdgeOptimizersConfig(indexing_threshold=1, default_segment_number=1),
    )


@dataclass
class Shard:
    kind: str  # "float32" or "int8"
    size: int
    dim: int
    shard: qe.EdgeShard
    upsert_s: float
    optimize_s: float
    cpu_s: float  # process CPU seconds (all threads) for upsert + optimize
    disk: dict[str, tuple[int, int]]  # file kind -> (allocated bytes, apparent bytes)

    def per_vector(self, kinds: Sequence[str], column: int = 0) -> float:
        """Bytes per vector of those file kinds: column 0 allocated, 1 apparent."""
        return sum(self.disk[kind][column] for kind in kinds) / self.size

    @property
    def ram_per_vector(self) -> float:
        return self.per_vector(IN_RAM[self.kind])

    @property
    def disk_per_vector(self) -> float:
        """Everything but the WAL, which is bounded per shard, not per vector."""
        return self.per_vector([kind for kind in FILE_KINDS if kind != WAL])


def upsert_all(shard: qe.EdgeShard, gallery: np.ndarray) -> None:
    """Points as the index service writes them: UUID ids, its payload (here without metadata)."""
    for start in range(0, len(gallery), 1000):
        points = []
        for i in range(start, min(start + 1000, len(gallery))):
            stored = StoredPoint(point_id(i), gallery[i])
            points.append(qe.Point(point_uuid(stored.id), gallery[i].tolist(), payload_for(stored)))
        shard.update(qe.UpdateOperation.upsert_points(points))


def build_shard(root: Path, kind: str, gallery: np.ndarray) -> Shard:
    path = root / f"{kind}-{len(gallery)}"
    shard = qe.EdgeShard.create(str(path), edge_config(gallery.shape[1], kind == "int8"))
    shard.update(qe.UpdateOperation.create_field_index(MATCH_KEY, qe.KeywordIndexParams()))
    cpu, began = time.process_time(), time.perf_counter()
    upsert_all(shard, gallery)
    upserted = time.perf_counter()
    shard.optimize()
    shard.flush()
    done = time.perf_counter()
    info = shard.info()
    if info.indexed_vectors_count < info.points_count:
        raise RuntimeError(f"{path.name}: HNSW covers {info.indexed_vectors_count} of {info.points_count}")
    return Shard(
        kind,
        len(gallery),
        gallery.shape[1],
        shard,
        upserted - began,
        done - upserted,
        time.process_time() - cpu,
        disk_by_kind(path),
    )


@dataclass(frozen=True)
class Variant:
    """One way of searching: which shard, and with what parameters."""

    key: str
    label: str
    kind: str
    params: qe.SearchParams


def variants() -> list[Variant]:
    def quantized(rescore: bool, oversampling: float | None = None) -> qe.SearchParams:
        search = qe.QuantizationSearchParams(rescore=rescore, oversampling=oversampling)
        return qe.SearchParams(hnsw_ef=HNSW_EF, quantization=search)

    return [
        Variant("float32", "HNSW, float32", "float32", qe.SearchParams(hnsw_ef=HNSW_EF)),
        Variant("int8-raw", "HNSW, int8, not rescored", "int8", quantized(False)),
        Variant("int8-top", "HNSW, int8, top 10 rescored (re-ordered only)", "int8", quantized(True)),
        Variant(
            "int8",
            f"HNSW, int8, oversampling {OVERSAMPLING:g}, rescored",
            "int8",
            quantized(True, OVERSAMPLING),
        ),
    ]


@dataclass
class SearchJob:
    """One variant on one shard: its requests and the runs' rates."""

    variant: Variant
    shard: Shard
    requests: list[qe.SearchRequest]
    recall: float = 0.0
    rate: Rate = field(default_factory=Rate)

    def run(self) -> None:
        self.rate.time(HNSW_PASSES * len(self.requests), self.passes)

    def passes(self) -> None:
        for _ in range(HNSW_PASSES):
            for request in self.requests:
                self.shard.shard.search(request)


def search_job(variant: Variant, shard: Shard, vectors: Vectors) -> SearchJob:
    """The job, with its recall measured (that first pass is also its warm-up)."""
    row = {point_uuid(point_id(i)): i for i in range(shard.size)}
    requests = [
        qe.SearchRequest(
            query=qe.Query.Nearest(q.tolist()), limit=K, params=variant.params, with_payload=False
        )
        for q in vectors.queries
    ]
    found = [[row[str(hit.id)] for hit in shard.shard.search(r)] for r in requests]
    return SearchJob(variant, shard, requests, recall(found, vectors.truth()))


def measure_hnsw(shards: dict[tuple[str, int], Shard], vectors: Vectors) -> dict[str, SearchFigures]:
    """Every variant at both sizes, their runs interleaved so machine noise hits them alike."""
    half, full = vectors.half(), vectors
    jobs = {
        (variant.key, len(v.gallery)): search_job(variant, shards[variant.kind, len(v.gallery)], v)
        for variant in variants()
        for v in (half, full)
    }
    with pinned(two_cores()[0]):
        for _ in range(RUNS):
            for job in jobs.values():
                job.run()
    figures = {}
    for variant in variants():
        small, big = jobs[variant.key, len(half.gallery)], jobs[variant.key, len(full.gallery)]
        figures[variant.key] = SearchFigures(variant.label, small.recall, big.recall, small.rate, big.rate)
    return figures
