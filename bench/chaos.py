"""Chaos: SIGKILL during bulk adds, restart, audit.

    python -m bench.chaos [--rounds 6] [--gallery-per-round 60]

Each round starts `imsearch serve` on one data directory, adds images one call at a time
(an add counts as acknowledged once its call returned OK), and after a random 1-3 s kills,
with SIGKILL, either the whole suite or only its Redis. Then it restarts the suite and checks
that every acknowledged image is stored and found by exact search (a sample of 20 per round,
plus the point count) and that `verify` finds the two stores consistent. Prints
"N kills, 0 acknowledged writes lost, 0 inconsistencies" or what broke.
"""

import argparse
import os
import random
import signal
import tempfile
import threading
import time
from pathlib import Path

import grpc

from bench.serve import start_serve
from devtools.ports import free_port
from imsearch.client import SearchClient
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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=6)
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
    print(f"{args.rounds} kills, {lost} acknowledged writes lost, {inconsistencies} inconsistencies")


if __name__ == "__main__":
    main()
