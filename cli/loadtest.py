"""`imsearch loadtest`: a gRPC load generator against a running gateway.

Closed loop (`--concurrency N`): N clients, each sends its next request when the last returns.
Open loop (`--rate R`): requests start on a fixed schedule of R per second whatever the
latency, and latency counts from the scheduled start (no coordinated omission).
Stops after `--duration` seconds or `--count` requests. With `--metrics URL,...` it reads the
services' Prometheus endpoints before and after and prints the mean time per stage.
With `--http URL` the same queries go over gRPC and over the HTTP/JSON front in alternating
rounds (`--rounds`, splitting `--duration`), and the two paths are printed with their ratio.
"""

import argparse
import base64
import random
import threading
import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from imsearch.client import SearchClient, gateway_address
from imsearch.core.channels import ClientSecurity
from imsearch.core.index_kind import IndexKind
from lab.datasets import labelled_images

DEFAULT_METRICS = "http://127.0.0.1:9100/metrics,http://127.0.0.1:9101/metrics,http://127.0.0.1:9102/metrics"


def add_loadtest_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--images", type=Path, default=None, help="folder of query images (default: synthetic)"
    )
    parser.add_argument("--concurrency", type=int, default=4, help="closed loop: concurrent clients")
    parser.add_argument("--rate", type=float, default=None, help="open loop: requests per second")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds to run")
    parser.add_argument("--count", type=int, default=None, help="requests to send (instead of --duration)")
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--index", choices=[kind.value for kind in IndexKind], default=IndexKind.HNSW.value)
    parser.add_argument(
        "--query",
        choices=["image", "like", "best-score", "text"],
        default="image",
        help="by image; by a stored id as example (average or best-score strategy; the ids "
        "of --images as `imsearch index` named them); or by text ('a photo of <folder name>', "
        "for a CLIP collection)",
    )
    parser.add_argument("--collection", default="", help="collection (default: the gateway's default one)")
    parser.add_argument("--warmup", type=int, default=5, help="requests sent before measuring")
    parser.add_argument(
        "--metrics", default=DEFAULT_METRICS, help="comma-separated /metrics URLs ('' = none)"
    )
    parser.add_argument(
        "--http",
        default=None,
        metavar="URL",
        help="compare with the HTTP/JSON front at URL (e.g. http://127.0.0.1:8080): the same load "
        "over gRPC and HTTP in alternating rounds, each path's figures and their ratio",
    )
    parser.add_argument("--rounds", type=int, default=4, help="with --http: alternating rounds")


@dataclass
class LoadResult:
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    elapsed: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def measure(self, search: Callable[[], object], since: float) -> None:
        """Runs one search; records its latency from `since`, or its status code on failure."""
        try:
            search()
            with self._lock:
                self.latencies.append(time.perf_counter() - since)
        except grpc.RpcError as exc:
            with self._lock:
                self.errors[exc.code().name] += 1
        except httpx.HTTPStatusError as exc:
            with self._lock:
                self.errors[f"HTTP {exc.response.status_code}"] += 1
        except httpx.TransportError as exc:
            with self._lock:
                self.errors[type(exc).__name__] += 1

    @property
    def qps(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies, q)) if self.latencies else float("nan")


Query = dict[str, Any]  # keyword arguments of SearchClient.search


class HttpSearcher:
    """`search(**query)` as SearchClient has it, over the HTTP/JSON front (POST /v1/search)."""

    def __init__(self, url: str, token: str | None = None, ca: Path | None = None) -> None:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        verify: Any = str(ca) if ca else True
        limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
        self._http = httpx.Client(base_url=url, headers=headers, verify=verify, timeout=60, limits=limits)

    def search(
        self,
        image: bytes | None = None,
        like: list[str] | None = None,
        strategy: str = "average_vector",
        text: str = "",
        top_k: int = 10,
        index: str = "hnsw",
        collection: str = "",
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"topK": top_k, "index": f"INDEX_KIND_{index.upper()}"}
        if image is not None:
            body["image"] = base64.b64encode(image).decode()
        if like:
            body["positiveIds"] = like
            body["strategy"] = f"EXAMPLE_STRATEGY_{strategy.upper()}"
        if text:
            body["text"] = text
        path = f"/v1/collections/{collection}:search" if collection else "/v1/search"
        response = self._http.post(path, json=body)
        response.raise_for_status()
        found: dict[str, Any] = response.json()
        return found

    def close(self) -> None:
        self._http.close()


def load_queries(folder: Path | None, kind: str = "image", limit: int = 200) -> list[Query]:
    if folder is None:
        if kind != "image":
            raise SystemExit("--query like/best-score needs --images: a folder indexed with `imsearch index`")
        from lab.synthetic import synthetic_image  # needs pillow: imsearch[loadtest]

        return [{"image": synthetic_image(seed)} for seed in range(8)]
    found = list(labelled_images([folder]))
    if not found:
        raise SystemExit(f"no images found under {folder}")
    random.Random(0).shuffle(found)
    if kind == "image":
        return [{"image": path.read_bytes()} for _, path, _ in found[:limit]]
    if kind == "text":
        return [{"text": f"a photo of {label}"} for label in sorted({label for _, _, label in found})]
    strategy = "best_score" if kind == "best-score" else "average_vector"
    return [{"like": [image_id], "strategy": strategy} for image_id, _, _ in found[:limit]]


Searcher = SearchClient | HttpSearcher


