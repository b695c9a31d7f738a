"""Shared fixtures: a real redis-server per session, a whole suite per module."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from cli.suite import Suite, start_suite
from devtools.embedded_redis import EmbeddedRedis
from devtools.redis_cluster import EmbeddedRedisCluster
from services.encoder.model_spec import ModelSpec
from services.index.stores.redis_lsh import RedisClient
from tests.helpers import MODEL_REPOSITORY


def pytest_sessionstart(session: pytest.Session) -> None:
    onnx = ModelSpec.load(MODEL_REPOSITORY / "efficientnet_lite0").onnx_path(MODEL_REPOSITORY)
    if not onnx.is_file():
        pytest.exit(f"{onnx} is missing: run `make setup` first (it exports the default model)", 2)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedisCluster]:
    """A real 3-master Redis Cluster on loopback ports."""
    cluster = EmbeddedRedisCluster(tmp_path_factory.mktemp("redis-cluster"), masters=3)
    yield cluster
    cluster.stop()


@pytest.fixture(params=["single", "cluster"])
def lsh_client(request: pytest.FixtureRequest) -> Iterator[RedisClient]:
    """The LSH store's tests run on a single Redis and on a Redis Cluster alike."""
    if request.param == "single":
        client: RedisClient = redis.Redis.from_url(request.getfixturevalue("redis_server").url)
        client.flushdb()
    else:
        cluster: EmbeddedRedisCluster = request.getfixturevalue("redis_cluster")
        cluster.flush()
        client = cluster.client()
    yield client
    client.close()


@pytest.fixture
def redis_client(redis_server: EmbeddedRedis) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Suite]:
    running = start_suite(
        tmp_path_factory.mktemp("suite"),
        listen="127.0.0.1:0",
        model_repository=MODEL_REPOSITORY,
        free_metrics_ports=True,
    )
    yield running
    running.stop()


def start_http_suite(data_dir: Path, config: dict[str, Any] | None = None, **gateway_flags: Any) -> Suite:
    """A whole suite with the gateway's HTTP front on a free loopback port (suite.gateway.http_url)."""
    return start_suite(
        data_dir,
        listen="127.0.0.1:0",
        config=config,
        model_repository=MODEL_REPOSITORY,
        free_metrics_ports=True,
        gateway_flags={"http_listen": "127.0.0.1:0", **gateway_flags},
    )


def data_dir_or_skip(path: Path) -> Path:
    if not path.is_dir():
        pytest.skip(f"evaluation data not found at {path} (see the README: ../shared/data)")
    return path
