"""k-reciprocal re-ranking (Zhong, Zheng, Cao and Li, CVPR 2017) of a query's nearest stored
vectors, run in the index service where the vectors are.

Two images are k-reciprocal neighbours when each is among the other's k nearest: a stricter
tie than nearness alone, which false matches rarely pass. Each of the query and its candidates
gets a weighted set of its k-reciprocal neighbours (expanded by theirs, as the paper's
code does); the Jaccard distance between the query's set and a candidate's, mixed with the
original distance (lambda), gives the new order. As usual in practice, the neighbourhoods are
taken within the query's `candidates` nearest (not the whole collection), so the cost is a
few (candidates + 1)^2 matrices per query.
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


def _reciprocal_sets(rank: np.ndarray, k: int) -> np.ndarray:
    """(n, n) booleans: j is a k-reciprocal neighbour of i (each among the other's k + 1
    nearest, itself included, as in the paper's code)."""
    count = rank.shape[0]
    nearest = np.zeros((count, count), dtype=bool)
    nearest[np.arange(count)[:, None], rank[:, : k + 1]] = True
    reciprocal: np.ndarray = nearest & nearest.T
    return reciprocal


def reranked(query: np.ndarray, candidates: np.ndarray, params: KReciprocal) -> tuple[np.ndarray, np.ndarray]:
    """(order of the candidates, best first; their scores, 1 - the final distance). `query` is
    a unit vector, `candidates` (n, dim) unit vectors. Set operations are boolean matrices, so
    a query costs a few (n + 1)^2 array operations, not a Python loop per point."""
    points = np.vstack([query[None, :], candidates]).astype(np.float32)
    similarity = np.clip(points @ points.T, -1.0, 1.0)
    distance = 2.0 - 2.0 * similarity  # squared Euclidean between unit vectors
    np.fill_diagonal(distance, 0.0)
    distance = (distance / np.maximum(distance.max(axis=0, keepdims=True), 1e-12)).T
    rank = np.argsort(distance, axis=1, kind="stable")
    sets = _reciprocal_sets(rank, params.k1)
    halves = _reciprocal_sets(rank, int(np.around(params.k1 / 2.0)))
    # A candidate c of i's set brings its own half-size set along when at least two thirds of
    # that set are in i's: shared[c, i] = |half(c) & set(i)|.
    shared = halves.astype(np.int32) @ sets.T.astype(np.int32)
    brings = shared > (2.0 / 3.0) * halves.sum(axis=1, keepdims=True)
    expansion = sets | ((sets & brings.T).astype(np.int32) @ halves.astype(np.int32) > 0)
    weights = np.where(expansion, np.exp(-distance), 0.0).astype(np.float32)
    weights /= weights.sum(axis=1, keepdims=True)
    if params.k2 > 1:
        weights = weights[rank[:, : params.k2]].mean(axis=1)
    common = np.minimum(weights[0][None, :], weights).sum(axis=1)  # rows sum to 1: max = 2 - min
    jaccard = 1.0 - common / (2.0 - common)
    final = jaccard * (1.0 - params.lambda_) + distance[0] * params.lambda_
    order = np.argsort(final[1:], kind="stable")
    scores: np.ndarray = (1.0 - final[1:][order]).astype(np.float32)
    return order, scores
