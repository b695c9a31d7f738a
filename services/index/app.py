"""Wires the index service: the stores under one engine, behind its servicer."""

from imsearch.core.app import ServiceApp, start_service
from imsearch.core.metrics import ServiceMetrics
from imsearch.v1 import index_pb2, index_pb2_grpc
from services.index.disk_guard import MB, DiskGuard
from services.index.engine import IndexEngine
from services.index.lease import CollectionLeases
from services.index.redis_connection import connect_redis
from services.index.servicer import IndexServicer
from services.index.settings import IndexSettings
from services.index.stores.base import VectorStore
from services.index.stores.qdrant_edge import QdrantEdgeStore
from services.index.stores.qdrant_server import Distribution, QdrantServerStore, RetryPolicy
from services.index.stores.redis_lsh import LshParams, RedisLshStore

SERVICE_NAME = index_pb2.DESCRIPTOR.services_by_name["IndexService"].full_name


def build_vector_store(settings: IndexSettings) -> VectorStore:
    if settings.qdrant_url:
        return QdrantServerStore(
            url=settings.qdrant_url,
            api_key=settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None,
            hnsw_m=settings.hnsw_m,
            hnsw_ef_construct=settings.hnsw_ef_construct,
            hnsw_ef=settings.hnsw_ef,
            distribution=Distribution(
                settings.qdrant_shards, settings.qdrant_replication_factor, settings.qdrant_write_consistency
            ),
            retry=RetryPolicy(settings.qdrant_retries, settings.qdrant_retry_backoff_s),
        )
    return QdrantEdgeStore(
        settings.data_dir / "qdrant",
        hnsw_m=settings.hnsw_m,
        hnsw_ef_construct=settings.hnsw_ef_construct,
        hnsw_ef=settings.hnsw_ef,
    )


def build_engine(settings: IndexSettings, metrics: ServiceMetrics) -> IndexEngine:
    params = LshParams(
        tables=settings.lsh_tables,
        bits=settings.lsh_bits,
        seed=settings.lsh_seed,
        probes=settings.lsh_probes,
        rescore=settings.lsh_rescore,
        full_scan_threshold=settings.lsh_full_scan_threshold,
    )
    lsh = RedisLshStore(connect_redis(settings), params, settings.redis_prefix, settings.lsh_shards)
    leases = CollectionLeases(
        lsh.client, lsh.collection_key, settings.write_lease_ttl_s, settings.write_lease_wait_s
    )
    # The embedded shard and Redis live under data_dir; a Qdrant server minds its own disk.
    guard = None if settings.qdrant_url else DiskGuard(settings.data_dir, settings.min_free_disk_mb * MB)
    return IndexEngine(
        build_vector_store(settings), lsh, metrics, settings.optimize_min_points, guard, leases=leases
    )


IndexApp = ServiceApp[IndexEngine]


def start_index(settings: IndexSettings) -> IndexApp:
    metrics = ServiceMetrics("index")
    engine = build_engine(settings, metrics)
    servicer = IndexServicer(engine)
    return start_service(
        "index",
        engine,
        lambda server: index_pb2_grpc.add_IndexServiceServicer_to_server(servicer, server),
        [SERVICE_NAME],
        settings,
        metrics,
    )
