"""Search throughput through one gateway over 1 and over 2 encoder replicas.

    python -m bench.scaling [--concurrency 8] [--seconds 15] [--rounds 3] [--gallery 300]

Each encoder is its own process with one inference thread (`--intra-op-threads 1`), held to
one core of its own with `taskset` (as a Kubernetes pod with a one-CPU limit; `--no-pin` lets
it use every core, decoding included); the gateway balances round robin over the replicas
(`ipv4:` target list). The index, the gateway and the load generator share the machine with
them. The two set-ups alternate round by round (the machine is shared and noisy); prints the
median QPS of each, p50 latency, their ratio (the issue's goal: >= 1.7x on 2 cores), and the
CPU each process spent per search, which shows where the cores went.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.process_cpu import cpu_seconds
from bench.queries import gallery_and_queries
from devtools.embedded_redis import EmbeddedRedis
from devtools.ports import free_port
from imsearch.client import SearchClient
from imsearch.core.channels import wait_for_channel

REPO = Path(__file__).resolve().parents[1]


def start(command: list[str], address: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Runs a service's command (with `env` added to the environment) until it is SERVING."""
    environment = {**os.environ, **env} if env else None
    process = subprocess.Popen(
        command, cwd=REPO, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    channel = wait_for_channel(address, timeout=120)
    status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), wait_for_ready=True)
    assert status.status == health_pb2.HealthCheckResponse.SERVING, f"{command} did not become ready"
    channel.close()
    return process


def start_encoder(threads: int, core: int | None) -> tuple[subprocess.Popen[bytes], str]:
    """An encoder process; on `core` alone if given (as a pod with a one-CPU limit)."""
    address = f"127.0.0.1:{free_port()}"
    pin = ["taskset", "--cpu-list", str(core)] if core is not None else []
    command = [*pin, sys.executable, "-m", "services.encoder", "--listen", address, "--metrics-port", "-1"]
    command += ["--intra-op-threads", str(threads), "--model-repository", str(REPO / "model_repository")]
    return start(command, address), address


def start_gateway(encoders: list[str], index: str) -> tuple[subprocess.Popen[bytes], str]:
    address = f"127.0.0.1:{free_port()}"
    command = [sys.executable, "-m", "services.gateway", "--listen", address, "--metrics-port", "-1"]
    command += ["--encoder-address", "ipv4:" + ",".join(encoders), "--index-address", index]
    return start(command, address), address


def closed_loop(
    client: SearchClient, queries: Sequence[bytes], concurrency: int, seconds: float
) -> list[float]:
    """`concurrency` callers searching back to back for `seconds`; their latencies."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    def caller(start_at: int) -> None:
        turn = start_at
        while time.perf_counter() < deadline:
            began = time.perf_counter()
            client.search(queries[turn % len(queries)], top_k=10)
            latencies.append(time.perf_counter() - began)  # list.append is atomic under the GIL
            turn += concurrency

    callers = [threading.Thread(target=caller, args=(n,)) for n in range(concurrency)]
    for thread in callers:
        thread.start()
    for thread in callers:
        thread.join()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--gallery", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1, help="inference threads per encoder")
    parser.add_argument(
        "--no-pin", dest="pin", action="store_false", help="let encoders use every core (default: one each)"
    )
    args = parser.parse_args()

    gallery, queries, source = gallery_and_queries(args.gallery, 60)
    processes: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as tmp:
        redis_server = EmbeddedRedis(Path(tmp) / "redis")
        try:
            index = f"127.0.0.1:{free_port()}"
            index_command = [sys.executable, "-m", "services.index", "--listen", index]
            index_command += ["--metrics-port", "-1", "--data-dir", str(Path(tmp) / "index")]
            index_command += ["--redis-url", redis_server.url]
            processes.append(start(index_command, index))
            cores = sorted(os.sched_getaffinity(0))
            encoders = [
                start_encoder(args.threads, cores[n % len(cores)] if args.pin else None) for n in range(2)
            ]
            processes += [process for process, _ in encoders]
            one, one_address = start_gateway([encoders[0][1]], index)
            two, two_address = start_gateway([address for _, address in encoders], index)
            processes += [one, two]
            clients = {1: SearchClient(one_address), 2: SearchClient(two_address)}
            clients[2].add_images(iter((image_id, data, {}) for image_id, data in gallery))
            print(f"{source}; {args.concurrency} concurrent searches, {args.seconds:.0f} s per run")
            qps: dict[int, list[float]] = {1: [], 2: []}
            p50: dict[int, list[float]] = {1: [], 2: []}
            roles = {
                1: {"encoders": [encoders[0][0].pid], "gateway": [one.pid]},
                2: {"encoders": [p.pid for p, _ in encoders], "gateway": [two.pid]},
            }
            for by_role in roles.values():
                by_role |= {"index": [processes[0].pid], "load generator": [os.getpid()]}
            cpu_ms: dict[int, dict[str, list[float]]] = {n: {r: [] for r in roles[n]} for n in (1, 2)}
            closed_loop(clients[2], queries, args.concurrency, 3.0)  # warm-up
            for round_number in range(args.rounds):
                for replicas in (1, 2) if round_number % 2 == 0 else (2, 1):
                    before = {r: sum(map(cpu_seconds, pids)) for r, pids in roles[replicas].items()}
                    latencies = closed_loop(clients[replicas], queries, args.concurrency, args.seconds)
                    for role, pids in roles[replicas].items():
                        spent = sum(map(cpu_seconds, pids)) - before[role]
                        cpu_ms[replicas][role].append(1000 * spent / len(latencies))
                    qps[replicas].append(len(latencies) / args.seconds)
                    p50[replicas].append(statistics.median(latencies) * 1000)
                    print(f"  round {round_number + 1}, {replicas} replica(s): {qps[replicas][-1]:.1f} QPS")
            print("| encoder replicas | search QPS (median) | p50 ms (median) |")
            print("|---|---|---|")
            for replicas in (1, 2):
                median_qps, median_p50 = statistics.median(qps[replicas]), statistics.median(p50[replicas])
                print(f"| {replicas} | {median_qps:.1f} | {median_p50:.1f} |")
            print("| encoder replicas | " + " | ".join(f"CPU ms per search: {r}" for r in roles[1]) + " |")
            print("|---|" + "---|" * len(roles[1]))
            for replicas in (1, 2):
                shares = [f"{statistics.median(cpu_ms[replicas][r]):.2f}" for r in roles[1]]
                print(f"| {replicas} | " + " | ".join(shares) + " |")
            ratio = statistics.median(qps[2]) / statistics.median(qps[1])
            print(f"throughput ratio, 2 replicas / 1: {ratio:.2f}x (goal >= 1.7x)")
            for client in clients.values():
                client.close()
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
            redis_server.stop()


if __name__ == "__main__":
    try:
        main()
    except grpc.RpcError as exc:
        raise SystemExit(f"search failed: {exc.code().name}: {exc.details()}") from None