def closed_loop(
    client: Searcher,
    queries: list[Query],
    concurrency: int,
    duration: float,
    count: int | None,
    **kw: Any,
) -> LoadResult:
    result = LoadResult()
    lock = threading.Lock()
    deadline = time.perf_counter() + duration
    issued = iter(range(count)) if count else None

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        while True:
            if issued is not None:
                with lock:
                    if next(issued, None) is None:
                        return
            elif time.perf_counter() >= deadline:
                return
            result.measure(partial(client.search, **rng.choice(queries), **kw), time.perf_counter())

    began = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result.elapsed = time.perf_counter() - began
    return result


def open_loop(
    client: Searcher, queries: list[Query], rate: float, duration: float, count: int | None, **kw: Any
) -> LoadResult:
    result = LoadResult()
    total = count or int(rate * duration)
    rng = random.Random(0)

    def one(scheduled: float, query: Query) -> None:
        result.measure(partial(client.search, **query, **kw), scheduled)

    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=256) as pool:
        for i in range(total):
            scheduled = began + i / rate
            time.sleep(max(0.0, scheduled - time.perf_counter()))
            pool.submit(one, scheduled, rng.choice(queries))
    result.elapsed = time.perf_counter() - began
    return result


def scrape_stages(urls: list[str]) -> dict[tuple[str, str], tuple[float, float]]:
    """(service, stage) -> (sum of seconds, count) from imsearch_stage_seconds."""
    totals: dict[tuple[str, str], tuple[float, float]] = {}
    for url in urls:
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        for family in text_string_to_metric_families(text):
            if family.name != "imsearch_stage_seconds":
                continue
            for sample in family.samples:
                key = (sample.labels.get("service", ""), sample.labels.get("stage", ""))
                total, n = totals.get(key, (0.0, 0.0))
                if sample.name.endswith("_sum"):
                    totals[key] = (total + sample.value, n)
                elif sample.name.endswith("_count"):
                    totals[key] = (total, n + sample.value)
    return totals


def print_result(label: str, result: LoadResult) -> None:
    errors = ", ".join(f"{k}={v}" for k, v in result.errors.items()) or "none"
    print(
        f"{label}: {len(result.latencies)} ok in {result.elapsed:.1f}s = {result.qps:.1f} QPS; "
        f"latency ms p50 {1000 * result.percentile(50):.1f} p95 {1000 * result.percentile(95):.1f} "
        f"p99 {1000 * result.percentile(99):.1f}; errors: {errors}"
    )


def run_load(
    client: Searcher,
    queries: list[Query],
    args: argparse.Namespace,
    label: str,
    rounds: int = 1,
) -> LoadResult:
    """One run, or one of `rounds` that share --duration and --count."""
    options: dict[str, Any] = {"top_k": args.top_k, "index": args.index, "collection": args.collection}
    for query in queries[: args.warmup]:
        client.search(**query, **options)
    seconds, count = args.duration / rounds, (max(1, args.count // rounds) if args.count else None)
    if args.rate:
        result = open_loop(client, queries, args.rate, seconds, count, **options)
        print_result(f"{label} open loop at {args.rate:g}/s", result)
    else:
        result = closed_loop(client, queries, args.concurrency, seconds, count, **options)
        print_result(f"{label} closed loop, {args.concurrency} clients", result)
    return result


def merged(results: list[LoadResult]) -> LoadResult:
    total = LoadResult(elapsed=sum(r.elapsed for r in results))
    for result in results:
        total.latencies.extend(result.latencies)
        for code, n in result.errors.items():
            total.errors[code] += n
    return total


def compare_http(
    client: SearchClient, http: HttpSearcher, queries: list[Query], args: argparse.Namespace
) -> None:
    """gRPC and HTTP in alternating rounds (the machine's background load falls on both alike);
    the ratio printed is the median of the rounds' ratios."""
    grpc_rounds, http_rounds = [], []
    for _ in range(args.rounds):
        grpc_rounds.append(run_load(client, queries, args, "  gRPC round", args.rounds))
        http_rounds.append(run_load(http, queries, args, "  HTTP round", args.rounds))
    print_result("gRPC", merged(grpc_rounds))
    print_result("HTTP", merged(http_rounds))

    def median_ratio(measure: Callable[[LoadResult], float]) -> float:
        return float(
            np.median([measure(h) / measure(g) for g, h in zip(grpc_rounds, http_rounds, strict=True)])
        )

    print(
        f"HTTP / gRPC, median of {args.rounds} alternating rounds: "
        f"p50 {median_ratio(lambda r: r.percentile(50)):.2f}x, "
        f"p99 {median_ratio(lambda r: r.percentile(99)):.2f}x, "
        f"QPS {median_ratio(lambda r: r.qps):.2f}x"
    )


def run_loadtest(args: argparse.Namespace) -> LoadResult:
    security = ClientSecurity.from_environment(args.tls_ca, args.token)
    client = SearchClient(gateway_address(args.gateway), security=security)
    queries = load_queries(args.images, args.query)
    if args.http:
        http = HttpSearcher(args.http, security.token, security.tls_ca)
        compare_http(client, http, queries, args)
        http.close()
        client.close()
        return LoadResult()
    urls = [u for u in args.metrics.split(",") if u]
    before = scrape_stages(urls) if urls else {}
    result = run_load(client, queries, args, "gRPC")
    if urls:
        after = scrape_stages(urls)
        print("per-stage mean ms per call (from the services' /metrics):")
        for key in sorted(after):
            total = after[key][0] - before.get(key, (0.0, 0.0))[0]
            n = after[key][1] - before.get(key, (0.0, 0.0))[1]
            if n:
                print(f"  {key[0]:8s} {key[1]:14s} {1000 * total / n:8.2f} ms  x{int(n)}")
    client.close()
    return result
