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
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.queries import gallery_and_queries
from bench.scaling import start, start_encoder
from devtools.embedded_redis import EmbeddedRedis
from devtools.ports import free_port
from imsearch.client import SearchClient
from imsearch.core.channels import open_channel
from imsearch.v1 import encoder_pb2, encoder_pb2_grpc

BATCH = 16  # the gateway's add_batch default


def start_services(
    data_dir: Path, redis_url: str, pin: bool
) -> tuple[list[subprocess.Popen[bytes]], dict[str, str]]:
    """Encoder (one thread, core 0), index and the two gateways (core 1), each SERVING."""
    on_core_1 = ["taskset", "--cpu-list", "1"] if pin else []
    encoder, encoder_address = start_encoder(1, 0 if pin else None)
    index_address = f"127.0.0.1:{free_port()}"
    index_command = [*on_core_1, sys.executable, "-m", "services.index", "--listen", index_address]
    index_command += ["--metrics-port", "-1", "--data-dir", str(data_dir), "--redis-url", redis_url]
    processes = [encoder, start(index_command, index_address)]
    addresses = {"encoder": encoder_address, "index": index_address}
    for name, pipelined in (("gateway_pipelined", "true"), ("gateway_serial", "false")):
        address = f"127.0.0.1:{free_port()}"
        command = [*on_core_1, sys.executable, "-m", "services.gateway", "--listen", address]
        command += [
            "--metrics-port",
            "-1",
            "--encoder-address",
            encoder_address,
            "--index-address",
            index_address,
        ]
        processes.append(start(command, address, {"IMSEARCH_GATEWAY_ADD_PIPELINE": pipelined}))
        addresses[name] = address
    return processes, addresses


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
