"""Encoder settings: flags, environment (IMSEARCH_ENCODER_*) and defaults."""

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from imsearch.core.service_settings import ServiceSettings


class EncoderSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="IMSEARCH_ENCODER_")

    listen: str = "127.0.0.1:50051"
    metrics_port: int = 9101
    model_repository: Path = Path("model_repository")
    default_model: str = "efficientnet_lite0"
    # Where inference runs: in-process onnxruntime (default) or a Triton server over gRPC.
    backend: Literal["onnxruntime", "triton"] = "onnxruntime"
    triton_url: str = "127.0.0.1:8001"
    triton_timeout_s: float = 30.0
    # Models to load; empty means every model in the repository with a built ONNX file.
    models: list[str] = Field(default_factory=list)
    max_batch: int = 32  # largest batch one inference call gets
    # How long the first image of a batch waits for company. 0 = greedy: run at once, batching
    # whatever queued while the previous call ran (best on CPU, where batch size barely
    # changes the cost per image); on a GPU a few ms buys bigger batches.
    max_wait_ms: float = 0.0
    batch_workers: int = 1  # inference calls running at once per model
    max_queue: int = 32  # images waiting for inference per model; past it RESOURCE_EXHAUSTED
    intra_op_threads: int = 0  # onnxruntime threads per call; 0 = one per core
    max_images_per_request: int = 64
    max_image_bytes: int = 20 * 1024 * 1024
    max_image_pixels: int = 40_000_000
    max_image_aspect_ratio: float = 32.0  # longer side over shorter side; thinner strips refused
