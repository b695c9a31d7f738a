"""`imsearch serve` in a process of its own, as a user runs it, for the benchmarks that need one."""

import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from imsearch.core.channels import wait_for_channel

READY_WITHIN_S = 120.0


def start_serve(data_dir: Path, address: str, extra_args: Sequence[str] = ()) -> subprocess.Popen[bytes]:
    """Starts the suite on `address` and returns once its health says SERVING. Its output goes
    to serve.log beside the data directory, whose tail is shown if it does not come up."""
    command = [str(Path(sys.executable).parent / "imsearch"), "serve", "--data-dir", str(data_dir)]
    log_path = data_dir.parent / "serve.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen([*command, "--listen", address, *extra_args], stdout=log, stderr=log)
    try:
        channel = wait_for_channel(address, timeout=READY_WITHIN_S)
    except grpc.FutureTimeoutError:
        process.kill()
        raise SystemExit(
            f"imsearch serve did not start:\n{log_path.read_text(errors='replace')[-3000:]}"
        ) from None
    health = health_pb2_grpc.HealthStub(channel)
    give_up = time.monotonic() + READY_WITHIN_S
    while health.Check(health_pb2.HealthCheckRequest()).status != health_pb2.HealthCheckResponse.SERVING:
        if time.monotonic() > give_up or process.poll() is not None:
            raise SystemExit("imsearch serve did not become ready")
        time.sleep(0.2)
    channel.close()
    return process
