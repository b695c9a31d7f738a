"""What one gRPC round trip costs on this machine, with no work in it: the floor under every hop.

    python -m bench.grpc_floor [--calls 2000] [--rounds 3]

An echo server (5 KB payload, the size of one 1,280-float embedding) in its own process, called
serially from this one: grpcio's thread-pool server and its asyncio server over TCP, the
thread-pool server over a unix socket, and, as the baseline, a bare socket pair between two
processes. Prints median round-trip times per round and the CPU time one call costs on each
side (from /proc), since on a small VM the hand-offs between gRPC's threads are what cost.
"""

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from concurrent import futures
from typing import Any

import grpc
import numpy as np

from bench.process_cpu import cpu_seconds
from devtools.ports import free_port

PAYLOAD = b"x" * 5120
METHOD = "/bench.Echo/Echo"


def _echo(request: bytes, context: object) -> bytes:
    return request


async def _echo_async(request: bytes, context: object) -> bytes:
    return request


def _handlers(behaviour: Any) -> tuple[grpc.GenericRpcHandler]:
    method: grpc.RpcMethodHandler[bytes, bytes] = grpc.unary_unary_rpc_method_handler(behaviour)
    return (grpc.method_handlers_generic_handler("bench.Echo", {"Echo": method}),)


def serve(kind: str, address: str) -> None:
    """Runs in the child process until it is terminated."""
    if kind == "aio":

        async def run() -> None:
            server = grpc.aio.server()
            server.add_generic_rpc_handlers(_handlers(_echo_async))
            server.add_insecure_port(address)
            await server.start()
            await server.wait_for_termination()

        asyncio.run(run())
        return
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32))
    server.add_generic_rpc_handlers(_handlers(_echo))
    server.add_insecure_port(address)
    server.start()
    server.wait_for_termination()


def time_grpc(address: str, server_pid: int, calls: int) -> tuple[float, float, float]:
    """(median round trip, client CPU per call, server CPU per call), in microseconds."""
    with grpc.insecure_channel(address) as channel:
        call: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(METHOD)
        for _ in range(200):  # warm-up: connection, HTTP/2 windows, thread pools
            call(PAYLOAD)
        times = []
        client_cpu, server_cpu = time.process_time(), cpu_seconds(server_pid)
        for _ in range(calls):
            began = time.perf_counter()
            call(PAYLOAD)
            times.append(time.perf_counter() - began)
        client_cpu = time.process_time() - client_cpu
        server_cpu = cpu_seconds(server_pid) - server_cpu
    return float(np.median(times)) * 1e6, client_cpu / calls * 1e6, server_cpu / calls * 1e6


def time_socketpair(calls: int) -> float:
    """Median round trip of the same payload through a bare socket pair to a forked echo."""
    ours, theirs = socket.socketpair()
    child = os.fork()
    if child == 0:
        ours.close()
        while data := theirs.recv(65536):
            theirs.sendall(data)
        os._exit(0)
    theirs.close()
    times = []
    for _ in range(calls):
        began = time.perf_counter()
        ours.sendall(PAYLOAD)
        received = 0
        while received < len(PAYLOAD):
            received += len(ours.recv(65536))
        times.append(time.perf_counter() - began)
    ours.close()
    os.waitpid(child, 0)
    return float(np.median(times)) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--serve", nargs=2, metavar=("KIND", "ADDRESS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(*args.serve)
        return
    with tempfile.TemporaryDirectory() as tmp:
        servers = {
            "grpcio thread-pool server, TCP": ("sync", f"127.0.0.1:{free_port()}"),
            "grpcio asyncio server, TCP": ("aio", f"127.0.0.1:{free_port()}"),
            "grpcio thread-pool server, unix socket": ("sync", f"unix://{tmp}/echo.sock"),
        }
        processes = {
            name: subprocess.Popen([sys.executable, "-m", "bench.grpc_floor", "--serve", kind, address])
            for name, (kind, address) in servers.items()
        }
        try:
            for _, address in servers.values():
                with grpc.insecure_channel(address) as channel:
                    grpc.channel_ready_future(channel).result(timeout=30)
            rows: dict[str, list[tuple[float, float, float]]] = {name: [] for name in servers}
            raw: list[float] = []
            for _ in range(args.rounds):  # rounds interleave the servers, so noise hits all alike
                for name, (_, address) in servers.items():
                    rows[name].append(time_grpc(address, processes[name].pid, args.calls))
                raw.append(time_socketpair(args.calls))
        finally:
            for process in processes.values():
                process.terminate()
                process.wait(timeout=10)
    print(f"empty round trips, {len(PAYLOAD)} B payload, {args.calls} calls x {args.rounds} rounds")
    for name, results in rows.items():
        medians = ", ".join(f"{r[0]:.0f}" for r in results)
        client = np.median([r[1] for r in results])
        server = np.median([r[2] for r in results])
        print(f"  {name:40s} p50 {medians} us   CPU/call client {client:.0f} us, server {server:.0f} us")
    print(f"  {'bare socket pair, two processes':40s} p50 {', '.join(f'{r:.0f}' for r in raw)} us")


if __name__ == "__main__":
    main()
