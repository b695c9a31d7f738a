"""Health says what the service can do: NOT_SERVING while a dependency is down."""

import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from cli.suite import start_suite
from devtools.embedded_redis import EmbeddedRedis
from services.index.app import start_index
from services.index.settings import IndexSettings
from tests.helpers import MODEL_REPOSITORY

SERVING = health_pb2.HealthCheckResponse.SERVING


def status(address: str) -> int:
    stub = health_pb2_grpc.HealthStub(grpc.insecure_channel(address))
    return int(stub.Check(health_pb2.HealthCheckRequest(), timeout=5).status)


def wait_for(address: str, wanted: bool, within_s: float = 10.0) -> bool:
    give_up = time.monotonic() + within_s
    while time.monotonic() < give_up:
        if (status(address) == SERVING) == wanted:
            return True
        time.sleep(0.1)
    return False


def test_the_index_is_not_serving_while_redis_is_down(tmp_path: Path) -> None:
    redis_server = EmbeddedRedis(tmp_path / "redis")
    index = start_index(
        IndexSettings(
            listen="127.0.0.1:0",
            metrics_port=-1,
            data_dir=tmp_path,
            redis_url=redis_server.url,
            health_interval_s=0.2,
        )
    )
    try:
        assert wait_for(index.address, True)
        redis_server.stop()
        assert wait_for(index.address, False)
        assert index.health is not None and "Redis" in (index.health.problem or "")
    finally:
        index.stop()


def test_an_index_started_with_redis_down_never_says_serving(tmp_path: Path) -> None:
    dead = EmbeddedRedis(tmp_path / "redis")
    url = dead.url
    dead.stop()
    index = start_index(
        IndexSettings(listen="127.0.0.1:0", metrics_port=-1, data_dir=tmp_path, redis_url=url)
    )
    try:  # the default interval is long: this is the status of the check made before serving
        assert status(index.address) == health_pb2.HealthCheckResponse.NOT_SERVING
    finally:
        index.stop()


def test_the_gateway_is_not_serving_while_the_index_is_down(tmp_path: Path) -> None:
    suite = start_suite(
        tmp_path,
        listen="127.0.0.1:0",
        model_repository=MODEL_REPOSITORY,
        free_metrics_ports=True,
        config={"gateway": {"health_interval_s": 0.2}},
    )
    try:
        assert wait_for(suite.address, True)
        suite.index.stop(0)
        assert wait_for(suite.address, False)
        assert suite.gateway.health is not None and "index" in (suite.gateway.health.problem or "")
    finally:
        suite.stop()
