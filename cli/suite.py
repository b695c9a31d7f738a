"""The whole suite in one process: Redis (embedded unless given), index, encoder, gateway.

This is the embedded default of `imsearch serve`; in production each service runs as its own
process (`python -m services.<name>`) and talks to the others over gRPC just the same.
"""

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


def start_suite(
    data_dir: Path,
    listen: str | None = None,
    config: dict[str, Any] | None = None,
    model_repository: Path | None = None,
    free_metrics_ports: bool = False,
) -> Suite:
    """Starts every service; encoder and index bind free loopback ports, the gateway `listen`."""
    config = config or {}
    metrics_port = 0 if free_metrics_ports else None
    index_settings = load_settings(
        IndexSettings,
        config.get("index", {}),
        listen="127.0.0.1:0",
        data_dir=data_dir,
        metrics_port=metrics_port,
    )
    embedded_redis = None
    if "redis_url" not in config.get("index", {}) and not os.environ.get("IMSEARCH_INDEX_REDIS_URL"):
        embedded_redis = EmbeddedRedis(data_dir / "redis")
        index_settings = index_settings.model_copy(update={"redis_url": embedded_redis.url})
    started: list[Any] = []
    try:
        index = start_index(index_settings)
        started.append(index)
        encoder = start_encoder(
            load_settings(
                EncoderSettings,
                config.get("encoder", {}),
                listen="127.0.0.1:0",
                model_repository=model_repository,
                metrics_port=metrics_port,
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
            )
        )
    except BaseException:
        for app in reversed(started):
            app.stop()
        if embedded_redis is not None:
            embedded_redis.stop()
        raise
    return Suite(gateway, encoder, index, embedded_redis)
