"""Overload: what callers see at 2x and 4x the suite's capacity.

    python -m bench.overload [--duration 15] [--deadline 2] [--gateway-limit 16] [--encoder-queue 32]

Starts `imsearch serve` in a process of its own over a small synthetic gallery, measures its
capacity (closed loop), then offers 2x and 4x that rate open-loop, each caller with a
`--deadline` deadline. Prints per load: admitted p50/p99 (calls answered OK), the share
shed with RESOURCE_EXHAUSTED and how fast a refusal came back, callers that hit their
deadline, and the serving process's RSS, threads and open files before and after. Latencies run from
each call's send; the generator shares the machine's cores with the suite, and how far it fell
behind its schedule is printed too, so absolute figures are this machine's.
"""

import argparse
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np

from bench.serve import start_serve
from devtools.ports import free_port
from imsearch.client import SearchClient
from lab.synthetic import synthetic_image


def process_figures(pid: int) -> str:
    with open(f"/proc/{pid}/status") as status:
        fields = dict(line.split(":", 1) for line in status)
    rss, peak = (int(fields[k].split()[0]) / 1024 for k in ("VmRSS", "VmHWM"))
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return f"RSS {rss:.0f} MB (peak {peak:.0f}), {int(fields['Threads'])} threads, {fds} fds"


def start_limited_serve(
    folder: Path, gateway_limit: int, encoder_queue: int
) -> tuple[subprocess.Popen[bytes], str]:
    """`imsearch serve` with the limits under test."""
    config = folder / "imsearch.toml"
    config.write_text(
        f"[gateway]\nmax_concurrent_rpcs = {gateway_limit}\n[encoder]\nmax_queue = {encoder_queue}\n"
    )
    address = f"127.0.0.1:{free_port()}"
    return start_serve(folder / "data", address, ["--config", str(config)]), address


class Outcomes:
    def __init__(self) -> None:
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self._lock = threading.Lock()

        self.lags: list[float] = []

    def record(self, code: str, seconds: float, lag: float) -> None:
        with self._lock:
            self.latencies[code].append(seconds)
            self.lags.append(lag)

    def summary(self, offered: int) -> str:
        ok = self.latencies.get("OK", [])
        shed = self.latencies.get("RESOURCE_EXHAUSTED", [])
        late = len(self.latencies.get("DEADLINE_EXCEEDED", []))
        other = {
            k: len(v)
            for k, v in self.latencies.items()
            if k not in ("OK", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED")
        }

        def ms(values: list[float], q: float) -> str:
            return f"{1000 * float(np.percentile(values, q)):.0f}" if values else "-"

        return (
            f"admitted {len(ok)}/{offered}: p50 {ms(ok, 50)} ms, p99 {ms(ok, 99)} ms; "
            f"shed {len(shed) / offered:.0%} (refusal p50 {ms(shed, 50)} ms, p99 {ms(shed, 99)} ms); "
            f"deadline exceeded {late}; other {other or 'none'}; "
            f"generator lag p50 {ms(self.lags, 50)} ms"
        )


def one_search(client: SearchClient, image: bytes, outcomes: Outcomes, scheduled: float) -> None:
    """Latency from the send (what the suite gave); the lag behind schedule is the generator's."""
    sent = time.perf_counter()
    try:
        client.search(image, top_k=10)
        code = "OK"
    except grpc.RpcError as exc:
        code = exc.code().name
    outcomes.record(code, time.perf_counter() - sent, sent - scheduled)


def capacity(client: SearchClient, queries: list[bytes], seconds: float, concurrency: int = 4) -> float:
    done = 0
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds

    def worker(seed: int) -> None:
        nonlocal done
        i = seed
        while time.perf_counter() < stop_at:
            client.search(queries[i % len(queries)], top_k=10)
            i += 1
            with lock:
                done += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return done / seconds


def query_images() -> list[bytes]:
    return [synthetic_image(10_000 + i, 256) for i in range(16)]


def offer(client: SearchClient, queries: list[bytes], rate: float, seconds: float) -> tuple[Outcomes, int]:
    outcomes, total = Outcomes(), int(rate * seconds)
    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=512) as pool:
        for i in range(total):
            scheduled = began + i / rate
            time.sleep(max(0.0, scheduled - time.perf_counter()))
            pool.submit(one_search, client, queries[i % len(queries)], outcomes, scheduled)
    return outcomes, total


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per load level")
    parser.add_argument("--deadline", type=float, default=2.0, help="each caller's deadline, seconds")
    parser.add_argument("--gallery", type=int, default=200)
    parser.add_argument("--gateway-limit", type=int, default=16, help="gateway max_concurrent_rpcs")
    parser.add_argument("--encoder-queue", type=int, default=32, help="encoder max_queue (images)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        serve, address = start_limited_serve(Path(folder), args.gateway_limit, args.encoder_queue)
        try:
            client = SearchClient(address, timeout=args.deadline)
            loader = SearchClient(address, timeout=600)
            loader.add_images((f"g{i}", synthetic_image(i, 256), {}) for i in range(args.gallery))
            queries = query_images()
            limits = f"gateway {args.gateway_limit} in flight, encoder queue {args.encoder_queue} images"
            print(f"limits: {limits}")
            print(f"before: {process_figures(serve.pid)}")
            qps = capacity(client, queries, args.duration / 2)
            print(f"capacity (closed loop, 4 callers): {qps:.1f} searches/s")
            for factor in (2, 4):
                outcomes, offered = offer(client, queries, factor * qps, args.duration)
                label = f"{factor}x ({factor * qps:.0f}/s offered, {args.deadline:g} s deadline)"
                print(f"{label}: {outcomes.summary(offered)}")
                time.sleep(1.0)
                print(f"  after: {process_figures(serve.pid)}")
            print(f"still serving: {len(client.search(queries[0]).results)} results")
        finally:
            serve.send_signal(signal.SIGTERM)
            serve.wait(timeout=60)


if __name__ == "__main__":
    main()
