"""Capacity plan from per-unit figures measured in one run (encoder, Qdrant, Redis LSH).

    python -m bench.capacity [--size 20000] [--dim 1280] [--ingest-rate 100] [--query-rate 200]

Where things live: `encoder_rate` (encoder images/s per core), `vector_set` (the vectors and
queries the index figures use, exact top K, recall), `qdrant_footprint` (Qdrant bytes per
vector, HNSW recall and QPS, float32 and int8), `lsh_footprint` (Redis bytes per LSH point,
LSH QPS, the catalog-scale memory model), `search_figures` (one index's search figures),
`pinning` (cores and BLAS threads), `rates` (items per CPU-second), `plan` (the plan computed
from the figures), `report` and `markdown` (what it prints), `__main__` (flags and the run).
"""
