"""Training the convolutional autoencoder: reconstruct images, use the latent code as embedding.

Images are decoded once at the model's input size, with the model's own preprocessing, and kept
in memory as float16; each step mirrors a random half of the batch. The loss is the mean squared
reconstruction error; each epoch is scored by P@k of held-out gallery images' latent codes
against the training images' (cosine), and the best epoch is kept.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lab.train.features import pixels_of
from lab.train.history import BestEpoch, History
from lab.zoo.learned import ConvAutoencoder
from services.encoder.model_spec import Preprocessing


@dataclass(frozen=True)
class AutoencoderParams:
    epochs: int = 8
    batch_size: int = 64
    learning_rate: float = 2e-3
    latent: int = 256
    seed: int = 0
    k: int = 10


def load_pixels(paths: list[Path], preprocessing: Preprocessing) -> np.ndarray:
    return np.stack([pixels_of(p, preprocessing).astype(np.float16) for p in paths])


def latent_codes(model: ConvAutoencoder, pixels: np.ndarray, batch: int = 256) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        codes = [
            model.encode(torch.from_numpy(pixels[i : i + batch].astype(np.float32)))
            for i in range(0, len(pixels), batch)
        ]
    latent = torch.nn.functional.normalize(torch.cat(codes), dim=1)
    return latent.numpy()


def train_autoencoder(
    pixels: np.ndarray,
    labels: list[int],
    validation_pixels: np.ndarray,
    validation_labels: list[int],
    params: AutoencoderParams,
    title: str,
) -> tuple[ConvAutoencoder, History]:
    torch.manual_seed(params.seed)
    generator = torch.Generator().manual_seed(params.seed)
    model = ConvAutoencoder(params.latent, size=pixels.shape[-1])
    optimizer = torch.optim.AdamW(model.parameters(), params.learning_rate, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, params.epochs)
    keeper = BestEpoch(model, History(title, "reconstruction MSE", params.k))
    for _ in range(params.epochs):
        model.train()
        epoch_losses = []
        for index in torch.split(torch.randperm(len(pixels), generator=generator), params.batch_size):
            batch = torch.from_numpy(pixels[index.numpy()].astype(np.float32))
            mirror = torch.rand(len(batch), generator=generator) < 0.5
            batch[mirror] = batch[mirror].flip(3)
            loss = torch.nn.functional.mse_loss(model(batch), batch)
            optimizer.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            epoch_losses.append(float(loss.detach()))
        scheduler.step()
        keeper.end_epoch(
            epoch_losses, latent_codes(model, validation_pixels), validation_labels,
            latent_codes(model, pixels), labels,
        )  # fmt: skip
    keeper.restore()
    return model, keeper.history
