"""Gateway settings: environment (IMSEARCH_GATEWAY_*) and defaults."""

from pathlib import Path

from pydantic_settings import SettingsConfigDict

from imsearch.core.channels import ClientSecurity
from imsearch.core.service_settings import ServiceSettings


class GatewaySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="IMSEARCH_GATEWAY_")

    listen: str = "127.0.0.1:50050"
    metrics_port: int = 9100
    # Searches in flight: past what the encoders finish in time, more only queue
    # (bench/overload.py at 2x load on 2 cores: admitted p99 1.9 s with 64, 340 ms with 16).
    # Size it to encoder capacity x the latency you promise.
    max_concurrent_rpcs: int = 16
    encoder_address: str = "127.0.0.1:50051"
    index_address: str = "127.0.0.1:50052"
    model: str = ""  # empty: the encoder's default model
    collection: str = ""  # empty: named after the model
    rerank_factor: int = 4  # rerank scores this many times top_k candidates
    add_batch: int = 16  # images per encode call in a bulk add
    # A bulk add encodes the next batch while the index stores this one (off: one after the
    # other). It pays when the encoder has CPUs (or a GPU) of its own; bench.ingest_e2e.
    add_pipeline: bool = True
    max_batch_images: int = 64  # images per encode call in a batch search (the encoder's own limit)
    add_batch_bytes: int = 32 * 1024 * 1024  # and at most this many image bytes (gRPC caps at 64 MiB)
    max_image_bytes: int = 20 * 1024 * 1024  # per image, as the encoder's own limit
    # Each added image's thumbnail (JPEG, longer side in pixels, 16..512; 0: none), stored with
    # its vector and returned with hits on request (with_thumbnails): about 5 KB at 160.
    thumbnail_size: int = 160
    rpc_timeout_s: float = 30.0  # per downstream call; less when the caller's deadline is nearer
    # The hops to encoder and index: TLS (and mTLS) and the internal token they accept.
    hop_tls_ca: Path | None = None
    hop_tls_cert: Path | None = None  # the gateway's client certificate, for mutual TLS
    hop_tls_key: Path | None = None
    hop_tls_server_name: str | None = None  # the name in their certificates, if not the address
    # HTTP/JSON API and the search page (services/gateway/http), same TLS and credentials as
    # the gRPC port; None: gRPC only.
    http_listen: str | None = None
    # A unary body (or one line of a bulk add) past this is refused with 413; base64 makes a
    # 20 MiB image 27 MiB of JSON.
    http_max_body_bytes: int = 40 * 1024 * 1024
    http_call_timeout_s: float = 60.0

    def public_addresses(self) -> list[str]:
        return [self.listen, *([self.http_listen] if self.http_listen else [])]

    def hop_security(self) -> ClientSecurity:
        token = self.internal_token.get_secret_value() if self.internal_token else None
        return ClientSecurity(
            self.hop_tls_ca, self.hop_tls_cert, self.hop_tls_key, token, self.hop_tls_server_name
        )
