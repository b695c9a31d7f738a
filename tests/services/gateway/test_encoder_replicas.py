"""One gateway over two encoder processes: requests spread over both (round robin), and when one
is killed mid-load every search still answers (gRPC retries UNAVAILABLE on the other)."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.request import urlopen

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from devtools.embedded_redis import EmbeddedRedis
from devtools.ports import free_port
from imsearch.client import SearchClient
from services.gateway.app import GatewayApp, start_gateway
from services.gateway.settings import GatewaySettings
from services.index.app import IndexApp, start_index
from services.index.settings import IndexSettings
from tests.helpers import MODEL_REPOSITORY, REPO, jpeg


class EncoderProcess:
    def __init__(self) -> None:
        self.port, self.metrics_port = free_port(), free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "services.encoder", "--listen", f"127.0.0.1:{self.port}",
             "--metrics-port", str(self.metrics_port), "--model-repository", str(MODEL_REPOSITORY)],
            cwd=REPO, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        health = health_pb2_grpc.HealthStub(channel)
        assert health.Check(health_pb2.HealthCheckRequest(), wait_for_ready=True, timeout=120).status == 1
        channel.close()

    def encodes(self) -> float:
        with urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as response:
            text = response.read().decode()
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "grpc_server_handled_total" and sample.labels.get("grpc_method") == "Encode"
        )

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=15)


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[tuple[list[EncoderProcess], GatewayApp]]:
    encoders = [EncoderProcess(), EncoderProcess()]
    redis_server = EmbeddedRedis(tmp_path / "redis")
    index: IndexApp = start_index(
        IndexSettings(listen="127.0.0.1:0", metrics_port=-1, data_dir=tmp_path, redis_url=redis_server.url)
    )
    targets = ",".join(f"127.0.0.1:{e.port}" for e in encoders)
    gateway = start_gateway(
        GatewaySettings(
            listen="127.0.0.1:0",
            metrics_port=-1,
            encoder_address=f"ipv4:{targets}",
            index_address=index.address,
        )
    )
    yield encoders, gateway
    gateway.stop()
    index.stop()
    redis_server.stop()
    for encoder in encoders:
        if encoder.process.poll() is None:
            encoder.kill()


def test_searches_spread_over_both_and_survive_one_killed(
    replicas: tuple[list[EncoderProcess], GatewayApp],
) -> None:
    encoders, gateway = replicas
    with SearchClient(gateway.address, timeout=30) as client:
        client.add_images((f"g{i}", jpeg(i), {}) for i in range(8))

        def search(i: int) -> str:
            return client.search(jpeg(i % 8), top_k=1).results[0].id

        with ThreadPoolExecutor(4) as pool:
            before = list(pool.map(search, range(24)))
        assert before == [f"g{i % 8}" for i in range(24)]
        assert all(e.encodes() >= 4 for e in encoders), [e.encodes() for e in encoders]  # both served
        with ThreadPoolExecutor(4) as pool:
            during = [pool.submit(search, i) for i in range(40)]
            time.sleep(0.2)
            encoders[0].kill()  # mid-load
            answers = [f.result() for f in during]
        assert answers == [f"g{i % 8}" for i in range(40)]  # none failed
        assert [search(i) for i in range(8)] == [f"g{i}" for i in range(8)]  # the survivor serves
