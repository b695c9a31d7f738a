"""The printed sections: each measured figure's tables, the plan's tables, the limits."""

from collections.abc import Sequence

from bench.capacity.encoder_rate import BATCH, EncoderFigures
from bench.capacity.lsh_footprint import LSH_QPS_QUERIES, PROBE_IDS, LshFigures
from bench.capacity.markdown import runs_text, table
from bench.capacity.plan import Assumptions, Measured, encoder_rows, lsh_rows, qdrant_rows
from bench.capacity.qdrant_footprint import (
    FILE_KINDS,
    HNSW_EF_CONSTRUCT,
    HNSW_M,
    HNSW_PASSES,
    IN_RAM,
    OVERSAMPLING,
    WAL,
    Shard,
)
from bench.capacity.rates import RUNS
from bench.capacity.search_figures import SearchFigures
from bench.capacity.vector_set import K, point_id


def print_encoder(figures: EncoderFigures) -> None:
    print("### 1. Encoder, per CPU core\n")
    print(
        f"Images ({figures.source}) encoded in batches of {BATCH} through "
        "`services.encoder.engine.Encoder` (efficientnet_lite0, onnxruntime, intra_op_threads=1), "
        f"the whole process pinned to core {figures.core}; median of {RUNS} runs. Per core = images "
        "per CPU-second of this process; wall = images per second of the pinned run.\n"
    )
    rows = [
        ("end to end: decode + preprocess + inference", figures.end_to_end_rate),
        ("inference alone (pixels made beforehand)", figures.inference_rate),
    ]
    body = [
        [name, f"**{rate.cpu:,.1f}**", f"{1000 / rate.cpu:.2f}", f"{rate.wall:,.1f}", runs_text(rate.per_cpu)]
        for name, rate in rows
    ]
    side = figures.cpu_side
    body.append(["decode + preprocess alone (the difference)", f"{side:,.1f}", f"{1000 / side:.2f}", "", ""])
    header = ["stage", "images/s per core", "CPU ms per image", "wall images/s", f"the {RUNS} runs, per core"]
    table(header, body)
    share = figures.end_to_end / figures.inference
    leader = "Inference" if share >= 0.5 else "Decode + preprocess"
    print(
        f"{leader} dominates: inference is {100 * share:.0f}% of the end-to-end CPU time per image, "
        f"decode + preprocess {100 - 100 * share:.0f}%.\n"
    )
    print(
        "**Per GPU: not measured** (no GPU was lent to this run). `bash bench/gpu_check.sh` on a GPU "
        "machine prints the model's images/s per GPU at batch 1, 16 and 64 (fp32 and fp16); call "
        "the batch-16 or batch-64 figure R_gpu. The plan leaves GPU counts as a formula of R_gpu.\n"
    )


