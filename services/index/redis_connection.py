"""One Redis client for the LSH store, from the index settings: plain, TLS or mutual TLS; and
Redis errors as UNAVAILABLE."""

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import redis
from redis.cluster import RedisCluster

from imsearch.core.errors import Unavailable
from services.index.settings import IndexSettings
from services.index.stores.redis_lsh import RedisClient

T = TypeVar("T")
log = logging.getLogger(__name__)

# Long enough for a big pipeline on a loaded machine, short enough that a dead Redis is seen
# (the write path then undoes Qdrant and answers UNAVAILABLE).
SOCKET_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 5.0


def tls_options(settings: IndexSettings) -> dict[str, Any]:
    """redis-py's TLS arguments (verified against `redis_tls_ca`, or the system's CAs)."""
    if not settings.redis_url.startswith("rediss://"):
        return {}
    options: dict[str, Any] = {"ssl_cert_reqs": "required"}
    if settings.redis_tls_ca is not None:
        options["ssl_ca_certs"] = str(settings.redis_tls_ca)
    if settings.redis_tls_cert is not None and settings.redis_tls_key is not None:
        options["ssl_certfile"] = str(settings.redis_tls_cert)
        options["ssl_keyfile"] = str(settings.redis_tls_key)
    return options


def connect_redis(settings: IndexSettings) -> RedisClient:
    """A client of the Redis at `redis_url`; for a node of a Redis Cluster (any node will do),
    a cluster client, which follows the slots to every master."""
    options: dict[str, Any] = {
        "socket_timeout": SOCKET_TIMEOUT_S,
        "socket_connect_timeout": CONNECT_TIMEOUT_S,
        **tls_options(settings),
    }
    if settings.redis_cluster:
        return RedisCluster.from_url(settings.redis_url, **options)
    single = redis.Redis.from_url(settings.redis_url, **options)
    if settings.redis_cluster is False:
        return single
    try:
        clustered = bool(single.info("cluster").get("cluster_enabled"))
    except redis.exceptions.RedisError as exc:  # the service starts; health reports Redis down
        log.warning("could not ask %s whether it is a cluster (%s); set redis_cluster to say", "Redis", exc)
        return single
    if not clustered:
        return single
    single.close()
    return RedisCluster.from_url(settings.redis_url, **options)


def with_redis(action: Callable[[], T]) -> T:
    """Runs a step that talks to Redis; a Redis failure becomes UNAVAILABLE (retry later)."""
    try:
        return action()
    except redis.exceptions.RedisError as exc:
        raise Unavailable(f"LSH store (Redis) unavailable: {exc}") from None
