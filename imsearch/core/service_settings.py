"""The settings every service has: where it listens, its metrics endpoint, its limits.

Each service's settings class derives from `ServiceSettings`, giving its own environment prefix
(IMSEARCH_<SERVICE>_) and its own default ports.
"""

from pydantic_settings import BaseSettings

from imsearch.core.server import ServerLimits


class ServiceSettings(BaseSettings):
    listen: str = "127.0.0.1:0"
    metrics_port: int = 0  # 0 picks a free port, -1 disables
    metrics_host: str = "127.0.0.1"  # where /metrics listens; 0.0.0.0 for a scraper elsewhere
    # Admission: calls past these limits get RESOURCE_EXHAUSTED at once (clients back off).
    max_concurrent_rpcs: int = 64
    max_concurrent_streams: int = 8
    stream_idle_timeout_s: float = 30.0  # a client stream silent this long is ended

    def server_limits(self) -> ServerLimits:
        return ServerLimits(self.max_concurrent_rpcs, self.max_concurrent_streams, self.stream_idle_timeout_s)
