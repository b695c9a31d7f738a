"""Bulk add through the gateway against the encoder alone, side by side.

    python -m bench.ingest_e2e [--images 1200] [--rounds 3] [--no-pin]

Four processes: the encoder (one inference thread, pinned to core 0, as a pod with a CPU of
its own), the index and two gateways on core 1, one with `add_pipeline` on (the next batch is
encoded while the index stores this one) and one with it off. Each round: the same images sent
straight to the encoder in batches of the gateway's `add_batch` (16), one call after another
(the encoder alone); then `AddImages`, one stream, through each gateway into a fresh
collection (encode, thumbnail, upsert into Qdrant and the LSH store; past 1,000 points, the
HNSW build and the LSH buckets too). Printed: the median images/s of each and the median of
the rounds' ratios to the encoder alone (issue 14's goal: >= 0.9x); beside it, the encoder alone
making the 160-pixel thumbnails the gateway asks for on every add.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.queries import gallery_and_queries
from devtools.embedded_redis import EmbeddedRedis
from devtools.ports import free_port
from imsearch.client import SearchClient
from imsearch.core.channels import open_channel, wait_for_channel
from imsearch.v1 import encoder_pb2, encoder_pb2_grpc

BATCH = 16  # the gateway's add_batch default


def start(name: str, core: int | None, env: dict[str, str]) -> subprocess.Popen[bytes]:
    pin = ["taskset", "--cpu-list", str(core)] if core is not None else []
    module = "services.gateway" if name.startswith("gateway") else f"services.{name}"
    return subprocess.Popen([*pin, sys.executable, "-m", module], env=env, stderr=subprocess.DEVNULL)


def start_services(
    data_dir: Path, redis_url: str, pin: bool
) -> tuple[list[subprocess.Popen[bytes]], dict[str, str]]:
    ports = {name: free_port() for name in ("encoder", "index", "gateway_pipelined", "gateway_serial")}
    base = dict(os.environ, **{f"IMSEARCH_{s}_METRICS_PORT": "-1" for s in ("INDEX", "ENCODER", "GATEWAY")})
    envs = {
        "encoder": {
            "IMSEARCH_ENCODER_LISTEN": f"127.0.0.1:{ports['encoder']}",
            "IMSEARCH_ENCODER_INTRA_OP_THREADS": "1",
        },
        "index": {
            "IMSEARCH_INDEX_LISTEN": f"127.0.0.1:{ports['index']}",
            "IMSEARCH_INDEX_DATA_DIR": str(data_dir),
            "IMSEARCH_INDEX_REDIS_URL": redis_url,
        },
    }
    for name, pipelined in (("gateway_pipelined", "true"), ("gateway_serial", "false")):
        envs[name] = {
            "IMSEARCH_GATEWAY_LISTEN": f"127.0.0.1:{ports[name]}",
            "IMSEARCH_GATEWAY_ENCODER_ADDRESS": f"127.0.0.1:{ports['encoder']}",
            "IMSEARCH_GATEWAY_INDEX_ADDRESS": f"127.0.0.1:{ports['index']}",
            "IMSEARCH_GATEWAY_ADD_PIPELINE": pipelined,
        }
    processes = []
    for name in ("index", "encoder", "gateway_pipelined", "gateway_serial"):
        core = (0 if name == "encoder" else 1) if pin else None
        processes.append(start(name, core, {**base, **envs[name]}))
        wait_for_channel(f"127.0.0.1:{ports[name]}", timeout=60).close()
    time.sleep(1.0)  # a gateway binds only after it has reached the other two
    return processes, {name: f"127.0.0.1:{port}" for name, port in ports.items()}


def encoder_alone(
    stub: encoder_pb2_grpc.EncoderServiceStub, images: list[bytes], thumbnails: int = 0
) -> float:
    began = time.perf_counter()
    for start_at in range(0, len(images), BATCH):
        request = encoder_pb2.EncodeRequest(
            images=images[start_at : start_at + BATCH], thumbnail_size=thumbnails
        )
        stub.Encode(request, timeout=120)
    return len(images) / (time.perf_counter() - began)


def through_gateway(client: SearchClient, gallery: list[tuple[str, bytes]], collection: str) -> float:
    client.create_collection(collection)
    began = time.perf_counter()
    added = client.add_images(((i, data, {}) for i, data in gallery), collection=collection)
    elapsed = time.perf_counter() - began
    assert added == len(gallery), added
    return len(gallery) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=1200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-pin", action="store_true", help="let every process use every core")
    args = parser.parse_args()
    gallery, _, source = gallery_and_queries(args.images, 0)
    images = [data for _, data in gallery]
    rates: dict[str, list[float]] = {
        "encoder alone": [],
        "  with thumbnails": [],  # what the gateway asks of it on every add (160 px)
        "gateway, pipelined": [],
        "gateway, serial": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        redis_server = EmbeddedRedis(Path(tmp) / "redis")
        processes, addresses = start_services(Path(tmp) / "index", redis_server.url, not args.no_pin)
        try:
            encoder = encoder_pb2_grpc.EncoderServiceStub(open_channel(addresses["encoder"]))
            pipelined = SearchClient(addresses["gateway_pipelined"], timeout=300)
            serial = SearchClient(addresses["gateway_serial"], timeout=300)
            encoder_alone(encoder, images[:BATCH])  # warm
            for n in range(args.rounds):
                rates["encoder alone"].append(encoder_alone(encoder, images))
                rates["  with thumbnails"].append(encoder_alone(encoder, images, thumbnails=160))
                rates["gateway, pipelined"].append(through_gateway(pipelined, gallery, f"pipelined{n}"))
                rates["gateway, serial"].append(through_gateway(serial, gallery, f"serial{n}"))
        finally:
            for process in processes:
                process.terminate()
                process.wait()
            redis_server.stop()
    placement = "unpinned" if args.no_pin else "encoder on core 0, index and gateways on core 1"
    print(f"{len(images)} images ({source}), {args.rounds} rounds, {placement}")
    for name, values in rates.items():
        ratios = [v / a for v, a in zip(values, rates["encoder alone"], strict=True)]
        ratio = statistics.median(ratios)
        print(f"{name:20s} {statistics.median(values):7.1f} images/s  {ratio:.2f}x the encoder alone")


if __name__ == "__main__":
    main()
