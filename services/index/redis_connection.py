"""One Redis client for the LSH store, from the index settings: plain, TLS or mutual TLS; and
Redis errors as UNAVAILABLE."""

from collections.abc import Callable
from typing import Any, TypeVar

import redis

from imsearch.core.errors import Unavailable
from services.index.settings import IndexSettings

T = TypeVar("T")

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


def connect_redis(settings: IndexSettings) -> redis.Redis:
    return redis.Redis.from_url(
        settings.redis_url,
        socket_timeout=SOCKET_TIMEOUT_S,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        **tls_options(settings),
    )


def with_redis(action: Callable[[], T]) -> T:
    """Runs a step that talks to Redis; a Redis failure becomes UNAVAILABLE (retry later)."""
    try:
        return action()
    except redis.exceptions.RedisError as exc:
        raise Unavailable(f"LSH store (Redis) unavailable: {exc}") from None
