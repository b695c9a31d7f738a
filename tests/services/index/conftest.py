"""A small IndexEngine over a fresh Qdrant shard and an emptied Redis, for the index tests."""

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from devtools.embedded_redis import EmbeddedRedis
from imsearch.core.metrics import ServiceMetrics
from services.index.engine import IndexEngine
from services.index.stores.qdrant_edge import QdrantEdgeStore
from services.index.stores.redis_lsh import LshParams, RedisLshStore


@pytest.fixture
def engine(tmp_path: Path, redis_server: EmbeddedRedis) -> Iterator[IndexEngine]:
    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    opened = IndexEngine(
        QdrantEdgeStore(tmp_path / "q"), RedisLshStore(client, LshParams()), ServiceMetrics("t")
    )
    yield opened
    opened.close()