def print_shards(full: Sequence[Shard], half: Sequence[Shard]) -> None:
    size = full[0].size
    print("### 2. Qdrant, per vector\n")
    print(
        f"qdrant_edge shards of the same vectors, HNSW m={HNSW_M}, ef_construct={HNSW_EF_CONSTRUCT}, "
        "one optimised segment; `int8` adds scalar quantization (int8, quantile 0.99, always_ram). "
        "Ids and payload as the index service writes them (UUID ids; id, digest, empty metadata). "
        "Bytes on disk are allocated bytes (Qdrant preallocates sparse files; their apparent size "
        f"in brackets), at {size:,} vectors:\n"
    )
    rows = [
        [kind, *[f"{s.per_vector([kind]):,.0f} ({s.per_vector([kind], 1):,.0f})" for s in full]]
        for kind in FILE_KINDS
    ]
    rows.append(
        [
            "**all files**",
            *[f"**{s.per_vector(FILE_KINDS):,.0f}** ({s.per_vector(FILE_KINDS, 1):,.0f})" for s in full],
        ]
    )
    table(["file kind", *[f"`{s.kind}` shard, bytes/vector" for s in full]], rows)
    wal = [f"`{s.kind}` {s.disk[WAL][0] / 2**20:,.0f} MiB" for s in full]
    written = size * 4 * full[0].dim / 2**20
    print(
        f"The WAL is bounded per shard, not per vector: {', '.join(wal)} after {written:,.0f} MiB of "
        "float32 vectors went through it; it is left out of the plan's disk figure. The graph's level 0 "
        f"holds up to 2m = {2 * HNSW_M} links per vector, {8 * HNSW_M} bytes uncompressed; Qdrant "
        "stores them compressed, which takes a few more bits per link as ids grow with the collection.\n"
    )
    rows = [
        [
            f"`{f.kind}`",
            " + ".join(IN_RAM[f.kind]),
            f"{h.ram_per_vector:,.0f}",
            f"**{f.ram_per_vector:,.0f}**",
        ]
        for f, h in zip(full, half, strict=True)
    ]
    table(["shard", "in RAM for fast search", f"bytes/vector at {half[0].size:,}", f"at {size:,}"], rows)
    build_rows = [
        [f"`{s.kind}`", f"{s.upsert_s:.1f} s", f"{s.optimize_s:.1f} s", f"{1000 * s.cpu_s / s.size:.2f} ms"]
        for s in full
    ]
    header = ["shard", "upsert (wall)", "optimize: HNSW build (wall)", "CPU per vector, upsert + build"]
    table(header, build_rows)
    print(
        "CPU per vector counts every thread of this process over the upsert and the build, including "
        "the Python that makes the points (as the index service does).\n"
    )


def print_lsh(lsh: LshFigures) -> None:
    params, size = lsh.params, lsh.size
    print("### 3. Redis, per LSH point\n")
    print(
        f"`RedisLshStore` with `LshParams()` ({params.tables} tables x {params.bits} bits, {params.probes} "
        f"probes, rescore {params.rescore}) on a fresh redis-server {lsh.redis_version} "
        f"(`devtools.embedded_redis`), one shard (a single Redis); {size:,} points with ids like "
        f"`{point_id(0)}`, loaded in {lsh.load_s:.1f} s, beside a collection of the first half of them "
        "(for the search figures at half the size).\n"
    )
    members = size * params.tables / lsh.bucket_keys
    rows = [
        ["**used_memory after - before, per point**", f"**{lsh.bytes_per_point:,.0f}**"],
        [
            "of which the per-point hashes (float16 vector, signatures, metadata, digest)",
            f"{lsh.hash_bytes_per_point:,.0f}",
        ],
        [
            f"of which bucket sets: {lsh.bucket_keys:,} keys, {members:.1f} ids each on average",
            f"{lsh.bytes_per_point - lsh.hash_bytes_per_point:,.0f}",
        ],
        [f"one id in a big bucket set (a {PROBE_IDS:,}-id set of the same ids)", f"{lsh.member_bytes:,.1f}"],
        ["a bucket key's own cost (what the ids and hashes leave, over the keys)", f"{lsh.key_bytes:,.1f}"],
    ]
    table(["Redis memory", "bytes"], rows)
    print(
        f"At {size:,} points the {params.tables * 2**params.bits:,} possible bucket keys of a shard hold a "
        "few ids each, so their own cost is spread over few points. At catalog scale every key exists and "
        "holds many ids: the plan's *scale model* is per-point hashes + "
        f"{params.tables} ids x the big-set cost per id + every key's own cost spread over the catalog.\n"
    )


