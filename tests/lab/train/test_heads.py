"""Training loops on features whose classes are known: the losses must actually separate them."""

import dataclasses

import numpy as np
import pytest
import torch

from lab.train.heads import HeadParams, embed, train_head
from lab.train.history import precision_at_k


def clustered_features(classes: int, per_class: int, seed: int) -> tuple[np.ndarray, list[int]]:
    """(n, 2 views, 64) features: a class centre plus heavy noise, so raw cosine mixes classes."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).normal(size=(classes, 64))
    labels = np.repeat(np.arange(classes), per_class)
    base = centres[labels] * 0.35 + rng.normal(size=(len(labels), 64))  # raw cosine P@10 ~0.65
    views = np.stack([base, base + 0.1 * rng.normal(size=base.shape)], axis=1)
    return views.astype(np.float32), labels.tolist()


@pytest.mark.parametrize(
    "params",
    [
        HeadParams(kind="dense", out_dim=32, epochs=15, batch_size=32),
        HeadParams(kind="triplet", out_dim=32, epochs=15, batch_size=48, m_per_class=8),
    ],
    ids=["dense", "triplet"],
)
def test_head_separates_classes_better_than_raw_features(params: HeadParams) -> None:
    train, labels = clustered_features(6, 200, seed=0)
    held, held_labels = clustered_features(6, 20, seed=1)
    head, history = train_head(train, labels, held, held_labels, params, "test")

    def normalised(x: np.ndarray) -> np.ndarray:
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    raw = precision_at_k(
        normalised(held[:, 0]), np.array(held_labels), normalised(train[:, 0]), np.array(labels), 10
    )
    learned = precision_at_k(
        embed(head, held[:, 0]), np.array(held_labels), embed(head, train[:, 0]), np.array(labels), 10
    )
    assert learned > raw + 0.04, (raw, learned)
    assert len(history.loss) == params.epochs and history.loss[-1] < history.loss[0]
    best = history.validation_precision[history.best_epoch - 1]
    assert best == max(history.validation_precision)
    assert learned == pytest.approx(best)  # the kept weights are the best epoch's
    assert np.allclose(np.linalg.norm(embed(head, held[:, 0]), axis=1), 1.0, atol=1e-5)


def test_a_triplet_run_repeats_exactly_with_its_seed() -> None:
    """The m-per-class sampler and the miner draw from pytorch-metric-learning's generator,
    which training seeds: two runs give the same weights, and numpy's global state is left alone."""
    train, labels = clustered_features(6, 60, seed=0)
    held, held_labels = clustered_features(6, 10, seed=1)
    params = HeadParams(kind="triplet", out_dim=16, epochs=3, batch_size=48, m_per_class=8)
    weights = []
    for disturbance in (1, 2):
        np.random.seed(disturbance)  # whatever else drew from numpy's global generator before
        head, _ = train_head(train, labels, held, held_labels, params, "test")
        weights.append(torch.cat([p.detach().flatten() for p in head.parameters()]))
        assert np.random.randint(1 << 30) == np.random.RandomState(disturbance).randint(1 << 30)
    assert torch.equal(weights[0], weights[1])
    other, _ = train_head(train, labels, held, held_labels, dataclasses.replace(params, seed=1), "test")
    assert not torch.equal(weights[0], torch.cat([p.detach().flatten() for p in other.parameters()]))
