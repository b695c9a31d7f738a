"""Near-duplicates at add time: which new images to keep, and which duplicates to report."""

from collections.abc import Callable, Sequence

import numpy as np

from imsearch.core.errors import InvalidArgument
from imsearch.v1 import search_pb2

DEFAULT_MIN_SCORE = 0.95
# The nearest stored point above a threshold, as (id, cosine), leaving out the given id.
Nearest = Callable[[np.ndarray, float, str], tuple[str, float] | None]


def threshold_of(item: search_pb2.AddImageRequest) -> float:
    if item.on_duplicate not in search_pb2.DuplicatePolicy.values():
        raise InvalidArgument(f"unknown duplicate policy {item.on_duplicate}")
    score = item.duplicate_min_score if item.HasField("duplicate_min_score") else DEFAULT_MIN_SCORE
    if not 0.5 <= score <= 1.0:  # NaN fails too
        raise InvalidArgument(f"duplicate_min_score must be between 0.5 and 1, got {score}")
    return score


def screen(
    items: Sequence[search_pb2.AddImageRequest], vectors: np.ndarray, nearest: Nearest
) -> tuple[list[bool], list[search_pb2.Duplicate]]:
    """For each item: stored or not; and the duplicates found. An item is compared with the
    stored images and with the earlier items of the call that are kept (re-adding an id is a
    replacement, never its own duplicate)."""
    keep: list[bool] = []
    found: list[search_pb2.Duplicate] = []
    for position, item in enumerate(items):
        if item.on_duplicate == search_pb2.DUPLICATE_POLICY_ALLOW:
            keep.append(True)
            continue
        threshold = threshold_of(item)
        best = nearest(vectors[position], threshold, item.id)
        for earlier in range(position):
            if keep[earlier] and items[earlier].id != item.id:
                score = float(vectors[earlier] @ vectors[position])
                if score >= threshold and (best is None or score > best[1]):
                    best = (items[earlier].id, score)
        skipped = best is not None and item.on_duplicate == search_pb2.DUPLICATE_POLICY_SKIP
        if best is not None:
            found.append(search_pb2.Duplicate(id=item.id, of=best[0], score=best[1], skipped=skipped))
        keep.append(not skipped)
    return keep, found
