"""The plan for a catalog, computed from the measured figures: nodes, memory, cores, GPUs."""

import math
from dataclasses import dataclass

from bench.capacity.encoder_rate import EncoderFigures
from bench.capacity.lsh_footprint import LshFigures
from bench.capacity.markdown import GIB, cores, gib
from bench.capacity.qdrant_footprint import OVERSAMPLING, Shard
from bench.capacity.search_figures import SearchFigures
from bench.capacity.vector_set import K


@dataclass
class Assumptions:
    ingest_rate: float
    query_rate: float
    node_ram_gib: float
    node_cores: int
    headroom: float
    replication: int
    redis_master_gib: float
    lsh_shards: int


@dataclass
class Measured:
    encoder: EncoderFigures
    shards: dict[str, Shard]  # "float32", "int8", at the full size
    hnsw: dict[str, SearchFigures]  # by Variant.key
    lsh: LshFigures
    dim: int


def qdrant_layout(
    ram_bytes: float, qps_per_core: float, index_cores: float, a: Assumptions
) -> tuple[int, int, float]:
    """(data shards, copies of each, query cores) so that RAM and cores suffice: every query
    visits one copy of every shard; every copy indexes every new vector (`index_cores` each)."""
    shards = math.ceil(ram_bytes * a.headroom / (a.node_ram_gib * GIB))
    query_cores = a.query_rate * shards / qps_per_core * a.headroom
    copies = a.replication
    while shards * copies * a.node_cores < query_cores + copies * index_cores:
        copies += 1
    return shards, copies, query_cores


def encoder_rows(points: int, e: EncoderFigures, a: Assumptions) -> list[list[str]]:
    rate = a.ingest_rate + a.query_rate
    load = rate * a.headroom
    return [
        [
            "images to encode per second",
            f"{rate:,.0f}",
            f"ingest {a.ingest_rate:,.0f} + queries {a.query_rate:,.0f}",
        ],
        [
            "encoder CPU cores, CPU only",
            f"**{cores(load / e.end_to_end)}**",
            f"{rate:,.0f} x {a.headroom} / {e.end_to_end:,.1f} per core",
        ],
        [
            "encoder GPUs",
            f"**⌈{load:,.0f} / R_gpu⌉**",
            f"{rate:,.0f} x {a.headroom} / R_gpu (images/s per GPU, bench/gpu_check.sh; not measured)",
        ],
        [
            "CPU cores beside the GPUs (decode + preprocess)",
            cores(load / e.cpu_side),
            f"{rate:,.0f} x {a.headroom} / {e.cpu_side:,.1f} per core",
        ],
        [
            "first load of the catalog at the ingest rate",
            f"{points / a.ingest_rate / 86400:,.1f} days",
            f"{points:,} / {a.ingest_rate:,.0f} per s",
        ],
        [
            "encoder core-hours for that first load, CPU only",
            f"{points / e.end_to_end / 3600:,.0f}",
            f"{points:,} / {e.end_to_end:,.1f} per core-second",
        ],
    ]


