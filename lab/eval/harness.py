"""`imsearch eval`: encode with the service's encoder code, search with its index code, score.

For each model and each seed's split: the gallery is encoded (batched, once per image across
seeds) and stored in Qdrant (HNSW, exact) and the Redis LSH store through the index service's
own engine, plus a KD-tree (scikit-learn) over the same L2-normalised vectors; each held-out
query is encoded on its own (timed) and searched in every index (timed). Full mAP and the
per-class scores rank the whole gallery exactly. ANN recall@k is the share of the exact top k
that an index returns. With several seeds, means and confidence intervals are over the seeds.
"""

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import redis
from sklearn.neighbors import KDTree

from devtools.embedded_redis import EmbeddedRedis
from imsearch.core.index_kind import IndexKind
from imsearch.core.metrics import ServiceMetrics
from lab.eval import metrics as m
from lab.eval.protocol import Split
from lab.eval.results import (
    EVAL_INDEXES,
    KDTREE,
    METRICS,
    Estimate,
    EvalResults,
    IndexOutcome,
    ModelResult,
    SplitOutcome,
    Timing,
)
from services.encoder.engine import Encoder
from services.encoder.settings import EncoderSettings
from services.index.engine import IndexEngine
from services.index.k_reciprocal import KReciprocal
from services.index.query_expansion import QueryExpansion
from services.index.stores.qdrant_edge import QdrantEdgeStore
from services.index.stores.redis_lsh import LshParams, RedisLshStore

# The metrics at k by name, in the results' order (METRICS).
AT_K: dict[str, Callable[[list[bool], int, int], float]] = dict(
    zip(
        METRICS,
        (m.precision_at_k, m.recall_at_k, m.hit_rate_at_k, m.average_precision_at_k, m.ndcg_at_k),
        strict=True,
    )
)


class EmbeddingCache:
    """Gallery embeddings of one model, computed in batches, once per image across seeds."""

    def __init__(self, encoder: Encoder, model: str, batch: int = 32) -> None:
        self._encoder, self._model, self._batch = encoder, model, batch
        self._vectors: dict[Path, np.ndarray] = {}

    def get(self, paths: list[Path]) -> np.ndarray:
        missing = [p for p in dict.fromkeys(paths) if p not in self._vectors]
        for start in range(0, len(missing), self._batch):
            chunk = missing[start : start + self._batch]
            vectors = self._encoder.encode(self._model, [p.read_bytes() for p in chunk])[1]
            self._vectors.update(zip(chunk, vectors, strict=True))
        return np.stack([self._vectors[p] for p in paths])


def evaluate_split(
    encoder: Encoder,
    model: str,
    data: Split,
    indexes: list[str],
    k: int,
    engine: IndexEngine,
    collection: str,
    cache: EmbeddingCache,
    expansion: QueryExpansion | None = None,
    k_reciprocal: KReciprocal | None = None,
) -> SplitOutcome:
    labels = np.asarray([item.label for item in data.gallery])
    gallery = cache.get([item.path for item in data.gallery])
    engine.ensure_collection(collection, gallery.shape[1])
    ids = [str(i) for i in range(len(gallery))]
    for start in range(0, len(ids), 512):
        engine.upsert(
            collection, [(ids[i], gallery[i], {}) for i in range(start, min(start + 512, len(ids)))]
        )
    engine.wait_for_optimize()
    if IndexKind.HNSW in indexes:
        engine.optimize(collection)
    tree = KDTree(gallery) if KDTREE in indexes else None

    def search(index: str, query: np.ndarray) -> list[int]:
        if tree is not None and index == KDTREE:
            return [int(i) for i in tree.query(query[None, :], k=k, return_distance=False)[0]]
        found = engine.search(
            collection,
            query,
            k,
            IndexKind(index),
            None,
            False,
            expansion=expansion,
            k_reciprocal=k_reciprocal,
        )
        return [int(h.id) for h in found.hits]

    scores: dict[str, dict[str, list[float]]] = {i: {name: [] for name in AT_K} for i in indexes}
    ann_recall: dict[str, list[float]] = {i: [] for i in indexes}
    search_seconds: dict[str, list[float]] = {i: [] for i in indexes}
    by_class: dict[str, dict[str, list[float]]] = {}
    encode_seconds, full_ap = [], []
    for item in data.queries:
        began = time.perf_counter()
        query = encoder.encode(model, [item.path.read_bytes()])[1][0]
        encode_seconds.append(time.perf_counter() - began)
        relevant = data.relevant_in_gallery(item.label)
        order = np.argsort(-(gallery @ query), kind="stable")
        ranking = list(labels[order] == item.label)
        full_ap.append(m.average_precision(ranking, relevant))
        own = by_class.setdefault(item.label, {name: [] for name in AT_K})
        for name, metric in AT_K.items():
            own[name].append(metric(ranking[:k], relevant, k))
        exact_top = set(order[:k].tolist())
        for index in indexes:
            began = time.perf_counter()
            found = search(index, query)
            search_seconds[index].append(time.perf_counter() - began)
            ranked = [bool(labels[i] == item.label) for i in found]
            for name, metric in AT_K.items():
                scores[index][name].append(metric(ranked, relevant, k))
            ann_recall[index].append(len(exact_top & set(found)) / k)
    return SplitOutcome(
        encode_ms=Timing.of(encode_seconds),
        map_full=Estimate.of(full_ap),
        per_class={
            label: {name: float(np.mean(values)) for name, values in metrics.items()}
            for label, metrics in sorted(by_class.items())
        },
        indexes={
            index: IndexOutcome(
                at_k={name: Estimate.of(values) for name, values in scores[index].items()},
                ann_recall=Estimate.of(ann_recall[index]),
                search_ms=Timing.of(search_seconds[index]),
            )
            for index in indexes
        },
    )


