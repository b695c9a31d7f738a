"""Index settings: environment (IMSEARCH_INDEX_*) and defaults."""

from pathlib import Path
from typing import Self

from pydantic import SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from imsearch.core.service_settings import ServiceSettings


class IndexSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="IMSEARCH_INDEX_")

    listen: str = "127.0.0.1:50052"
    metrics_port: int = 9102
    data_dir: Path = Path("data")  # embedded Qdrant shards live in <data_dir>/qdrant
    min_free_disk_mb: int = 256  # writes are refused (RESOURCE_EXHAUSTED) below this much free space
    qdrant_url: str | None = None  # set to use a Qdrant server instead of the embedded engine
    qdrant_api_key: SecretStr | None = None  # sent only over https; never logged
    # A Qdrant server's new collections: 0 leaves each to the server (its defaults).
    qdrant_shards: int = 0
    qdrant_replication_factor: int = 0
    qdrant_write_consistency: int = 0  # replicas that must confirm a write
    qdrant_retries: int = 3  # for idempotent calls that meet a transient error, with backoff
    qdrant_retry_backoff_s: float = 0.2
    redis_url: str = "redis://127.0.0.1:6379/0"  # rediss://... for TLS; any node of a cluster
    redis_cluster: bool | None = None  # None: ask the server on connect whether it is a cluster
    redis_tls_ca: Path | None = None  # CA that signed Redis's certificate (default: the system's)
    redis_tls_cert: Path | None = None  # client certificate and key, for Redis's tls-auth-clients
    redis_tls_key: Path | None = None
    redis_prefix: str = "imsearch:lsh"
    hnsw_m: int = 16
    hnsw_ef_construct: int = 128
    hnsw_ef: int = 128  # query-time beam width: higher = better recall, slower
    optimize_min_points: int = 1000  # build HNSW from this size, then each time it doubles
    lsh_tables: int = 64
    lsh_bits: int = 13
    lsh_seed: int = 0
    lsh_probes: int = 8
    lsh_rescore: int = 200
    lsh_full_scan_threshold: int = 1000
    lsh_shards: int = 0  # per new collection; 0: 1 on a single Redis, 16 on a Redis Cluster
    # Several replicas: a collection's writes hold its lease in Redis (renewed while held); a
    # write waits this long for another replica's, then answers UNAVAILABLE.
    write_lease_ttl_s: float = 10.0
    write_lease_wait_s: float = 10.0

    @model_validator(mode="after")
    def _tls_needs_rediss(self) -> Self:
        tls_files = (self.redis_tls_ca, self.redis_tls_cert, self.redis_tls_key)
        if any(tls_files) and not self.redis_url.startswith("rediss://"):
            raise ValueError("redis_tls_ca/cert/key need a rediss:// redis_url (TLS), not plain redis://")
        if (self.redis_tls_cert is None) != (self.redis_tls_key is None):
            raise ValueError("redis_tls_cert and redis_tls_key go together")
        return self