def qdrant_rows(points: int, kind: str, m: Measured, a: Assumptions) -> list[list[str]]:
    shard, search = m.shards[kind], m.hnsw[kind]
    ram = points * shard.ram_per_vector
    cpu = shard.cpu_s / shard.size
    index_cores = a.ingest_rate * cpu * a.headroom
    shards, copies, query_cores = qdrant_layout(ram, search.qps, index_cores, a)
    name = f"Qdrant `{kind}`"
    rows = [
        [
            f"{name}: RAM for one copy, with headroom",
            f"**{gib(ram * a.headroom)}**",
            f"{points:,} x {shard.ram_per_vector:,.0f} B x {a.headroom}",
        ],
        [
            f"{name}: disk for one copy (no WAL)",
            gib(points * shard.disk_per_vector),
            f"{points:,} x {shard.disk_per_vector:,.0f} B",
        ],
        [f"{name}: data shards", f"{shards}", f"⌈{gib(ram * a.headroom)} / {a.node_ram_gib:g} GiB per node⌉"],
        [
            f"{name}: query cores (a lower bound)",
            cores(query_cores),
            f"{a.query_rate:,.0f} QPS x {shards} shards / {search.qps:,.0f} per core x {a.headroom}",
        ],
        [
            f"{name}: indexing cores per copy (a lower bound; upsert + HNSW build)",
            cores(index_cores),
            f"{a.ingest_rate:,.0f}/s x {1000 * cpu:.2f} ms CPU x {a.headroom}",
        ],
    ]
    if kind == "int8":
        reads = a.query_rate * shards * OVERSAMPLING * K
        rows.append(
            [
                f"{name}: float32 vectors read to rescore",
                f"{reads:,.0f}/s",
                f"{a.query_rate:,.0f} QPS x {shards} shards x {OVERSAMPLING:g} x {K}, "
                f"{4 * m.dim:,} B each: page cache or disk IOPS",
            ]
        )
    rows.append(
        [
            f"{name}: **nodes** ({a.node_ram_gib:g} GiB, {a.node_cores} cores)",
            f"**{shards * copies}**",
            f"{shards} shards x {copies} copies (replication {a.replication} at least)",
        ]
    )
    return rows


def redis_layout(total: float, per_master: float, default_shards: int) -> tuple[int, int]:
    """(LSH shards, masters): a shard's keys share one hash slot, so one master holds whole
    shards, at most ⌈shards / masters⌉ of them, and that must fit in `per_master`."""
    masters = math.ceil(total / per_master)
    shards = max(default_shards, masters)
    while math.ceil(shards / masters) * total / shards > per_master:
        masters += 1
    return shards, masters


def lsh_rows(points: int, m: Measured, a: Assumptions) -> list[list[str]]:
    lsh, master = m.lsh, a.redis_master_gib * GIB
    measured = points * lsh.bytes_per_point * a.headroom
    shards = a.lsh_shards
    while True:  # more shards mean more bucket keys; a few rounds settle it
        per_point = lsh.scale_bytes_per_point(points, shards)
        scaled = points * per_point * a.headroom
        needed, masters = redis_layout(scaled, master, a.lsh_shards)
        if needed == shards:
            break
        shards = needed
    per_master = math.ceil(shards / masters) * scaled / shards
    seconds, fixed = lsh.query_seconds(points)
    return [
        [
            "Redis LSH memory, measured bytes/point, with headroom",
            gib(measured),
            f"{points:,} x {lsh.bytes_per_point:,.0f} B x {a.headroom}",
        ],
        [
            "Redis LSH memory, scale model, with headroom",
            f"**{gib(scaled)}**",
            f"{points:,} x {per_point:,.0f} B x {a.headroom} ({shards} LSH shards)",
        ],
        [
            "`lsh_shards` (a shard's keys share one slot, so one master)",
            f"{shards}" + (f" (the default {a.lsh_shards} is **too few**)" if shards > a.lsh_shards else ""),
            f"at least ⌈{gib(scaled)} / {a.redis_master_gib:g} GiB⌉; default {a.lsh_shards} on a cluster",
        ],
        [
            f"Redis Cluster masters, at most {a.redis_master_gib:g} GiB each (scale model)",
            f"**{masters}** (+{masters} replicas)",
            f"whole shards per master, at most {math.ceil(shards / masters)}: {gib(per_master)} each; "
            "one replica per master",
        ],
        [
            "LSH query cores, if queries used LSH",
            f"{cores(a.query_rate * seconds * a.headroom)}",
            f"{a.query_rate:,.0f} QPS x {1000 * seconds:,.1f} ms x {a.headroom}; ms per query = "
            f"{1000 * fixed:.1f} fixed + the rest linear in N, fitted at {lsh.size // 2:,} and {lsh.size:,}",
        ],
    ]
