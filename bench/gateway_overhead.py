"""Search through the three gRPC services vs the same pipeline called in-process.

    python -m bench.gateway_overhead [--gallery 1000] [--queries 50] [--rounds 3]

The services run as in production: three processes (`python -m services.index|encoder|gateway`)
talking gRPC on loopback. The baseline is the same code without the network: an `Encoder` and
an `IndexEngine` in this process, over their own copy of the same gallery. The paths
alternate query by query; prints median latencies and their ratio (goal: <= 1.25), the two
downstream hops called directly, the index search in-process, and an empty gRPC round trip
(a health check), whose cost times three hops bounds the ratio from below on this machine.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.queries import gallery_and_queries
from devtools.embedded_redis import EmbeddedRedis
from devtools.ports import free_port
from imsearch.client import SearchClient
from imsearch.core.channels import wait_for_channel
from imsearch.core.index_kind import IndexKind
from imsearch.core.metrics import ServiceMetrics
from imsearch.v1 import encoder_pb2, encoder_pb2_grpc, index_pb2, index_pb2_grpc
from services.encoder.engine import Encoder
from services.encoder.settings import EncoderSettings
from services.index.app import build_engine
from services.index.settings import IndexSettings


def start_services(data_dir: Path, redis_url: str) -> tuple[list[subprocess.Popen[bytes]], dict[str, str]]:
    ports = {name: free_port() for name in ("gateway", "encoder", "index")}
    env = dict(
        os.environ,
        IMSEARCH_INDEX_LISTEN=f"127.0.0.1:{ports['index']}",
        IMSEARCH_INDEX_DATA_DIR=str(data_dir),
        IMSEARCH_INDEX_REDIS_URL=redis_url,
        IMSEARCH_ENCODER_LISTEN=f"127.0.0.1:{ports['encoder']}",
        IMSEARCH_GATEWAY_LISTEN=f"127.0.0.1:{ports['gateway']}",
        IMSEARCH_GATEWAY_ENCODER_ADDRESS=f"127.0.0.1:{ports['encoder']}",
        IMSEARCH_GATEWAY_INDEX_ADDRESS=f"127.0.0.1:{ports['index']}",
        **{f"IMSEARCH_{s}_METRICS_PORT": "-1" for s in ("INDEX", "ENCODER", "GATEWAY")},
    )
    processes = []
    for name in ("index", "encoder", "gateway"):
        processes.append(
            subprocess.Popen([sys.executable, "-m", f"services.{name}"], env=env, stderr=subprocess.DEVNULL)
        )
        wait_for_channel(f"127.0.0.1:{ports[name]}", timeout=60).close()
    time.sleep(1.0)  # the gateway binds only after it has reached the other two
    return processes, {name: f"127.0.0.1:{port}" for name, port in ports.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gallery", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--index", type=IndexKind, default=IndexKind.HNSW, choices=list(IndexKind))
    args = parser.parse_args()
    gallery, queries, source = gallery_and_queries(args.gallery, args.queries)
    with tempfile.TemporaryDirectory() as tmp:
        redis_server = EmbeddedRedis(Path(tmp) / "redis")
        processes, addresses = start_services(Path(tmp) / "services", redis_server.url)
        gateway = addresses["gateway"]
        try:
            client = SearchClient(gateway)
            client.add_images((image_id, data, {}) for image_id, data in gallery)

            encoder = Encoder(EncoderSettings(metrics_port=-1), ServiceMetrics("baseline"))
            settings = IndexSettings(
                data_dir=Path(tmp) / "baseline", redis_url=redis_server.url, redis_prefix="baseline"
            )
            engine = build_engine(settings, ServiceMetrics("baseline"))
            engine.ensure_collection("baseline", 1280)
            for start in range(0, len(gallery), 32):
                chunk = gallery[start : start + 32]
                _, vectors = encoder.encode("", [data for _, data in chunk])
                engine.upsert("baseline", [(i, v, {}) for (i, _), v in zip(chunk, vectors, strict=True)])
            engine.wait_for_optimize()

            def in_process(image: bytes) -> None:
                _, vectors = encoder.encode("", [image])
                engine.search("baseline", vectors[0], 10, args.index, None, False)

            def through_gateway(image: bytes) -> None:
                client.search(image, top_k=10, index=args.index, rerank=False)

            # The two hops the gateway makes, called directly, to see where the overhead goes.
            encoder_stub = encoder_pb2_grpc.EncoderServiceStub(wait_for_channel(addresses["encoder"]))
            index_stub = index_pb2_grpc.IndexServiceStub(wait_for_channel(addresses["index"]))
            kind = args.index.to_proto()

            def encoder_rpc(image: bytes) -> None:
                encoder_stub.Encode(encoder_pb2.EncodeRequest(images=[image]))

            def index_rpc(image: bytes) -> None:
                vector = vectors_by_image[image]
                index_stub.Search(
                    index_pb2.SearchVectorRequest(
                        collection=collection,
                        vector=vector,
                        top_k=10,
                        index=kind,
                    )
                )

            # An empty round trip through the same gRPC server stack: the floor of one hop.
            health_stub = health_pb2_grpc.HealthStub(wait_for_channel(addresses["gateway"]))

            def empty_rpc(image: bytes) -> None:
                health_stub.Check(health_pb2.HealthCheckRequest())

            def index_in_process(image: bytes) -> None:
                engine.search("baseline", vectors_by_image[image], 10, args.index, None, False)

            collection = "efficientnet_lite0"
            vectors_by_image = {image: encoder.encode("", [image])[1][0].tolist() for image in queries}
            calls = {
                "in_process": in_process,
                "gateway": through_gateway,
                "encoder_rpc": encoder_rpc,
                "index_rpc": index_rpc,
                "index_local": index_in_process,
                "empty_rpc": empty_rpc,
            }
            timings: dict[str, list[float]] = {name: [] for name in calls}
            for image in queries[:5]:  # warm-up
                in_process(image)
                through_gateway(image)
            for _ in range(args.rounds):
                for image in queries:
                    for name, call in calls.items():
                        began = time.perf_counter()
                        call(image)
                        timings[name].append(time.perf_counter() - began)
            client.close()
            engine.close()
            encoder.close()
        finally:
            for process in reversed(processes):
                process.terminate()
                process.wait(timeout=30)
            redis_server.stop()
    p50 = {name: float(np.median(values)) * 1000 for name, values in timings.items()}
    p95 = {name: float(np.percentile(values, 95)) * 1000 for name, values in timings.items()}
    print(f"{source}; index {args.index}, top_k 10, {len(timings['gateway'])} searches per path")
    for name in timings:
        print(f"  {name:11s} p50 {p50[name]:7.2f} ms   p95 {p95[name]:7.2f} ms")
    print(f"  gateway / in-process p50 ratio: {p50['gateway'] / p50['in_process']:.3f} (goal <= 1.25)")
    hops = p50["encoder_rpc"] + p50["index_rpc"]
    print(f"  the gateway's own share beyond its two calls: {p50['gateway'] - hops:.2f} ms")
    # A search crosses three hops (client -> gateway -> encoder, -> index); none can cost less
    # than an empty round trip, so this is the best ratio this machine allows.
    floor = (p50["in_process"] + 3 * p50["empty_rpc"]) / p50["in_process"]
    print(f"  floor: in-process + 3 empty round trips = {floor:.3f} x in-process")


if __name__ == "__main__":
    main()
