"""Chaos: SIGKILL during bulk adds, restart, audit.

    python -m bench.chaos [--rounds 6] [--index-rounds 4] [--seed 0]

Suite rounds start `imsearch serve` on one data directory, add images one call at a time (an
add counts as acknowledged once its call returned OK), and after a random 1-3 s kill, with
SIGKILL, either the whole suite or only its Redis. Then the suite restarts, and the round checks
that every acknowledged image is stored and found by exact search (a sample of 20 per round,
plus the point count) and that `verify` finds the two stores consistent.

Index rounds run the index service as its own process (`python -m services.index`, as in
production) beside a redis-server, upsert batches of vectors straight to it, and kill either
the index process or Redis; they check every acknowledged id with GetVectors, then Verify.
The test command runs two index rounds (tests/services/index/test_crash_consistency.py).

Prints "N kills, 0 acknowledged writes lost, 0 inconsistencies" or what broke.
"""

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.serve import start_serve
from devtools.embedded_redis import EmbeddedRedis
from devtools.ports import free_port
from imsearch.client import SearchClient
from imsearch.core.channels import wait_for_channel
from imsearch.core.validation import MAX_IDS_PER_REQUEST
from imsearch.v1 import index_pb2, index_pb2_grpc
from lab.synthetic import synthetic_image


def redis_pid(data_dir: Path) -> int | None:
    """The embedded redis-server of this data directory, found by the port in its config file
    (redis-server retitles itself `redis-server 127.0.0.1:PORT`)."""
    config = (data_dir / "redis" / "redis.conf").read_text().splitlines()
    port = next(line.split()[1] for line in config if line.startswith("port "))
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if b"redis-server" in cmdline and f":{port}".encode() in cmdline:
                return int(entry)
    return None


def add_until_stopped(client: SearchClient, first: int, stop: threading.Event, acked: list[int]) -> None:
    i = first
    while not stop.is_set():
        try:
            client.add_images([(f"img{i}", synthetic_image(i, 160), {"n": i})])
            acked.append(i)
        except grpc.RpcError:
            return  # the suite is going down: this add was not acknowledged
        i += 1


@dataclass
class ChaosOutcome:
    kills: int = 0
    lost: int = 0
    inconsistencies: int = 0


DIM = 64
BATCH = 8


class IndexProcess:
    """`python -m services.index` on its own data directory and a Redis URL."""

    def __init__(self, data_dir: Path, redis_url: str) -> None:
        self.address = f"127.0.0.1:{free_port()}"
        environment = {
            **os.environ,
            "IMSEARCH_INDEX_LISTEN": self.address,
            "IMSEARCH_INDEX_DATA_DIR": str(data_dir),
            "IMSEARCH_INDEX_REDIS_URL": redis_url,
            "IMSEARCH_INDEX_METRICS_PORT": "-1",
        }
        log = (data_dir.parent / "index.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "services.index"], env=environment, stdout=log, stderr=log
        )
        self.channel = wait_for_channel(self.address, timeout=120)
        health = health_pb2_grpc.HealthStub(self.channel)
        while health.Check(health_pb2.HealthCheckRequest()).status != health_pb2.HealthCheckResponse.SERVING:
            time.sleep(0.1)
        self.stub = index_pb2_grpc.IndexServiceStub(self.channel)

    def stop(self) -> None:
        self.channel.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=60)


def upsert_until_stopped(
    stub: index_pb2_grpc.IndexServiceStub, first: int, stop: threading.Event, acked: list[str]
) -> None:
    rng = np.random.default_rng(first)
    i = first
    while not stop.is_set():
        ids = [f"v{n}" for n in range(i, i + BATCH)]
        vectors = rng.standard_normal((BATCH, DIM)).astype(np.float32)
        points = [index_pb2.Point(id=n, vector=v.tolist()) for n, v in zip(ids, vectors, strict=True)]
        try:
            stub.Upsert(index_pb2.UpsertRequest(collection="chaos", points=points), timeout=10)
        except grpc.RpcError:
            return  # the index or its Redis is going down: this batch was not acknowledged
        acked.extend(ids)
        i += BATCH


def stored_among(stub: index_pb2_grpc.IndexServiceStub, ids: list[str]) -> int:
    found = 0
    for start in range(0, len(ids), MAX_IDS_PER_REQUEST):
        request = index_pb2.GetVectorsRequest(
            collection="chaos", ids=ids[start : start + MAX_IDS_PER_REQUEST]
        )
        found += len(stub.GetVectors(request, timeout=60).points)
    return found


