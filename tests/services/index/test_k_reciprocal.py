"""k-reciprocal re-ranking: on noisy clustered vectors it ranks more of the query's class
first than cosine does; with lambda 1 it is cosine; bad parameters are refused."""

import numpy as np
import pytest

from imsearch.core.errors import InvalidArgument
from services.index.k_reciprocal import KReciprocal, reranked

DIM, PER_CLASS, CLASSES, NOISE = 64, 40, 5, 1.6


def unit(x: np.ndarray) -> np.ndarray:
    normalized: np.ndarray = x / np.linalg.norm(x, axis=-1, keepdims=True)
    return normalized


@pytest.fixture(scope="module")
def clusters() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((CLASSES, DIM))
    gallery = unit(
        np.repeat(centres, PER_CLASS, axis=0) + NOISE * rng.standard_normal((CLASSES * PER_CLASS, DIM))
    )
    return centres, unit(gallery), np.repeat(np.arange(CLASSES), PER_CLASS)


def test_it_ranks_more_of_the_class_first_than_cosine(
    clusters: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    centres, gallery, labels = clusters
    rng = np.random.default_rng(1)
    plain, reciprocal = [], []
    for q in range(40):
        label = q % CLASSES
        query = unit(centres[label] + NOISE * rng.standard_normal(DIM))
        top = np.argsort(-(gallery @ query))[:100]
        order, scores = reranked(query, gallery[top], KReciprocal())
        assert sorted(order.tolist()) == list(range(100)) and np.all(np.diff(scores) <= 1e-6)
        plain.append(np.mean(labels[top[:10]] == label))
        reciprocal.append(np.mean(labels[top[order[:10]]] == label))
    assert np.mean(plain) < 0.98  # cosine alone gets some wrong here ...
    assert np.mean(reciprocal) > np.mean(plain) + 0.02  # ... and the k-reciprocal sets fix most


def test_lambda_one_is_the_cosine_order(clusters: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    _, gallery, _ = clusters
    query = gallery[7]
    top = np.argsort(-(gallery @ query))[:50]
    order, _ = reranked(query, gallery[top], KReciprocal(lambda_=1.0, candidates=50))
    assert order.tolist() == list(range(50))


@pytest.mark.parametrize(
    "params",
    [
        KReciprocal(candidates=1),
        KReciprocal(candidates=501),
        KReciprocal(k1=100, candidates=100),
        KReciprocal(k2=30, k1=20),
        KReciprocal(lambda_=float("nan")),
        KReciprocal(candidates=5),  # below top_k
    ],
)
def test_bad_parameters_are_refused(params: KReciprocal) -> None:
    with pytest.raises(InvalidArgument):
        params.validate(top_k=10)
