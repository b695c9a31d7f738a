"""Capacity plan from per-unit figures measured in this run: encoder images/s per core, Qdrant
bytes per vector and search QPS per core (float32 and scalar int8), Redis bytes per LSH point.

    python -m bench.capacity [--size 20000] [--dim 1280] [--ingest-rate 100] [--query-rate 200]

Everything it prints is markdown; docs/capacity.md is one run of it. The plan (nodes, memory,
cores, GPUs for 10M and 100M images) is computed from the figures measured above it in the
same run, never from remembered numbers. GPUs are not measured (no GPU here): their count is
left as a formula of the images/s per GPU that bench/gpu_check.sh prints on a GPU machine.
Real vectors need the embedding cache (`python -m bench.embeddings`); without it, or with a
--dim other than the default model's, the index figures use random unit vectors (it says which).
Index figures are taken at --size and at half of it, to show how they move with the size.
"""

import argparse
import os
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.capacity.encoder_rate import measure_encoder
from bench.capacity.lsh_footprint import LshFigures, measure_lsh
from bench.capacity.plan import Assumptions, Measured
from bench.capacity.qdrant_footprint import Shard, build_shard, measure_hnsw
from bench.capacity.report import LIMITS, print_encoder, print_lsh, print_plan, print_search, print_shards
from bench.capacity.search_figures import SearchFigures
from bench.capacity.vector_set import DEFAULT_DIM, Vectors, make_vectors


def load_1min() -> float:
    return os.getloadavg()[0]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(  # prog: as a package's __main__, argv[0] says __main__.py
        prog="python -m bench.capacity",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--size", type=int, default=20_000, help="vectors in the measured shards")
    parser.add_argument("--dim", type=int, default=DEFAULT_DIM)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--vectors", choices=("auto", "real", "random"), default="auto")
    parser.add_argument("--images", type=int, default=256, help="images per encoder run")
    parser.add_argument("--ingest-rate", type=float, default=100.0, help="images/s")
    parser.add_argument("--query-rate", type=float, default=200.0, help="queries/s")
    parser.add_argument("--catalogs", default="10000000,100000000", help="catalog sizes, comma-separated")
    parser.add_argument("--node-ram-gib", type=float, default=64.0)
    parser.add_argument("--node-cores", type=int, default=16)
    parser.add_argument("--headroom", type=float, default=1.5)
    parser.add_argument("--replication", type=int, default=2)
    parser.add_argument("--redis-master-gib", type=float, default=25.0)
    parser.add_argument("--lsh-shards", type=int, default=16, help="LSH shards per collection on a cluster")
    return parser.parse_args()


def assumptions_of(args: argparse.Namespace) -> Assumptions:
    return Assumptions(
        args.ingest_rate,
        args.query_rate,
        args.node_ram_gib,
        args.node_cores,
        args.headroom,
        args.replication,
        args.redis_master_gib,
        args.lsh_shards,
    )


def measure_index(
    root: Path, vectors: Vectors
) -> tuple[dict[tuple[str, int], Shard], dict[str, SearchFigures], LshFigures]:
    shards = {}
    for gallery in (vectors.half().gallery, vectors.gallery):
        for kind in ("float32", "int8"):
            shards[kind, len(gallery)] = build_shard(root, kind, gallery)
    return shards, measure_hnsw(shards, vectors), measure_lsh(root, vectors)


def main() -> None:
    args = parse_args()
    began, load_start = time.perf_counter(), load_1min()
    print("## Measured per-unit figures and the plan\n")
    print(
        f"`python -m bench.capacity` run at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on "
        f"{os.cpu_count()} CPU cores, no GPU; 1-minute load average {load_start:.2f} at the start.\n"
    )
    encoder = measure_encoder(args.images)
    print_encoder(encoder)
    vectors = make_vectors(args.size, args.dim, args.queries, args.vectors)
    print(f"Index figures: {vectors.description}.\n")
    root = Path(tempfile.mkdtemp(prefix="capacity-"))
    try:
        shards, hnsw, lsh = measure_index(root, vectors)
        full = [shards[kind, args.size] for kind in ("float32", "int8")]
        print_shards(full, [shards[kind, args.size // 2] for kind in ("float32", "int8")])
        print_lsh(lsh)
        print_search([*hnsw.values(), lsh.search], args.size, args.queries)
        measured = Measured(encoder, {s.kind: s for s in full}, hnsw, lsh, args.dim)
        print_plan([int(c) for c in args.catalogs.split(",")], measured, assumptions_of(args))
        for shard in shards.values():
            shard.shard.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(LIMITS.format(size=args.size, dim=args.dim))
    print(
        f"Whole run: {time.perf_counter() - began:.0f} s; 1-minute load average {load_start:.2f} at "
        f"the start, {load_1min():.2f} at the end (the machine is shared).\n"
    )


if __name__ == "__main__":
    main()
