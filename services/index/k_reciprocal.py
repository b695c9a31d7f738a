"""k-reciprocal re-ranking (Zhong, Zheng, Cao and Li, CVPR 2017) of a query's nearest stored
vectors, run in the index service where the vectors are.

Two images are k-reciprocal neighbours when each is among the other's k nearest: a stricter
tie than nearness alone, which false matches rarely pass. Each of the query and its candidates
gets a weighted set of its k-reciprocal neighbours (expanded by theirs, as the paper's
code does); the Jaccard distance between the query's set and a candidate's, mixed with the
original distance (lambda), gives the new order. As usual in practice, the neighbourhoods are
taken within the query's `candidates` nearest (not the whole collection), so the cost is a
(candidates + 1)^2 similarity matrix per query.
"""

from dataclasses import dataclass

import numpy as np

from imsearch.core.errors import InvalidArgument

MAX_CANDIDATES = 500


@dataclass(frozen=True)
class KReciprocal:
    k1: int = 20  # the k of the k-reciprocal sets
    k2: int = 6  # neighbours averaged in the local query expansion of the sets (1: none)
    lambda_: float = 0.3  # weight of the original distance against the Jaccard distance
    candidates: int = 100  # nearest stored vectors re-ranked (and whose sets are built)

    def validate(self, top_k: int) -> None:
        if not 2 <= self.candidates <= MAX_CANDIDATES:
            raise InvalidArgument(f"k-reciprocal candidates must be between 2 and {MAX_CANDIDATES}")
        if self.candidates < top_k:
            raise InvalidArgument(
                f"k-reciprocal candidates ({self.candidates}) must be at least top_k ({top_k})"
            )
        if not 1 <= self.k1 < self.candidates:
            raise InvalidArgument("k-reciprocal k1 must be at least 1 and below the candidates")
        if not 1 <= self.k2 <= self.k1:
            raise InvalidArgument("k-reciprocal k2 must be between 1 and k1")
        if not 0.0 <= self.lambda_ <= 1.0:  # also refuses NaN
            raise InvalidArgument("k-reciprocal lambda must be between 0 and 1")


def _reciprocal(rank: np.ndarray, i: int, k: int) -> np.ndarray:
    forward = rank[i, : k + 1]
    backward = rank[forward, : k + 1]
    return forward[np.any(backward == i, axis=1)]


def reranked(query: np.ndarray, candidates: np.ndarray, params: KReciprocal) -> tuple[np.ndarray, np.ndarray]:
    """(order of the candidates, best first; their scores, 1 - the final distance). `query` is
    a unit vector, `candidates` (n, dim) unit vectors."""
    points = np.vstack([query[None, :], candidates]).astype(np.float32)
    count = points.shape[0]
    similarity = np.clip(points @ points.T, -1.0, 1.0)
    distance = 2.0 - 2.0 * similarity  # squared Euclidean between unit vectors
    np.fill_diagonal(distance, 0.0)
    distance = (distance / np.maximum(distance.max(axis=0, keepdims=True), 1e-12)).T
    rank = np.argsort(distance, axis=1, kind="stable")
    half = int(np.around(params.k1 / 2.0))
    weights = np.zeros((count, count), dtype=np.float32)
    for i in range(count):
        reciprocal = _reciprocal(rank, i, params.k1)
        expansion = reciprocal
        for candidate in reciprocal:
            theirs = _reciprocal(rank, int(candidate), half)
            if len(np.intersect1d(theirs, reciprocal)) > 2.0 / 3.0 * len(theirs):
                expansion = np.append(expansion, theirs)
        expansion = np.unique(expansion)
        weight = np.exp(-distance[i, expansion])
        weights[i, expansion] = weight / weight.sum()
    if params.k2 > 1:
        weights = np.stack([weights[rank[i, : params.k2]].mean(axis=0) for i in range(count)])
    shared = np.minimum(weights[0][None, :], weights).sum(axis=1)  # rows sum to 1: max = 2 - min
    jaccard = 1.0 - shared / (2.0 - shared)
    final = jaccard * (1.0 - params.lambda_) + distance[0] * params.lambda_
    order = np.argsort(final[1:], kind="stable")
    scores: np.ndarray = (1.0 - final[1:][order]).astype(np.float32)
    return order, scores
