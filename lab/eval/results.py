"""The evaluation's results as types: what the harness computes, the report and the study read,
and `results.json` stores (pydantic reads and writes the same layout as earlier runs)."""

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
from pydantic import TypeAdapter

from imsearch.core.index_kind import IndexKind

# The scikit-learn KD-tree: one of the study's baselines, not an index the service offers.
KDTREE = "kdtree"
# What the evaluation can search with: the service's index kinds, plus the KD-tree.
EVAL_INDEXES: tuple[str, ...] = (IndexKind.EXACT, KDTREE, IndexKind.LSH, IndexKind.HNSW)
# The metrics at k, in report order.
METRICS = ("precision", "recall", "hit_rate", "ap", "ndcg")


@dataclass(frozen=True)
class Estimate:
    """A mean and the half-width of its normal-approximation 95% confidence interval."""

    mean: float
    ci95: float

    @classmethod
    def of(cls, values: Sequence[float]) -> "Estimate":
        array = np.asarray(values, dtype=np.float64)
        half = 1.96 * float(array.std(ddof=1)) / np.sqrt(len(array)) if len(array) > 1 else 0.0
        return cls(float(array.mean()), half)


@dataclass(frozen=True)
class Timing:
    """Latency in milliseconds (median, 95th percentile) and the queries per second it implies."""

    p50: float
    p95: float
    qps: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> "Timing":
        ms = np.asarray(seconds) * 1000
        return cls(float(np.median(ms)), float(np.percentile(ms, 95)), float(1000 / ms.mean()))

    @classmethod
    def median_of(cls, timings: Sequence["Timing"]) -> "Timing":
        """Over seeds: the median of each figure."""
        return cls(*(float(np.median([getattr(t, f) for t in timings])) for f in ("p50", "p95", "qps")))


@dataclass(frozen=True)
class IndexOutcome:
    """One model searched with one index: metrics at k, ANN recall against exact, search time."""

    at_k: dict[str, Estimate]  # by metric name (METRICS)
    ann_recall: Estimate  # share of the exact top k that the index returns
    search_ms: Timing


@dataclass(frozen=True)
class ModelHeader:
    """What names a report row's model: its embedding size, weights, and how many seeds."""

    dim: int
    weights: str
    seeds: int


@dataclass(frozen=True)
class SplitOutcome:
    """One model on one split (or combined over seeds)."""

    encode_ms: Timing
    map_full: Estimate  # mAP over the whole gallery, exact ranking
    per_class: dict[str, dict[str, float]]  # class -> metric -> mean over its queries (exact)
    indexes: dict[str, IndexOutcome]  # by EVAL_INDEXES name


@dataclass(frozen=True)
class ModelResult(SplitOutcome, ModelHeader):
    """A report row: the header's fields, then the outcome's (the order results.json keeps)."""

    @classmethod
    def of(cls, dim: int, weights: str, seeds: int, outcome: SplitOutcome) -> "ModelResult":
        return cls(dim, weights, seeds, **{f.name: getattr(outcome, f.name) for f in fields(SplitOutcome)})

    def precision(self, index: str = IndexKind.EXACT) -> Estimate:
        """Mean P@k with `index`: exact is what the tables rank models by."""
        return self.indexes[index].at_k["precision"]


@dataclass(frozen=True)
class TrainingRecord:
    """What training recorded for one model the study trained."""

    row: str
    train_images: int
    validation_images: int
    best_epoch: int
    epochs: int
    validation_precision: float
    curves: str


@dataclass(frozen=True)
class Seconds:
    fit_and_train: float
    total: float


@dataclass
class EvalResults:
    protocol: dict[str, str | int]
    k: int
    seeds: list[int]
    models: dict[str, ModelResult]  # by report row
    training: dict[str, TrainingRecord] = field(default_factory=dict)  # the study's trained models
    seconds: Seconds | None = None  # the study's timings

    def to_json(self) -> str:
        return _ADAPTER.dump_json(self, indent=2, exclude_none=True).decode() + "\n"

    @classmethod
    def from_json(cls, text: str) -> "EvalResults":
        return _ADAPTER.validate_json(text)

    @classmethod
    def load(cls, path: Path) -> "EvalResults":
        return cls.from_json(path.read_text())

    def classes(self) -> set[str]:
        return set(next(iter(self.models.values())).per_class)


_ADAPTER = TypeAdapter(EvalResults)