def index_chaos(
    folder: Path, rounds: int, rng: random.Random, report: Callable[[str], None] = print
) -> ChaosOutcome:
    """Rounds of SIGKILL of the index process or of Redis during upserts (see the docstring)."""
    outcome = ChaosOutcome()
    data_dir = folder / "index-data"
    data_dir.mkdir(parents=True)
    redis_server = EmbeddedRedis(folder / "index-redis")
    index = IndexProcess(data_dir, redis_server.url)
    index.stub.EnsureCollection(index_pb2.EnsureCollectionRequest(collection="chaos", dim=DIM))
    acked: list[str] = []
    try:
        for round_number in range(rounds):
            target = "index" if round_number % 2 == 0 else "redis"
            stop = threading.Event()
            writer = threading.Thread(
                target=upsert_until_stopped, args=(index.stub, 1_000_000 * round_number, stop, acked)
            )
            writer.start()
            time.sleep(rng.uniform(0.5, 1.5))
            os.kill(index.process.pid if target == "index" else redis_server.pid, signal.SIGKILL)
            outcome.kills += 1
            stop.set()
            writer.join()
            index.stop()
            if target == "redis":
                redis_server.stop()
                redis_server = EmbeddedRedis(folder / "index-redis")  # the same files, reopened
            index = IndexProcess(data_dir, redis_server.url)
            lost = len(acked) - stored_among(index.stub, acked)
            audit = index.stub.Verify(index_pb2.VerifyRequest(collection="chaos"), timeout=600)
            differences = audit.missing_in_lsh + audit.extra_in_lsh + audit.diverged
            outcome.lost += lost
            outcome.inconsistencies += differences
            report(
                f"index round {round_number + 1}: killed {target}; {len(acked)} acknowledged, "
                f"{audit.points} stored, {lost} acknowledged not stored, {differences} store differences"
            )
    finally:
        index.stop()
        redis_server.stop()
    return outcome


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=6, help="suite rounds (suite or its Redis killed)")
    parser.add_argument(
        "--index-rounds", type=int, default=4, help="index rounds (index process or Redis killed)"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    acked: list[int] = []
    lost = inconsistencies = 0
    with tempfile.TemporaryDirectory() as folder:
        data_dir = Path(folder) / "data"
        address = f"127.0.0.1:{free_port()}"
        data_dir.mkdir(parents=True)
        serve = start_serve(data_dir, address)
        began = time.monotonic()
        try:
            for round_number in range(args.rounds):
                target = "suite" if round_number % 2 == 0 else "redis"
                stop = threading.Event()
                client = SearchClient(address, timeout=10)
                writer = threading.Thread(
                    target=add_until_stopped, args=(client, len(acked) + 10_000 * round_number, stop, acked)
                )
                writer.start()
                time.sleep(rng.uniform(1.0, 3.0))
                victim = serve.pid if target == "suite" else redis_pid(data_dir)
                assert victim is not None, "no embedded redis found"
                os.kill(victim, signal.SIGKILL)
                stop.set()
                writer.join()
                client.close()
                if serve.poll() is None:  # only Redis died: stop the suite to restart it
                    serve.send_signal(signal.SIGTERM)
                    serve.wait(timeout=60)
                else:
                    time.sleep(0.5)  # Redis follows its killed parent (parent-death signal)
                serve = start_serve(data_dir, address)
                check = SearchClient(address, timeout=60)
                stats = check.stats()
                sample = rng.sample(acked, min(20, len(acked)))
                missing = [
                    i
                    for i in sample
                    if check.search(synthetic_image(i, 160), top_k=1, index="exact").results[0].id
                    != f"img{i}"
                ]
                lost += len(missing) + max(0, len(acked) - stats.collection.points)
                audit = check.verify()
                differences = audit.missing_in_lsh + audit.extra_in_lsh + audit.diverged
                inconsistencies += differences
                print(
                    f"round {round_number + 1} ({time.monotonic() - began:.0f} s): killed {target}; "
                    f"{len(acked)} acknowledged, "
                    f"{stats.collection.points} stored, {len(missing)} of {len(sample)} sampled not found, "
                    f"{differences} store differences"
                )
                check.close()
        finally:
            if serve.poll() is None:
                serve.send_signal(signal.SIGTERM)
                serve.wait(timeout=60)
        index = index_chaos(Path(folder), args.index_rounds, rng)
    kills = args.rounds + index.kills
    lost += index.lost
    inconsistencies += index.inconsistencies
    print(f"{kills} kills, {lost} acknowledged writes lost, {inconsistencies} inconsistencies")


if __name__ == "__main__":
    main()
