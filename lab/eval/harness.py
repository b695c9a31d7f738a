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
from typing import Any

import numpy as np
import redis
from sklearn.neighbors import KDTree

from devtools.embedded_redis import EmbeddedRedis
from imsearch.core.metrics import ServiceMetrics
from lab.eval import metrics as m
from lab.eval.protocol import Split
from services.encoder.engine import Encoder
from services.encoder.settings import EncoderSettings
from services.index.engine import IndexEngine
from services.index.stores.qdrant_edge import QdrantEdgeStore
from services.index.stores.redis_lsh import LshParams, RedisLshStore

INDEXES = ("exact", "kdtree", "lsh", "hnsw")
AT_K: dict[str, Callable[[list[bool], int, int], float]] = {
    "precision": m.precision_at_k,
    "recall": m.recall_at_k,
    "hit_rate": m.hit_rate_at_k,
    "ap": m.average_precision_at_k,
    "ndcg": m.ndcg_at_k,
}


def summary(values: list[float]) -> dict[str, float]:
    """Mean and the half-width of a normal-approximation 95% confidence interval."""
    array = np.asarray(values, dtype=np.float64)
    half = 1.96 * float(array.std(ddof=1)) / np.sqrt(len(array)) if len(array) > 1 else 0.0
    return {"mean": float(array.mean()), "ci95": half}


def timing(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000
    return {"p50": float(np.median(ms)), "p95": float(np.percentile(ms, 95)), "qps": float(1000 / ms.mean())}


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
) -> dict[str, Any]:
    labels = np.asarray([item.label for item in data.gallery])
    gallery = cache.get([item.path for item in data.gallery])
    engine.ensure_collection(collection, gallery.shape[1])
    ids = [str(i) for i in range(len(gallery))]
    for start in range(0, len(ids), 512):
        engine.upsert(
            collection, [(ids[i], gallery[i], {}) for i in range(start, min(start + 512, len(ids)))]
        )
    engine.wait_for_optimize()
    if "hnsw" in indexes:
        engine.optimize(collection)
    tree = KDTree(gallery) if "kdtree" in indexes else None

    def search(index: str, query: np.ndarray) -> list[int]:
        if index == "kdtree":
            assert tree is not None
            return [int(i) for i in tree.query(query[None, :], k=k, return_distance=False)[0]]
        return [int(h.id) for h in engine.search(collection, query, k, index, None, False).hits]

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
    return {
        "encode_ms": timing(encode_seconds),
        "map_full": summary(full_ap),
        "per_class": {
            label: {name: float(np.mean(values)) for name, values in metrics.items()}
            for label, metrics in sorted(by_class.items())
        },
        "indexes": {
            index: {
                "at_k": {name: summary(values) for name, values in scores[index].items()},
                "ann_recall": summary(ann_recall[index]),
                "search_ms": timing(search_seconds[index]),
            }
            for index in indexes
        },
    }


def combine_seeds(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One seed: its own figures (CI over queries). Several: means of the per-seed means, with the
    CI over seeds; timings are the per-seed medians' median."""
    if len(runs) == 1:
        return runs[0]

    def values(*path: str) -> list[float]:
        picked = []
        for run in runs:
            value: Any = run
            for key in path:
                value = value[key]
            picked.append(float(value))
        return picked

    first = runs[0]
    return {
        "encode_ms": {key: float(np.median(values("encode_ms", key))) for key in first["encode_ms"]},
        "map_full": summary(values("map_full", "mean")),
        "per_class": {
            label: {name: float(np.mean(values("per_class", label, name))) for name in AT_K}
            for label in first["per_class"]
        },
        "indexes": {
            index: {
                "at_k": {name: summary(values("indexes", index, "at_k", name, "mean")) for name in AT_K},
                "ann_recall": summary(values("indexes", index, "ann_recall", "mean")),
                "search_ms": {
                    key: float(np.median(values("indexes", index, "search_ms", key)))
                    for key in first["indexes"][index]["search_ms"]
                },
            }
            for index in first["indexes"]
        },
    }


def run(
    splits: dict[int, Split],
    models: list[str] | dict[int, list[str]],
    indexes: list[str],
    k: int,
    model_repository: Path,
    protocol: dict[str, Any],
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """`splits` by seed. `models` is a list, or per seed a list (models trained on that seed's
    split), in which case `labels` names the row each per-seed model is reported under."""
    unknown = sorted(set(indexes) - set(INDEXES))
    if unknown:
        raise ValueError(f"unknown index {unknown}; choose from {', '.join(INDEXES)}")
    per_seed = models if isinstance(models, dict) else {seed: models for seed in splits}
    names = sorted({name for seed_models in per_seed.values() for name in seed_models})
    encoder = Encoder(
        EncoderSettings(
            model_repository=model_repository, models=names, default_model=names[0], metrics_port=-1
        ),
        ServiceMetrics("eval"),
    )
    for model in names:  # fail before hours of work, not after
        encoder.model(model)
    rows: dict[str, list[dict[str, Any]]] = {}
    specs: dict[str, Any] = {}
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
                            encoder, model, data, indexes, k, engine, f"{model}-seed{seed}", cache
                        )
                        rows.setdefault(row, []).append(outcome)
                spec = encoder.model(model).spec
                specs[row] = {"dim": spec.dim, "weights": spec.weights}
        finally:
            engine.close()
            encoder.close()
            redis_server.stop()
    return {
        "protocol": protocol,
        "k": k,
        "seeds": sorted(splits),
        "models": {
            row: {**specs[row], "seeds": len(runs), **combine_seeds(runs)} for row, runs in rows.items()
        },
    }
