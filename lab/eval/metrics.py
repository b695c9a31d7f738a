"""Retrieval metrics as pure functions of a ranked relevance list (binary relevance).

`ranked` holds, best first, whether each retrieved item is relevant to the query (same class);
`relevant` is how many relevant items the gallery holds in all. Definitions:

- precision@k: relevant among the first k, over k;
- recall@k: relevant among the first k, over all relevant in the gallery;
- hit rate@k: 1 if any of the first k is relevant (what the reference study seems to call recall);
- AP@k: sum over relevant positions i <= k of precision@i, over min(k, relevant);
- average precision (full mAP per query): the same over the whole ranking, over all relevant;
- nDCG@k: sum of 1/log2(i + 1) over relevant positions, over the same for an ideal ranking.
"""

from collections.abc import Sequence

import numpy as np


def _checked(ranked: Sequence[bool], relevant: int, k: int | None = None) -> np.ndarray:
    if relevant < 1:
        raise ValueError("the query has no relevant item in the gallery: its metrics are undefined")
    if k is not None and k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    hits = np.asarray(ranked, dtype=bool)
    if hits.sum() > relevant:
        raise ValueError("more relevant items retrieved than the gallery holds")
    return hits


def precision_at_k(ranked: Sequence[bool], relevant: int, k: int) -> float:
    hits = _checked(ranked, relevant, k)
    return float(hits[:k].sum()) / k


def recall_at_k(ranked: Sequence[bool], relevant: int, k: int) -> float:
    hits = _checked(ranked, relevant, k)
    return float(hits[:k].sum()) / relevant


def hit_rate_at_k(ranked: Sequence[bool], relevant: int, k: int) -> float:
    hits = _checked(ranked, relevant, k)
    return float(hits[:k].any())


def _precision_sum(hits: np.ndarray) -> float:
    positions = np.flatnonzero(hits) + 1  # 1-based ranks of the relevant items
    return float(np.sum(np.arange(1, len(positions) + 1) / positions))


def average_precision_at_k(ranked: Sequence[bool], relevant: int, k: int) -> float:
    hits = _checked(ranked, relevant, k)
    return _precision_sum(hits[:k]) / min(k, relevant)


def average_precision(ranked: Sequence[bool], relevant: int) -> float:
    """Over the whole ranking; relevant items never retrieved count as precision 0."""
    hits = _checked(ranked, relevant)
    return _precision_sum(hits) / relevant


def ndcg_at_k(ranked: Sequence[bool], relevant: int, k: int) -> float:
    hits = _checked(ranked, relevant, k)[:k]
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = float(discounts[: min(k, relevant)].sum())
    return float(discounts[: len(hits)][hits].sum()) / ideal
