"""The whole suite in one process: Redis (embedded unless given), index, encoder, gateway.

This is the embedded default of `imsearch serve`; in production each service runs as its own
process (`python -m services.<name>`) and talks to the others over gRPC just the same.
"""

import fcntl
import logging
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from devtools.embedded_redis import EmbeddedRedis
from imsearch.core.settings import load_settings
from services.encoder.app import EncoderApp, start_encoder
from services.encoder.settings import EncoderSettings
from services.gateway.app import GatewayApp, start_gateway
from services.gateway.settings import GatewaySettings
from services.index.app import IndexApp, start_index
from services.index.settings import IndexSettings

log = logging.getLogger(__name__)


@dataclass
class Suite:
    gateway: GatewayApp
    encoder: EncoderApp
    index: IndexApp
    redis: EmbeddedRedis | None
    data_lock: IO[str] | None = None
    stopped: bool = field(default=False)

    @property
    def address(self) -> str:
        return self.gateway.address

    def metrics_urls(self) -> list[str]:
        apps: list[Any] = [self.gateway, self.encoder, self.index]
        return [f"http://127.0.0.1:{a.metrics_port}/metrics" for a in apps if a.metrics_port]

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        self.gateway.stop()
        self.encoder.stop()
        self.index.stop()
        if self.redis is not None:
            self.redis.stop()
        if self.data_lock is not None:
            self.data_lock.close()  # releases the lock


def lock_data_dir(data_dir: Path) -> IO[str]:
    """One suite per data directory: a second would open the same Qdrant shards and Redis
    files. The lock is the kernel's, so it goes with the process however it ends."""
    data_dir.mkdir(parents=True, exist_ok=True)
    lock = (data_dir / "suite.lock").open("a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "another process"
        lock.close()
        raise SystemExit(f"{data_dir} is in use by another imsearch suite (pid {holder})") from None
    lock.truncate(0)
    lock.write(str(os.getpid()))
    lock.flush()
    return lock


def start_suite(
    data_dir: Path,
    listen: str | None = None,
    config: dict[str, Any] | None = None,
    model_repository: Path | None = None,
    free_metrics_ports: bool = False,
    gateway_flags: dict[str, Any] | None = None,
) -> Suite:
    """Starts every service; encoder and index bind free loopback ports, the gateway `listen`.

    `gateway_flags` (TLS, auth file, insecure...) secure the public port. When the gateway
    checks credentials, encoder and index accept only a token generated for this run, so
    nothing reaches them around the gateway.
    """
    config = config or {}
    gateway_flags = {k: v for k, v in (gateway_flags or {}).items() if v is not None}
    metrics_port = 0 if free_metrics_ports else None
    gateway_config = {**config.get("gateway", {}), **gateway_flags}
    guarded = any(gateway_config.get(k) for k in ("auth_file", "tls_client_ca"))
    internal_token = secrets.token_urlsafe(32) if guarded else None
    auth_file = gateway_config.get("auth_file")  # its admin tokens may reach encoder and index too
    data_lock = lock_data_dir(data_dir)
    index_settings = load_settings(
        IndexSettings,
        config.get("index", {}),
        listen="127.0.0.1:0",
        data_dir=data_dir,
        metrics_port=metrics_port,
        internal_token=internal_token,
        auth_file=auth_file,
    )
    embedded_redis = None
    started: list[Any] = []
    try:
        if "redis_url" not in config.get("index", {}) and not os.environ.get("IMSEARCH_INDEX_REDIS_URL"):
            embedded_redis = EmbeddedRedis(data_dir / "redis")
            index_settings = index_settings.model_copy(update={"redis_url": embedded_redis.url})
        index = start_index(index_settings)
        started.append(index)
        encoder = start_encoder(
            load_settings(
                EncoderSettings,
                config.get("encoder", {}),
                listen="127.0.0.1:0",
                model_repository=model_repository,
                metrics_port=metrics_port,
                internal_token=internal_token,
                auth_file=auth_file,
            )
        )
        started.append(encoder)
        gateway = start_gateway(
            load_settings(
                GatewaySettings,
                config.get("gateway", {}),
                listen=listen,
                encoder_address=encoder.address,
                index_address=index.address,
                metrics_port=metrics_port,
                internal_token=internal_token,
                **gateway_flags,
            )
        )
    except BaseException:
        for app in reversed(started):
            app.stop()
        if embedded_redis is not None:
            embedded_redis.stop()
        data_lock.close()
        raise
    return Suite(gateway, encoder, index, embedded_redis, data_lock)
