"""Small wrappers that turn a backbone's output into one embedding per image."""

from collections.abc import Callable

import torch


class PooledFeatures(torch.nn.Module):
    """Backbone feature map, global-average-pooled (the classifier is dropped)."""

    def __init__(self, backbone: torch.nn.Module, features: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.backbone = backbone
        self._features = features

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self._features(images)
        return features.mean(dim=(2, 3)) if features.dim() == 4 else features


class HubOutput(torch.nn.Module):
    """A transformers model whose embedding is one field of its output."""

    def __init__(self, model: torch.nn.Module, field: str, cls_token: bool = False) -> None:
        super().__init__()
        self.model = model
        self._field = field
        self._cls_token = cls_token

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        output: torch.Tensor = getattr(self.model(pixel_values=images), self._field)
        if self._cls_token:
            output = output[:, 0]
        return output.flatten(1) if output.dim() > 2 else output


def load_torchvision_weights(model: torch.nn.Module, weights: str, url: str, drop_prefix: str) -> None:
    """Loads a torchvision checkpoint into a module written with torchvision's layer names:
    downloaded from `url` through torch.hub for "pretrained" (needs internet, no torchvision
    import), else read from the path `weights`. Keys starting with `drop_prefix` (the
    classifier we do not use) are left out."""
    state = (
        torch.hub.load_state_dict_from_url(url, map_location="cpu")
        if weights == "pretrained"
        else torch.load(weights, map_location="cpu", weights_only=True)
    )
    model.load_state_dict({k: v for k, v in state.items() if not k.startswith(drop_prefix)})
