"""`imsearch eval`: encode with the service's encoder code, search with its index code, score.

For each model: the gallery is encoded and stored in Qdrant (HNSW, exact) and the Redis LSH
store through the index service's own engine, plus a KD-tree (scikit-learn) over the same
L2-normalised vectors; each held-out query is encoded on its own (timed) and searched in every
index (timed). Full mAP ranks the whole gallery exactly, so it is one figure per model.
"""

import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import redis
from sklearn.neighbors import KDTree

from imsearch.cli.embedded_redis import EmbeddedRedis
from imsearch.common.metrics import ServiceMetrics
from imsearch.eval import metrics as m
from imsearch.eval.protocol import Split
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


def encode_all(encoder: Encoder, model: str, paths: list[Path], batch: int = 32) -> np.ndarray:
    parts = [
        encoder.encode(model, [p.read_bytes() for p in paths[i : i + batch]])[1]
        for i in range(0, len(paths), batch)
    ]
    return np.concatenate(parts)


def evaluate_model(
    encoder: Encoder, model: str, data: Split, indexes: list[str], k: int, engine: IndexEngine
) -> dict[str, Any]:
    labels = np.asarray([item.label for item in data.gallery])
    gallery = encode_all(encoder, model, [item.path for item in data.gallery])
    engine.ensure_collection(model, gallery.shape[1])
    ids = [str(i) for i in range(len(gallery))]
    for start in range(0, len(ids), 512):
        engine.upsert(model, [(ids[i], gallery[i], {}) for i in range(start, min(start + 512, len(ids)))])
    engine.wait_for_optimize()
    if "hnsw" in indexes:
        engine.optimize(model)
    tree = KDTree(gallery) if "kdtree" in indexes else None

    def search(index: str, query: np.ndarray) -> list[int]:
        if index == "kdtree":
            assert tree is not None
            return [int(i) for i in tree.query(query[None, :], k=k, return_distance=False)[0]]
        return [int(h.id) for h in engine.search(model, query, k, index, None, False).hits]

    scores: dict[str, dict[str, list[float]]] = {i: {name: [] for name in AT_K} for i in indexes}
    search_seconds: dict[str, list[float]] = {i: [] for i in indexes}
    encode_seconds, full_ap = [], []
    for item in data.queries:
        began = time.perf_counter()
        query = encoder.encode(model, [item.path.read_bytes()])[1][0]
        encode_seconds.append(time.perf_counter() - began)
        relevant = data.relevant_in_gallery(item.label)
        full_ap.append(
            m.average_precision(list(labels[np.argsort(-(gallery @ query))] == item.label), relevant)
        )
        for index in indexes:
            began = time.perf_counter()
            found = search(index, query)
            search_seconds[index].append(time.perf_counter() - began)
            ranked = [bool(labels[i] == item.label) for i in found]
            for name, metric in AT_K.items():
                scores[index][name].append(metric(ranked, relevant, k))
    spec = encoder.model(model).spec
    return {
        "dim": spec.dim,
        "weights": spec.weights,
        "encode_ms": timing(encode_seconds),
        "map_full": summary(full_ap),
        "indexes": {
            index: {
                "at_k": {name: summary(values) for name, values in scores[index].items()},
                "search_ms": timing(search_seconds[index]),
            }
            for index in indexes
        },
    }


def run(
    data: Split,
    models: list[str],
    indexes: list[str],
    k: int,
    model_repository: Path,
    protocol: dict[str, Any],
) -> dict[str, Any]:
    unknown = sorted(set(indexes) - set(INDEXES))
    if unknown:
        raise ValueError(f"unknown index {unknown}; choose from {', '.join(INDEXES)}")
    encoder = Encoder(
        EncoderSettings(
            model_repository=model_repository, models=models, default_model=models[0], metrics_port=-1
        ),
        ServiceMetrics("eval"),
    )
    for model in models:  # fail before hours of work, not after
        encoder.model(model)
    results: dict[str, Any] = {"protocol": protocol, "k": k, "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        redis_server = EmbeddedRedis(Path(tmp) / "redis")
        lsh = RedisLshStore(redis.Redis.from_url(redis_server.url), LshParams())
        engine = IndexEngine(QdrantEdgeStore(Path(tmp) / "qdrant"), lsh, ServiceMetrics("eval"))
        try:
            for model in models:
                results["models"][model] = evaluate_model(encoder, model, data, indexes, k, engine)
        finally:
            engine.close()
            encoder.close()
            redis_server.stop()
    return results


def write(results: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    k = results["k"]
    lines = [
        "# Retrieval evaluation",
        "",
        "Protocol: " + ", ".join(f"{key} = {value}" for key, value in results["protocol"].items()),
        "",
        f"Means over queries with 95% confidence half-widths. Recall@{k} is relevant retrieved over "
        f"relevant in the gallery; hit rate@{k} is whether any of the top {k} is relevant. Full mAP "
        "ranks the whole gallery.",
        "",
        f"| model | index | P@{k} | R@{k} | hit@{k} | AP@{k} | nDCG@{k} | full mAP | encode p50 ms "
        "| search p50 ms |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for model, result in results["models"].items():
        for index, outcome in result["indexes"].items():
            cells = [f"{outcome['at_k'][n]['mean']:.3f} ± {outcome['at_k'][n]['ci95']:.3f}" for n in AT_K]
            lines.append(
                f"| {model} | {index} | {' | '.join(cells)} | {result['map_full']['mean']:.3f} | "
                f"{result['encode_ms']['p50']:.1f} | {outcome['search_ms']['p50']:.2f} |"
            )
    (out / "report.md").write_text("\n".join(lines) + "\n")
