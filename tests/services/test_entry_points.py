"""`python -m services.<name>` reads its settings like every entry point: flags > environment >
the IMSEARCH_CONFIG file's table > defaults, and stops cleanly on SIGTERM."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import grpc
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from devtools.embedded_redis import EmbeddedRedis
from devtools.ports import free_port
from imsearch.v1 import index_pb2, index_pb2_grpc
from tests.helpers import REPO


def test_index_entry_point_layers_flags_environment_and_file(
    tmp_path: Path, redis_server: EmbeddedRedis
) -> None:
    from_file, from_flag = free_port(), free_port()
    config = tmp_path / "imsearch.toml"
    config.write_text(
        f'[index]\nlisten = "127.0.0.1:{from_file}"\ndata_dir = "{tmp_path / "from-file"}"\n'
        f'metrics_port = -1\nredis_url = "redis://127.0.0.1:1/0"\n'
    )
    env = dict(os.environ, IMSEARCH_CONFIG=str(config), IMSEARCH_INDEX_REDIS_URL=redis_server.url)
    process = subprocess.Popen(
        [sys.executable, "-m", "services.index", "--listen", f"127.0.0.1:{from_flag}"], cwd=REPO, env=env
    )
    try:
        with grpc.insecure_channel(f"127.0.0.1:{from_flag}") as channel:  # the flag's port
            health = health_pb2_grpc.HealthStub(channel)
            reply = health.Check(health_pb2.HealthCheckRequest(), wait_for_ready=True, timeout=60)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            index = index_pb2_grpc.IndexServiceStub(channel)
            index.EnsureCollection(index_pb2.EnsureCollectionRequest(collection="entry", dim=4), timeout=30)
            point = index_pb2.Point(id="a", vector=[1.0, 0.0, 0.0, 0.0])
            index.Upsert(index_pb2.UpsertRequest(collection="entry", points=[point]), timeout=30)
        assert redis.Redis.from_url(redis_server.url).keys("*entry*")  # the environment's Redis
        assert (tmp_path / "from-file" / "qdrant").is_dir()  # the file's data directory
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
