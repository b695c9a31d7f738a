"""Search by example (Qdrant's recommend API): positive and negative examples, two strategies.

Both work on every index: the average strategy is one query vector; the best-score strategy
gathers candidates around each positive with the chosen index, then scores each against
every example from its stored vector.
"""

from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from imsearch.core.errors import InvalidArgument
from imsearch.core.validation import MAX_EXAMPLES, validate_ids
from imsearch.v1 import index_pb2


class ExampleStrategy(StrEnum):
    AVERAGE_VECTOR = "average_vector"
    BEST_SCORE = "best_score"

    @classmethod
    def from_proto(cls, value: int) -> "ExampleStrategy":
        wire = {
            index_pb2.EXAMPLE_STRATEGY_AVERAGE_VECTOR: cls.AVERAGE_VECTOR,
            index_pb2.EXAMPLE_STRATEGY_BEST_SCORE: cls.BEST_SCORE,
        }
        if value not in wire:
            raise InvalidArgument(f"unknown example strategy {value}; use {', '.join(cls)}")
        return wire[value]  # type: ignore[index]


@dataclass
class Examples:
    """Vectors are as sent (unit-normalised later); ids are read from the collection."""

    positive_ids: list[str] = field(default_factory=list)
    negative_ids: list[str] = field(default_factory=list)
    positive_vectors: list[np.ndarray] = field(default_factory=list)
    negative_vectors: list[np.ndarray] = field(default_factory=list)
    strategy: ExampleStrategy = ExampleStrategy.AVERAGE_VECTOR

    def __bool__(self) -> bool:
        return bool(self.positive_ids or self.negative_ids or self.positive_vectors or self.negative_vectors)

    def validate(self) -> None:
        validate_ids([*self.positive_ids, *self.negative_ids])
        positives = len(self.positive_ids) + len(self.positive_vectors)
        negatives = len(self.negative_ids) + len(self.negative_vectors)
        if positives == 0:
            raise InvalidArgument("search by example needs at least one positive example")
        if positives > MAX_EXAMPLES or negatives > MAX_EXAMPLES:
            raise InvalidArgument(
                f"at most {MAX_EXAMPLES} positive and {MAX_EXAMPLES} negative examples, "
                f"got {positives} and {negatives}"
            )

    @property
    def ids(self) -> set[str]:
        return {*self.positive_ids, *self.negative_ids}


def average_query(positives: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    """Qdrant's average_vector: avg_pos + (avg_pos - avg_neg); rows are unit vectors."""
    mean = positives.mean(axis=0)
    query: np.ndarray = 2 * mean - negatives.mean(axis=0) if len(negatives) else mean
    norm = float(np.linalg.norm(query))
    if norm < 1e-6:
        raise InvalidArgument("the examples cancel out: their average is a zero vector")
    return (query / norm).astype(np.float32)


def best_scores(candidates: np.ndarray, positives: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    """Qdrant's best_score: the best cosine to a positive, or, where a negative is closer,
    minus that cosine squared (so those rank below every candidate nearer a positive)."""
    best_positive: np.ndarray = (candidates @ positives.T).max(axis=1)
    if not len(negatives):
        return best_positive
    best_negative = (candidates @ negatives.T).max(axis=1)
    scores: np.ndarray = np.where(best_positive > best_negative, best_positive, -(best_negative**2))
    return scores
