"""Each metric against cases worked out by hand."""

import math

import pytest

from lab.eval.metrics import (
    average_precision,
    average_precision_at_k,
    hit_rate_at_k,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
)

# Ranking: relevant at ranks 1, 3 and 6; the gallery holds 4 relevant items.
RANKED = [True, False, True, False, False, True]
RELEVANT = 4


def test_precision_recall_and_hit_rate() -> None:
    assert precision_at_k(RANKED, RELEVANT, 1) == 1.0
    assert precision_at_k(RANKED, RELEVANT, 5) == 2 / 5
    assert recall_at_k(RANKED, RELEVANT, 5) == 2 / 4
    assert recall_at_k(RANKED, RELEVANT, 6) == 3 / 4
    assert hit_rate_at_k([False, False, True], 1, 2) == 0.0
    assert hit_rate_at_k([False, False, True], 1, 3) == 1.0


def test_average_precision() -> None:
    # precision at the relevant ranks: 1/1, 2/3, 3/6
    assert average_precision_at_k(RANKED, RELEVANT, 3) == pytest.approx((1 + 2 / 3) / 3)
    assert average_precision_at_k(RANKED, RELEVANT, 6) == pytest.approx((1 + 2 / 3 + 3 / 6) / 4)
    assert average_precision(RANKED, RELEVANT) == pytest.approx((1 + 2 / 3 + 3 / 6) / 4)
    assert average_precision([True, True], 2) == 1.0
    assert average_precision([False, True], 1) == 0.5


def test_ndcg() -> None:
    dcg = 1 / math.log2(2) + 1 / math.log2(4)  # relevant at ranks 1 and 3
    ideal = 1 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4)  # 3 relevant at the top
    assert ndcg_at_k(RANKED, RELEVANT, 3) == pytest.approx(dcg / ideal)
    assert ndcg_at_k([True, True, False], 2, 3) == pytest.approx(1.0)
    assert ndcg_at_k([False, False], 5, 2) == 0.0
    assert ndcg_at_k([True], 1, 10) == pytest.approx(1.0)  # shorter ranking than k


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: precision_at_k([True], 0, 1), "no relevant item"),
        (lambda: precision_at_k([True], 1, 0), "k must be at least 1"),
        (lambda: recall_at_k([True, True], 1, 2), "more relevant items retrieved"),
    ],
)
def test_undefined_cases_are_refused(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()
