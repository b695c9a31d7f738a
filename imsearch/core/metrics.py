"""Prometheus metrics shared by the services.

Names follow py-grpc-prometheus (`grpc_server_handled_total`, `grpc_server_handling_seconds`);
pipeline stages are a label on one histogram. The registry is injected so each test (and each
service in a single `imsearch serve` process) gets its own.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from time import perf_counter

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.075,
    0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
FILL_BUCKETS = (0.1, 0.25, 0.5, 0.75, 0.9, 1.0)


class ServiceMetrics:
    """The metric families of one service, registered in one registry."""

    def __init__(self, service: str, registry: CollectorRegistry | None = None) -> None:
        self.service = service
        self.registry = registry if registry is not None else CollectorRegistry()
        self.handled = Counter(
            "grpc_server_handled_total",
            "RPCs completed on the server, by status code.",
            ["grpc_service", "grpc_method", "grpc_code"],
            registry=self.registry,
        )
        self.handling_seconds = Histogram(
            "grpc_server_handling_seconds",
            "RPC latency on the server, from request to response.",
            ["grpc_service", "grpc_method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "grpc_server_in_flight",
            "RPCs admitted and not finished (an autoscaling signal beside the encoder's queue).",
            ["grpc_service", "grpc_method"],
            registry=self.registry,
        )
        self.stage_seconds = Histogram(
            "imsearch_stage_seconds",
            "Latency of one pipeline stage (decode, preprocess, encode, index_search, rerank, ...).",
            ["service", "stage"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "imsearch_encoder_batch_size",
            "Images per inference call after micro-batching.",
            ["model"],
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.batch_fill = Histogram(
            "imsearch_encoder_batch_fill",
            "Images per inference call over max_batch: near 1 the encoder is saturated.",
            ["model"],
            buckets=FILL_BUCKETS,
            registry=self.registry,
        )
        self.queue_wait_seconds = Histogram(
            "imsearch_encoder_queue_wait_seconds",
            "Time an image waited for inference after preprocessing (an autoscaling signal).",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "imsearch_encoder_queue_depth",
            "Images waiting for inference.",
            ["model"],
            registry=self.registry,
        )
        self.dropped = Counter(
            "imsearch_encoder_dropped_total",
            "Images dropped before decoding or inference because their caller had gone.",
            ["model", "reason"],
            registry=self.registry,
        )
        # The gateway's HTTP/JSON front (its calls also count above, as the gRPC calls they become).
        self.http_requests = Counter(
            "imsearch_http_requests_total",
            "HTTP requests answered by the HTTP/JSON front, by route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.http_seconds = Histogram(
            "imsearch_http_request_seconds",
            "HTTP request latency in the front, from request to response.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.index_points = Gauge(
            "imsearch_index_points",
            "Points stored, by collection and index.",
            ["collection", "index"],
            registry=self.registry,
        )

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = perf_counter()
        try:
            yield
        finally:
            self.stage_seconds.labels(self.service, name).observe(perf_counter() - start)

    def serve_http(self, port: int, addr: str = "127.0.0.1") -> int:
        """Serves /metrics; port 0 picks a free one. Returns the bound port."""
        server, _ = start_http_server(port, addr=addr, registry=self.registry)
        return int(server.server_port)
