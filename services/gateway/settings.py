"""Gateway settings: environment (IMSEARCH_GATEWAY_*) and defaults."""

from pydantic_settings import BaseSettings, SettingsConfigDict


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="IMSEARCH_GATEWAY_")

    listen: str = "127.0.0.1:50050"
    metrics_port: int = 9100  # 0 picks a free port, -1 disables
    metrics_host: str = "127.0.0.1"  # where /metrics listens; 0.0.0.0 for a scraper elsewhere
    encoder_address: str = "127.0.0.1:50051"
    index_address: str = "127.0.0.1:50052"
    model: str = ""  # empty: the encoder's default model
    collection: str = ""  # empty: named after the model
    rerank_factor: int = 4  # rerank scores this many times top_k candidates
    add_batch: int = 16  # images per encode call in a bulk add
    rpc_timeout_s: float = 30.0
