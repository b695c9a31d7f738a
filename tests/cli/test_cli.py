"""The `imsearch` command as a user runs it: serve in a subprocess, then index, search, load-test."""

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from devtools.ports import free_port
from tests.helpers import REPO, jpeg, png

IMSEARCH = [sys.executable, "-m", "cli.main"]


def metrics_free_env(gateway: str) -> dict[str, str]:
    env = dict(os.environ, IMSEARCH_GATEWAY=gateway)
    for service in ("GATEWAY", "ENCODER", "INDEX"):
        env[f"IMSEARCH_{service}_METRICS_PORT"] = "0"
    env.pop("IMSEARCH_INDEX_REDIS_URL", None)
    return env


class Served:
    def __init__(self, data_dir: Path, gateway: str) -> None:
        self.env = metrics_free_env(gateway)
        self.http_url = f"http://127.0.0.1:{free_port()}"
        command = [*IMSEARCH, "serve", "--data-dir", str(data_dir), "--listen", gateway]
        self.process = subprocess.Popen(
            [*command, "--http", self.http_url.removeprefix("http://")], cwd=REPO, env=self.env
        )
        channel = grpc.insecure_channel(gateway)
        health = health_pb2_grpc.HealthStub(channel)
        grpc.channel_ready_future(channel).result(timeout=60)
        assert health.Check(health_pb2.HealthCheckRequest(), wait_for_ready=True).status == 1
        channel.close()

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*IMSEARCH, *args], cwd=REPO, env=self.env, capture_output=True, text=True, timeout=120
        )

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(timeout=60) == 0


@pytest.fixture
def images(tmp_path: Path) -> Path:
    for label, seeds in {"red": range(0, 4), "blue": range(10, 14)}.items():
        folder = tmp_path / "images" / label
        folder.mkdir(parents=True)
        for seed in seeds:
            (folder / f"{seed}.jpg").write_bytes(jpeg(seed))
    (tmp_path / "images" / "blue" / "extra.png").write_bytes(png(20, (80, 80), "RGB"))
    (tmp_path / "images" / "notes.txt").write_text("not an image, skipped")
    return tmp_path / "images"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    yield tmp_path / "data", f"127.0.0.1:{free_port()}"


def test_serve_index_search_restart(served: tuple[Path, str], images: Path) -> None:
    data_dir, gateway = served
    suite = Served(data_dir, gateway)
    try:
        indexed = suite.run("index", str(images))
        assert indexed.returncode == 0, indexed.stderr
        assert "added 9 images, 0 already stored" in indexed.stdout
        again = suite.run("index", str(images))  # a re-run resumes: nothing is encoded again
        assert "added 0 images, 9 already stored" in again.stdout, again.stdout + again.stderr
        assert "added 9 images" in suite.run("index", str(images), "--replace").stdout
        found = suite.run("search", str(images / "blue" / "11.jpg"), "--top-k", "3", "--json")
        assert found.returncode == 0, found.stderr
        top = json.loads(found.stdout)["results"][0]
        assert (top["id"], top["metadata"]["label"]) == ("images/blue/11.jpg", "blue")
        table = suite.run("search", str(images / "red" / "2.jpg"), "--index", "lsh", "--top-k", "2")
        assert table.stdout.splitlines()[0].split()[2:] == ["images/red/2.jpg", "red"]
        load = suite.run(
            "loadtest", "--images", str(images), "--count", "20", "--concurrency", "2", "--metrics", "",
            "--http", suite.http_url,
        )  # fmt: skip
        assert load.returncode == 0, load.stderr
        assert "gRPC: 20 ok" in load.stdout and "HTTP: 20 ok" in load.stdout, load.stdout
        assert "HTTP / gRPC, median of 4 alternating rounds: p50" in load.stdout
        audit = suite.run("verify")
        assert audit.returncode == 0, audit.stdout + audit.stderr
        assert "9 points in Qdrant, 9 in the LSH store: 0 missing from LSH, 0 only in LSH" in audit.stdout
        made = suite.run("collections", "create", "colours", "--model", "color_histogram")
        assert "created colours: model color_histogram" in made.stdout, made.stderr
        assert "int8" not in made.stdout
        small = suite.run("collections", "create", "small", "--quantization", "int8")
        assert small.stdout.rstrip().endswith("int8 vectors"), small.stdout + small.stderr
        assert suite.run("collections", "drop", "small").returncode == 0
        assert "added 4 images" in suite.run("index", str(images / "red"), "--collection", "colours").stdout
    finally:
        suite.stop()
    restarted = Served(data_dir, gateway)  # same data dir: Qdrant shard and Redis AOF come back
    try:
        again = restarted.run("search", str(images / "blue" / "11.jpg"), "--index", "lsh", "--json")
        assert json.loads(again.stdout)["results"][0]["id"] == "images/blue/11.jpg"
        listed = restarted.run("collections", "list").stdout.splitlines()
        assert [line.split(":")[0] for line in listed] == ["colours", "efficientnet_lite0"]
        assert "model color_histogram" in listed[0] and "4 points (4 in LSH)" in listed[0]
        red = restarted.run("search", str(images / "red" / "2.jpg"), "--collection", "colours", "--json")
        answer = json.loads(red.stdout)
        assert (answer["model"], answer["results"][0]["id"]) == ("color_histogram", "red/2.jpg")
        liked = restarted.run(
            "search", "--like", "red/2.jpg", "--collection", "colours", "--top-k", "2", "--json"
        )
        assert "red/2.jpg" not in [r["id"] for r in json.loads(liked.stdout)["results"]], liked.stderr
        paged = restarted.run(
            "search", str(images / "red" / "2.jpg"), "--offset", "1", "--min-score", "-1", "--json"
        )
        assert json.loads(paged.stdout)["results"][0]["id"] != "images/red/2.jpg", paged.stderr
        assert "dropped colours" in restarted.run("collections", "drop", "colours").stdout
        missing = restarted.run("collections", "describe", "colours")
        assert missing.returncode == 1 and "NOT_FOUND" in missing.stderr
    finally:
        restarted.stop()


def test_client_errors_are_reported_with_their_status(served: tuple[Path, str], tmp_path: Path) -> None:
    data_dir, gateway = served
    suite = Served(data_dir, gateway)
    try:
        bad = tmp_path / "bad.jpg"
        bad.write_bytes(b"not really a jpeg")
        result = suite.run("search", str(bad))
        assert result.returncode == 1
        assert "INVALID_ARGUMENT" in result.stderr and "not a decodable image" in result.stderr
    finally:
        suite.stop()
