"""Training an embedding head on frozen backbone features.

Two objectives, both from pytorch-metric-learning:
- `dense`: the study's "dense layer" fine-tuning, done as a normalised-softmax classifier over
  the classes, whose L2-normalised dense layer output is the embedding (a classifier's logits
  would tie the embedding to the training classes; the normalised layer keeps cosine geometry);
- `triplet`: a Siamese/triplet network: m-per-class batches, semi-hard or hard mining, margin
  and distance as parameters.
Each epoch is scored on held-out gallery images (P@k against the training images); the
weights of the best epoch are kept.
"""

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from pytorch_metric_learning import distances, losses, miners, samplers
from pytorch_metric_learning.utils import common_functions as c_f
from torch.utils.data import DataLoader, TensorDataset

from lab.train.history import BestEpoch, History
from lab.zoo.learned import ProjectionHead


@dataclass(frozen=True)
class HeadParams:
    kind: Literal["dense", "triplet"] = "dense"
    out_dim: int = 512
    epochs: int = 30
    batch_size: int = 256
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    dropout: float = 0.2
    temperature: float = 0.05  # dense: softmax temperature over cosine logits
    margin: float = 0.2  # triplet
    distance: Literal["cosine", "euclidean"] = "cosine"  # triplet
    mining: Literal["semihard", "hard", "all"] = "semihard"  # triplet
    m_per_class: int = 16  # triplet: images per class in a batch
    seed: int = 0
    k: int = 10


def _distance(params: HeadParams) -> distances.BaseDistance:
    if params.distance == "cosine":
        return distances.CosineSimilarity()
    return distances.LpDistance(normalize_embeddings=True)


def embed(network: torch.nn.Module, inputs: np.ndarray, batch: int = 256) -> np.ndarray:
    network.eval()
    with torch.no_grad():
        parts = [
            network(torch.from_numpy(inputs[i : i + batch].astype(np.float32)))
            for i in range(0, len(inputs), batch)
        ]
    embedded: np.ndarray = torch.cat(parts).numpy()
    return embedded


def train_head(
    features: np.ndarray,
    labels: list[int],
    validation_features: np.ndarray,
    validation_labels: list[int],
    params: HeadParams,
    title: str,
) -> tuple[ProjectionHead, History]:
    """A head on frozen features: `features` are (n, views, dim)."""
    torch.manual_seed(params.seed)
    head = ProjectionHead(features.shape[2], params.out_dim, params.dropout)
    history = train_embedding(head, features, labels, validation_features, validation_labels, params, title)
    return head, history


def train_tuned(
    tail: torch.nn.Module,
    feature_dim: int,
    maps: np.ndarray,
    labels: list[int],
    validation_maps: np.ndarray,
    validation_labels: list[int],
    params: HeadParams,
    title: str,
) -> tuple[ProjectionHead, History]:
    """A head on a backbone tail that trains too (at a fifth of the head's learning rate);
    `maps` are the frozen front's (n, views, C, H, W) outputs. Tunes `tail` in place."""
    torch.manual_seed(params.seed)
    head = ProjectionHead(feature_dim, params.out_dim, params.dropout)
    network = torch.nn.Sequential(tail, head)
    history = train_embedding(
        network, maps, labels, validation_maps, validation_labels, params, title, list(tail.parameters())
    )
    return head, history


def train_embedding(
    network: torch.nn.Module,
    inputs: np.ndarray,
    labels: list[int],
    validation_inputs: np.ndarray,
    validation_labels: list[int],
    params: HeadParams,
    title: str,
    slow_parameters: list[torch.nn.Parameter] | None = None,
) -> History:
    """Trains `network` in place and leaves it with its best epoch's weights. `inputs` are
    (n, views, ...); each step picks one view per image at random."""
    with library_randomness(params.seed):
        generator = torch.Generator().manual_seed(params.seed)
        label_tensor = torch.tensor(labels)
        classes = int(label_tensor.max()) + 1
        if params.kind == "dense":
            loss_fn: torch.nn.Module = losses.NormalizedSoftmaxLoss(
                classes, params.out_dim, params.temperature
            )
            miner = None
            batches = DataLoader(
                TensorDataset(torch.arange(len(labels))), params.batch_size, shuffle=True, generator=generator
            )
            loss_name = "normalised softmax loss"
        else:
            distance = _distance(params)
            loss_fn = losses.TripletMarginLoss(params.margin, distance=distance)
            miner = miners.TripletMarginMiner(
                params.margin, distance=distance, type_of_triplets=params.mining
            )
            # A batch holds m images of each of batch/m classes: at most every class once.
            batch_size = min(params.batch_size, params.m_per_class * classes, len(labels))
            batch_size -= batch_size % params.m_per_class
            sampler = samplers.MPerClassSampler(
                labels, params.m_per_class, batch_size, length_before_new_iter=len(labels)
            )
            batches = DataLoader(TensorDataset(torch.arange(len(labels))), batch_size, sampler=sampler)
            loss_name = f"triplet loss ({params.mining}, margin {params.margin}, {params.distance})"
        slow = {id(p) for p in slow_parameters or []}
        groups: list[dict[str, Any]] = [
            {"params": [p for p in network.parameters() if id(p) not in slow] + list(loss_fn.parameters())}
        ]
        if slow_parameters:
            groups.append({"params": slow_parameters, "lr": params.learning_rate / 5})
        optimizer = torch.optim.AdamW(groups, params.learning_rate, weight_decay=params.weight_decay)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, params.epochs)
        keeper = BestEpoch(network, History(title, loss_name, params.k))
        for _ in range(params.epochs):
            network.train()
            epoch_losses = []
            for (index,) in batches:
                views = torch.randint(0, inputs.shape[1], (len(index),), generator=generator)
                batch = torch.from_numpy(inputs[index.numpy(), views.numpy()].astype(np.float32))
                embeddings = network(batch)
                batch_labels = label_tensor[index]
                loss = loss_fn(embeddings, batch_labels, miner(embeddings, batch_labels) if miner else None)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                epoch_losses.append(float(loss.detach()))
            scheduler.step()
            keeper.end_epoch(
                epoch_losses, embed(network, validation_inputs[:, 0]), validation_labels,
                embed(network, inputs[:, 0]), labels,
            )  # fmt: skip
        keeper.restore()
        return keeper.history


@contextlib.contextmanager
def library_randomness(seed: int) -> Iterator[None]:
    """pytorch-metric-learning's samplers and miners draw from `common_functions.NUMPY_RANDOM`
    (numpy's global generator unless set): a seeded generator of their own for the block, so
    a training run repeats exactly and touches no one else's random state."""
    saved = c_f.NUMPY_RANDOM
    c_f.NUMPY_RANDOM = np.random.RandomState(seed)
    try:
        yield
    finally:
        c_f.NUMPY_RANDOM = saved