def combine_seeds(runs: list[SplitOutcome]) -> SplitOutcome:
    """One seed: its own figures (CI over queries). Several: means of the per-seed means, with the
    CI over seeds; timings are the per-seed medians' median."""
    if len(runs) == 1:
        return runs[0]
    first = runs[0]

    def over_seeds(estimates: list[Estimate]) -> Estimate:
        return Estimate.of([e.mean for e in estimates])

    return SplitOutcome(
        encode_ms=Timing.median_of([r.encode_ms for r in runs]),
        map_full=over_seeds([r.map_full for r in runs]),
        per_class={
            label: {name: float(np.mean([r.per_class[label][name] for r in runs])) for name in AT_K}
            for label in first.per_class
        },
        indexes={
            index: IndexOutcome(
                at_k={name: over_seeds([r.indexes[index].at_k[name] for r in runs]) for name in AT_K},
                ann_recall=over_seeds([r.indexes[index].ann_recall for r in runs]),
                search_ms=Timing.median_of([r.indexes[index].search_ms for r in runs]),
            )
            for index in first.indexes
        },
    )


def run(
    splits: dict[int, Split],
    models: list[str] | dict[int, list[str]],
    indexes: list[str],
    k: int,
    model_repository: Path,
    protocol: dict[str, str | int],
    labels: dict[str, str] | None = None,
    expansion: QueryExpansion | None = None,
    k_reciprocal: KReciprocal | None = None,
) -> EvalResults:
    """`splits` by seed. `models` is a list, or per seed a list (models trained on that seed's
    split), in which case `labels` names the row each per-seed model is reported under.
    `expansion`: every index search (not the KD-tree) with alpha query expansion."""
    unknown = sorted(set(indexes) - set(EVAL_INDEXES))
    if unknown:
        raise ValueError(f"unknown index {unknown}; choose from {', '.join(EVAL_INDEXES)}")
    per_seed = models if isinstance(models, dict) else {seed: models for seed in splits}
    names = sorted({name for seed_models in per_seed.values() for name in seed_models})
    encoder = Encoder(
        EncoderSettings(
            model_repository=model_repository, models=names, default_model=names[0], metrics_port=-1
        ),
        ServiceMetrics("eval"),
    )
    for model in names:  # fail before hours of work, not after
        encoder.spec(model)
    rows: dict[str, list[SplitOutcome]] = {}
    specs: dict[str, tuple[int, str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        redis_server = EmbeddedRedis(Path(tmp) / "redis")
        lsh = RedisLshStore(redis.Redis.from_url(redis_server.url), LshParams())
        engine = IndexEngine(QdrantEdgeStore(Path(tmp) / "qdrant"), lsh, ServiceMetrics("eval"))
        try:
            for model in names:
                cache = EmbeddingCache(encoder, model)
                row = (labels or {}).get(model, model)
                for seed, data in splits.items():
                    if model in per_seed[seed]:
                        outcome = evaluate_split(
                            encoder,
                            model,
                            data,
                            indexes,
                            k,
                            engine,
                            f"{model}-seed{seed}",
                            cache,
                            expansion,
                            k_reciprocal,
                        )
                        rows.setdefault(row, []).append(outcome)
                spec = encoder.spec(model)
                specs[row] = (spec.dim, spec.weights)
        finally:
            engine.close()
            encoder.close()
            redis_server.stop()
    return EvalResults(
        protocol=protocol,
        k=k,
        seeds=sorted(splits),
        models={
            row: ModelResult.of(*specs[row], len(runs), combine_seeds(runs)) for row, runs in rows.items()
        },
    )
