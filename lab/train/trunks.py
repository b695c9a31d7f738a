"""Splitting an EfficientNet-Lite backbone so its last blocks can be fine-tuned on a CPU.

The front (stem and all but the last `tune_blocks` blocks) stays frozen: its feature maps are
computed once, by onnxruntime, and cached. The tail (the last blocks, the head convolution and
the pooling) trains with the embedding head. The tail's modules are the backbone's own, so
after training the backbone holds the tuned weights and is exported whole.
"""

import logging
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from lab.train.features import cached, paths_digest, two_view_outputs
from lab.zoo.modules import PooledFeatures
from services.encoder.model_spec import Preprocessing

log = logging.getLogger(__name__)


def _blocks(pooled: PooledFeatures) -> nn.ModuleList:
    blocks = getattr(pooled.backbone, "_blocks", None)
    if not isinstance(blocks, nn.ModuleList):
        raise ValueError("fine-tuning blocks needs an EfficientNet-Lite backbone")
    return blocks


class Front(nn.Module):
    def __init__(self, pooled: PooledFeatures, first_tuned: int) -> None:
        super().__init__()
        net: Any = pooled.backbone
        self.stem = nn.Sequential(net._conv_stem, net._bn0, net._swish)
        self.blocks = _blocks(pooled)[:first_tuned]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        maps: torch.Tensor = self.stem(images)
        for block in self.blocks:
            maps = block(maps)
        return maps


class Tail(nn.Module):
    """Cached front maps -> the tuned blocks -> head convolution -> pooled features."""

    def __init__(self, pooled: PooledFeatures, first_tuned: int) -> None:
        super().__init__()
        net: Any = pooled.backbone
        self.blocks = _blocks(pooled)[first_tuned:]
        self.top = nn.Sequential(net._conv_head, net._bn1, net._swish)

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            maps = block(maps)
        features: torch.Tensor = self.top(maps)
        return features.mean(dim=(2, 3))

    def train(self, mode: bool = True) -> "Tail":
        """Batch-norm statistics stay the pretrained ones: small CPU batches would skew them."""
        super().train(mode)
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.eval()
        return self


def first_tuned_block(pooled: PooledFeatures, tune_blocks: int) -> int:
    count = len(_blocks(pooled))
    if not 1 <= tune_blocks <= count:
        raise ValueError(f"--tune-blocks must be between 1 and {count} for this backbone")
    return count - tune_blocks


def front_maps(
    pooled: PooledFeatures,
    first_tuned: int,
    preprocessing: Preprocessing,
    paths: list[Path],
    cache_dir: Path,
    key: str,
) -> np.ndarray:
    """(n, 2, C, H, W) float16 maps of each image as is and mirrored, run by onnxruntime."""
    cache = cache_dir / f"{key}-front{first_tuned}-{paths_digest(paths, f'{key}:{first_tuned}'.encode())}.npy"

    def compute() -> np.ndarray:
        onnx_path = cache.with_suffix(".onnx")
        onnx_path.parent.mkdir(parents=True, exist_ok=True)
        size = preprocessing.crop_size
        with torch.no_grad():
            torch.onnx.export(
                Front(pooled, first_tuned).eval(), (torch.rand(2, 3, size, size),), str(onnx_path),
                input_names=["images"], output_names=["maps"],
                dynamic_axes={"images": {0: "batch"}, "maps": {0: "batch"}}, opset_version=17, dynamo=False,
            )  # fmt: skip
        session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        onnx_path.unlink()

        def run(pixels: np.ndarray) -> np.ndarray:
            maps: np.ndarray = session.run(None, {"images": pixels})[0]
            return maps

        return two_view_outputs(run, paths, preprocessing, f"{key} front maps", np.float16)

    return cached(cache, compute)
