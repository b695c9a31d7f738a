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

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from pytorch_metric_learning import distances, losses, miners, samplers
from torch.utils.data import DataLoader, TensorDataset

from imsearch.train.history import History
from services.encoder.zoo.learned import ProjectionHead


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


def precision_at_k(
    queries: np.ndarray, query_labels: np.ndarray, gallery: np.ndarray, gallery_labels: np.ndarray, k: int
) -> float:
    """Mean P@k of each query's top k gallery images by cosine (embeddings L2-normalised)."""
    top = np.argsort(-(queries @ gallery.T), axis=1)[:, :k]
    return float((gallery_labels[top] == query_labels[:, None]).mean())


def embed(head: ProjectionHead, features: np.ndarray) -> np.ndarray:
    head.eval()
    with torch.no_grad():
        embedded: np.ndarray = head(torch.from_numpy(features)).numpy()
    return embedded


def train_head(
    features: np.ndarray,
    labels: list[int],
    validation_features: np.ndarray,
    validation_labels: list[int],
    params: HeadParams,
    title: str,
) -> tuple[ProjectionHead, History]:
    """`features` are (n, views, dim); each step picks one view per image at random."""
    torch.manual_seed(params.seed)
    generator = torch.Generator().manual_seed(params.seed)
    head = ProjectionHead(features.shape[2], params.out_dim, params.dropout)
    label_tensor = torch.tensor(labels)
    classes = int(label_tensor.max()) + 1
    if params.kind == "dense":
        loss_fn: torch.nn.Module = losses.NormalizedSoftmaxLoss(classes, params.out_dim, params.temperature)
        miner = None
        batches = DataLoader(
            TensorDataset(torch.arange(len(labels))), params.batch_size, shuffle=True, generator=generator
        )
        loss_name = "normalised softmax loss"
    else:
        distance = _distance(params)
        loss_fn = losses.TripletMarginLoss(params.margin, distance=distance)
        miner = miners.TripletMarginMiner(params.margin, distance=distance, type_of_triplets=params.mining)
        # A batch holds m images of each of batch/m classes: at most every class once.
        batch_size = min(params.batch_size, params.m_per_class * classes, len(labels))
        batch_size -= batch_size % params.m_per_class
        sampler = samplers.MPerClassSampler(
            labels, params.m_per_class, batch_size, length_before_new_iter=len(labels)
        )
        batches = DataLoader(TensorDataset(torch.arange(len(labels))), batch_size, sampler=sampler)
        loss_name = f"triplet loss ({params.mining}, margin {params.margin}, {params.distance})"
    optimizer = torch.optim.AdamW(
        [*head.parameters(), *loss_fn.parameters()], params.learning_rate, weight_decay=params.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, params.epochs)
    all_features = torch.from_numpy(features)
    history = History(title, loss_name, params.k)
    best = {name: value.clone() for name, value in head.state_dict().items()}
    train_view0 = features[:, 0]
    for _ in range(params.epochs):
        head.train()
        epoch_losses = []
        for (index,) in batches:
            views = torch.randint(0, features.shape[1], (len(index),), generator=generator)
            embeddings = head(all_features[index, views])
            batch_labels = label_tensor[index]
            loss = loss_fn(embeddings, batch_labels, miner(embeddings, batch_labels) if miner else None)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            epoch_losses.append(float(loss.detach()))
        scheduler.step()
        precision = precision_at_k(
            embed(head, validation_features[:, 0]),
            np.asarray(validation_labels),
            embed(head, train_view0),
            np.asarray(labels),
            params.k,
        )
        if history.record(float(np.mean(epoch_losses)), precision):
            best = {name: value.clone() for name, value in head.state_dict().items()}
    head.load_state_dict(best)
    return head.eval(), history