def print_search(results: Sequence[SearchFigures], size: int, queries: int) -> None:
    print("### 4. Search, per core\n")
    print(
        f"{queries} held-out queries, top {K}, serial from one thread pinned to one core (LSH: the "
        f"redis-server pinned to another, its CPU counted, the first {min(LSH_QPS_QUERIES, queries)} "
        f"queries for its rates); HNSW runs interleaved, {HNSW_PASSES} passes over the queries each; "
        f"recall@{K} against numpy brute force; rates are medians of {RUNS} runs, QPS per core = "
        f"queries per CPU-second; at {size // 2:,} and {size:,} vectors.\n"
    )
    rows = [
        [
            r.label,
            f"{r.recall_half:.3f}",
            f"{r.recall:.3f}",
            f"{r.qps_half:,.0f}",
            f"**{r.qps:,.0f}**",
            f"{r.rate.wall:,.0f}",
            runs_text(r.rate.per_cpu),
            f"{100 * r.candidates:.1f}% in buckets" if r.candidates else "",
        ]
        for r in results
    ]
    half, full = f"{size // 2:,}", f"{size:,}"
    header = [
        "index",
        f"recall@{K} at {half}",
        f"at {full}",
        f"QPS per core at {half}",
        f"at {full}",
        f"wall QPS at {full}",
        f"the {RUNS} runs at {full}, per core",
        "looked at",
    ]
    table(header, rows)


def print_assumptions(a: Assumptions) -> None:
    print("### 5. The plan\n")
    rows = [
        ["ingest rate (each an image to encode and index)", f"{a.ingest_rate:,.0f} images/s"],
        ["query rate (each an image to encode, then one HNSW search)", f"{a.query_rate:,.0f} QPS"],
        ["Qdrant node", f"{a.node_ram_gib:g} GiB RAM, {a.node_cores} cores"],
        ["headroom on every RAM and core figure", f"{a.headroom}x"],
        ["Qdrant replication factor (availability)", f"{a.replication}"],
        ["Qdrant int8 search", f"oversampling {OVERSAMPLING:g}, rescored with the float32 vectors"],
        ["Redis Cluster: max memory per master", f"{a.redis_master_gib:g} GiB, one replica each"],
        ["LSH shards per collection on the cluster", f"{a.lsh_shards} (the default) or as many as masters"],
    ]
    table(["assumption", "value"], rows)


def print_plan(catalogs: Sequence[int], m: Measured, a: Assumptions) -> None:
    print_assumptions(a)
    for points in catalogs:
        print(f"#### {points:,} images\n")
        rows = encoder_rows(points, m.encoder, a)
        rows += qdrant_rows(points, "float32", m, a) + qdrant_rows(points, "int8", m, a)
        table(["quantity", "value", "from"], rows + lsh_rows(points, m, a))


LIMITS = """### 6. Limits of the extrapolation

- Bytes per vector scale linearly (vectors, quantized vectors, ids), so the memory and disk rows
  are as sound as the measured files; the graph's compressed links grow a little with N. The WAL
  and the preallocated files are per shard, not per vector.
- HNSW QPS was measured on {size:,}-vector shards. Search cost grows with the collection (about
  with log N, and more once the graph and vectors no longer fit the CPU caches), so the query
  core counts are lower bounds; so is indexing CPU (insertion cost grows likewise, and a Qdrant
  server re-indexes segments as its optimizer merges them). Every Qdrant query visits one copy
  of every data shard, so query cores grow with the shard count. The index service's gRPC hop,
  the gateway and the Redis writes of ingest are not counted.
- Per-core rates are per CPU-second, which on this shared machine is steadier than the wall
  clock; cores sharing a physical core (SMT) or caches with other work still slow it.
- LSH with fixed tables and bits puts a fixed fraction of the collection in the probed buckets,
  so its cost per query grows linearly with N (the fit from two sizes is rough); at these
  catalog sizes it would need more bits per table, and a new measurement.
- The Redis scale model assumes this Redis version's set encoding and ids of this length;
  the measured bytes/point at {size:,} points is the other row.
- {dim:,} is the embedding dimension of efficientnet_lite0; other models differ (`--dim`):
  vector bytes scale with it, graph bytes do not.
"""
