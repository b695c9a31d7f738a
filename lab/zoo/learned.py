"""Models whose weights are learned by this project (`imsearch train`): a dense embedding head on
a frozen pretrained backbone (trained with a classification or a triplet loss), and a
convolutional autoencoder whose latent code is the embedding. Here they are built for export;
the training loops live in `lab.train`."""

from itertools import pairwise
from typing import Any

import torch
from torch import nn
from torch.nn import functional


class ProjectionHead(nn.Module):
    """The dense layer trained on frozen backbone features: dropout -> linear -> L2 normalise.
    Trained with a classification loss (`imsearch train head`) or triplets (`train triplet`)."""

    def __init__(self, in_dim: int, out_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(in_dim, out_dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return functional.normalize(self.linear(self.dropout(features)), dim=1)


class HeadOnBackbone(nn.Module):
    """Images -> pretrained backbone -> trained head: what gets exported and served."""

    def __init__(self, backbone: nn.Module, head: ProjectionHead) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        embedding: torch.Tensor = self.head(self.backbone(images))
        return embedding


AUTOENCODER_SIZE = 128


class ConvAutoencoder(nn.Module):
    """Five stride-2 convolutions down to a (size/32)^2 map, a linear bottleneck, and the mirror
    image up. The encoder half (`encode`) is what gets exported: its latent vector is the
    embedding. 128-pixel inputs and width 16 keep training to minutes on a CPU."""

    def __init__(self, latent: int = 256, width: int = 16, size: int = AUTOENCODER_SIZE) -> None:
        super().__init__()
        channels = [3, width, 2 * width, 4 * width, 8 * width, 8 * width]
        down: list[nn.Module] = []
        up: list[nn.Module] = []
        for c_in, c_out in pairwise(channels):
            down += [
                nn.Conv2d(c_in, c_out, 3, stride=2, padding=1),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
            ]
        for c_in, c_out in pairwise(channels[::-1]):
            up += [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1), nn.ReLU(inplace=True)]
        up[-1] = nn.Identity()  # the reconstruction is not clipped
        self.down = nn.Sequential(*down)
        self._grid = size // 32
        self.to_latent = nn.Linear(channels[-1] * self._grid**2, latent)
        self.from_latent = nn.Linear(latent, channels[-1] * self._grid**2)
        self.up = nn.Sequential(*up)
        self._bottom = channels[-1]

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        latent: torch.Tensor = self.to_latent(torch.flatten(self.down(images), 1))
        return latent

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        grid = self.from_latent(self.encode(images)).view(-1, self._bottom, self._grid, self._grid)
        reconstruction: torch.Tensor = self.up(grid)
        return reconstruction


class LatentCode(nn.Module):
    def __init__(self, autoencoder: ConvAutoencoder) -> None:
        super().__init__()
        self.autoencoder = autoencoder

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.autoencoder.encode(images)


def head_checkpoint(
    backbone: str, head: ProjectionHead, kind: str, tuned_backbone: nn.Module | None = None
) -> dict[str, object]:
    """What `imsearch train head|triplet` saves: the backbone's recipe name, the head, and the
    whole backbone's weights when some of its blocks were fine-tuned."""
    saved: dict[str, object] = {
        "kind": kind,
        "backbone": backbone,
        "in_dim": head.linear.in_features,
        "out_dim": head.linear.out_features,
        "head": head.state_dict(),
    }
    if tuned_backbone is not None:
        saved["backbone_state"] = tuned_backbone.state_dict()
    return saved


def read_head_checkpoint(path: str) -> dict[str, Any]:
    saved: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    return saved


def build_head_on_backbone(checkpoint: str, backbone: nn.Module) -> nn.Module:
    saved = read_head_checkpoint(checkpoint)
    if "backbone_state" in saved:
        backbone.load_state_dict(saved["backbone_state"])
    head = ProjectionHead(saved["in_dim"], saved["out_dim"])
    head.load_state_dict(saved["head"])
    return HeadOnBackbone(backbone, head).eval()


def build_autoencoder(weights: str) -> nn.Module:
    if weights == "pretrained":
        raise FileNotFoundError("no trained weights ship with this model: train it, then pass --weights PATH")
    torch.manual_seed(0)
    module = LatentCode(ConvAutoencoder())
    if weights != "random":
        module.autoencoder.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return module.eval()
