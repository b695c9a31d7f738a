"""MobileNetV3-Large with torchvision's module names, so torchvision's ImageNet checkpoint
(`mobilenet_v3_large-8738ca79.pth` or `-5c1a4163.pth`) loads as is with `--weights PATH`.

Written out for the same reason as VGG-16 (lab/zoo/vgg.py): torchvision does not
import beside the CPU torch this project pins, and transformers has no MobileNetV3. The layer
table is torchvision's (Howard et al., 2019, table 1). The embedding is the 960-channel map,
global-average-pooled (the classifier is dropped).
"""

from torch import Tensor, nn

from lab.zoo.modules import load_torchvision_weights

PRETRAINED_URL = "https://download.pytorch.org/models/mobilenet_v3_large-8738ca79.pth"
# input, kernel, expanded, output, squeeze-excite, hard-swish, stride
LARGE = [
    (16, 3, 16, 16, False, False, 1),
    (16, 3, 64, 24, False, False, 2),
    (24, 3, 72, 24, False, False, 1),
    (24, 5, 72, 40, True, False, 2),
    (40, 5, 120, 40, True, False, 1),
    (40, 5, 120, 40, True, False, 1),
    (40, 3, 240, 80, False, True, 2),
    (80, 3, 200, 80, False, True, 1),
    (80, 3, 184, 80, False, True, 1),
    (80, 3, 184, 80, False, True, 1),
    (80, 3, 480, 112, True, True, 1),
    (112, 3, 672, 112, True, True, 1),
    (112, 5, 672, 160, True, True, 2),
    (160, 5, 960, 160, True, True, 1),
    (160, 5, 960, 160, True, True, 1),
]


def make_divisible(value: float, divisor: int = 8) -> int:
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def conv_bn(
    c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1, act: type | None = None
) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(c_out, eps=0.001, momentum=0.01),
    ]
    if act is not None:
        layers.append(act(inplace=True))
    return nn.Sequential(*layers)


class SqueezeExcitation(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        squeezed = make_divisible(channels // 4)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeezed, 1)
        self.fc2 = nn.Conv2d(squeezed, channels, 1)
        self.activation = nn.ReLU()
        self.scale_activation = nn.Hardsigmoid()

    def forward(self, x: Tensor) -> Tensor:
        scale: Tensor = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
        return x * scale


class InvertedResidual(nn.Module):
    def __init__(
        self, c_in: int, kernel: int, expanded: int, c_out: int, se: bool, hard: bool, stride: int
    ) -> None:
        super().__init__()
        act = nn.Hardswish if hard else nn.ReLU
        layers: list[nn.Module] = []
        if expanded != c_in:
            layers.append(conv_bn(c_in, expanded, 1, act=act))
        layers.append(conv_bn(expanded, expanded, kernel, stride, groups=expanded, act=act))
        if se:
            layers.append(SqueezeExcitation(expanded))
        layers.append(conv_bn(expanded, c_out, 1))
        self.block = nn.Sequential(*layers)
        self.use_res_connect = stride == 1 and c_in == c_out

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.block(x)
        return out + x if self.use_res_connect else out


class MobileNetV3LargeFeatures(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = [conv_bn(3, 16, 3, stride=2, act=nn.Hardswish)]
        layers += [InvertedResidual(*row) for row in LARGE]
        layers.append(conv_bn(160, 960, 1, act=nn.Hardswish))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)

    def forward(self, images: Tensor) -> Tensor:
        pooled: Tensor = self.avgpool(self.features(images))
        return pooled.flatten(1)


def build_mobilenet_v3(weights: str) -> nn.Module:
    import torch

    torch.manual_seed(0)  # random weights: the same every run
    model = MobileNetV3LargeFeatures()
    if weights != "random":
        load_torchvision_weights(model, weights, PRETRAINED_URL, drop_prefix="classifier.")
    return model.eval()
