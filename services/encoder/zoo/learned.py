"""Models whose weights are learned by this project (training is `imsearch train`, a later step):
a triplet-loss embedding head on a pretrained backbone, and a convolutional autoencoder whose
latent code is the embedding. Here they are built and exported; `--weights PATH` loads a
checkpoint of the whole module, `random` gives the untrained architecture."""

from itertools import pairwise

import torch
from torch import nn
from torch.nn import functional

from services.encoder.zoo.modules import PooledFeatures


class EmbeddingHead(nn.Module):
    """Backbone features -> linear projection -> L2-normalised embedding (trained with triplets)."""

    def __init__(self, backbone: nn.Module, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.projection = nn.Linear(in_dim, out_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return functional.normalize(self.projection(self.backbone(images)), dim=1)


class ConvAutoencoder(nn.Module):
    """Five stride-2 convolutions down to a 7x7 map, a linear bottleneck, and the mirror image up.
    The encoder half (`encode`) is what gets exported: its latent vector is the embedding."""

    def __init__(self, latent: int = 256, width: int = 32) -> None:
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
        self.to_latent = nn.Linear(channels[-1] * 7 * 7, latent)
        self.from_latent = nn.Linear(latent, channels[-1] * 7 * 7)
        self.up = nn.Sequential(*up)
        self._bottom = channels[-1]

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        latent: torch.Tensor = self.to_latent(torch.flatten(self.down(images), 1))
        return latent

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        grid = self.from_latent(self.encode(images)).view(-1, self._bottom, 7, 7)
        reconstruction: torch.Tensor = self.up(grid)
        return reconstruction


class LatentCode(nn.Module):
    def __init__(self, autoencoder: ConvAutoencoder) -> None:
        super().__init__()
        self.autoencoder = autoencoder

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.autoencoder.encode(images)


def _load(module: nn.Module, weights: str) -> nn.Module:
    if weights == "pretrained":
        raise FileNotFoundError("no trained weights ship with this model: train it, then pass --weights PATH")
    if weights != "random":
        module.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return module.eval()


def build_triplet_lite0(weights: str) -> nn.Module:
    from efficientnet_lite_pytorch import EfficientNet

    torch.manual_seed(0)
    backbone = EfficientNet.from_name("efficientnet-lite0")
    return _load(EmbeddingHead(PooledFeatures(backbone, backbone.extract_features), 1280, 256), weights)


def build_autoencoder(weights: str) -> nn.Module:
    torch.manual_seed(0)
    return _load(LatentCode(ConvAutoencoder()), weights)
