"""VGG-16 with torchvision's module names, so torchvision's ImageNet checkpoint loads as is.

torchvision itself does not import beside the CPU torch 2.13 this project pins, and no other
installable library here defines VGG; the network is 13 convolutions and 2 hidden linear
layers, written out below. Pass torchvision's `vgg16-397923af.pth` as `--weights PATH`.
The embedding is fc7 (4096 values after the second ReLU), the classic VGG image descriptor.
"""

import torch
from torch import nn

from lab.zoo.modules import load_torchvision_weights

PRETRAINED_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"
# Output channels per convolution; "M" is a 2x2 max-pool (torchvision's configuration "D").
VGG16_LAYOUT: list[int | str] = [
    64,
    64,
    "M",
    128,
    128,
    "M",
    256,
    256,
    256,
    "M",
    512,
    512,
    512,
    "M",
    512,
    512,
    512,
    "M",
]


class VGG16Features(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for item in VGG16_LAYOUT:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                assert isinstance(item, int)
                layers += [nn.Conv2d(channels, item, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                channels = item
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        # Same indices as torchvision's classifier (0: fc6, 3: fc7, 6: the 1000-way layer, dropped).
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        pooled = self.avgpool(self.features(images))
        fc7: torch.Tensor = self.classifier(torch.flatten(pooled, 1))
        return fc7


def build_vgg16(weights: str) -> nn.Module:
    torch.manual_seed(0)  # random weights: the same every run
    model = VGG16Features()
    if weights != "random":
        load_torchvision_weights(
            model, weights, PRETRAINED_URL, drop_prefix="classifier.6."
        )  # 1000-way layer
    return model.eval()
