"""The evaluation's figures, as PNG files: per-model bars, recall vs QPS, per-class heat map."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no screen here; PNGs only
import matplotlib.pyplot as plt
import numpy as np

from imsearch.core.index_kind import IndexKind
from lab.eval.results import KDTREE, EvalResults

BAR_METRICS = {"precision": "P@k", "ndcg": "nDCG@k", "ap": "AP@k"}
MARKERS = {IndexKind.EXACT: "s", KDTREE: "D", IndexKind.LSH: "^", IndexKind.HNSW: "o"}


def model_bars(results: EvalResults, path: Path, index: str = IndexKind.EXACT) -> None:
    """Grouped bars per model (P@k, nDCG@k, AP@k) with 95% confidence intervals."""
    models = list(results.models)
    figure, axis = plt.subplots(figsize=(max(6.0, 0.9 * len(models) + 2), 4))
    width = 0.8 / len(BAR_METRICS)
    for offset, (metric, label) in enumerate(BAR_METRICS.items()):
        values = [results.models[mo].indexes[index].at_k[metric] for mo in models]
        positions = np.arange(len(models)) + (offset - (len(BAR_METRICS) - 1) / 2) * width
        axis.bar(
            positions,
            [v.mean for v in values],
            width,
            yerr=[v.ci95 for v in values],
            capsize=2,
            label=label.replace("k", str(results.k)),
        )
    axis.set_xticks(np.arange(len(models)), models, rotation=30, ha="right")
    axis.set(ylim=(0, 1), ylabel="score", title=f"{results.protocol.get('dataset', '')}: {index} search")
    axis.legend(loc="upper left", ncols=len(BAR_METRICS), fontsize=8)
    axis.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def recall_vs_qps(results: EvalResults, path: Path) -> None:
    """ANN recall@k (share of the exact top k found) against search queries per second."""
    figure, axis = plt.subplots(figsize=(9.5, 4.2))
    tab10 = plt.get_cmap("tab10")
    palette = [tab10(i) for i in range(10) if i != 7]  # grey is the index key's colour
    for number, (model, result) in enumerate(results.models.items()):
        for index, outcome in result.indexes.items():
            axis.scatter(
                outcome.search_ms.qps,
                outcome.ann_recall.mean,
                color=palette[number % len(palette)],
                marker=MARKERS.get(index, "x"),
                label=model if index == IndexKind.EXACT else None,
            )
    for index, marker in MARKERS.items():
        axis.scatter([], [], color="grey", marker=marker, label=index)
    axis.set(
        xscale="log",
        xlabel="search queries per second (one thread, log scale)",
        ylabel=f"ANN recall@{results.k}",
        title="index speed vs recall",
    )
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def class_heat_map(results: EvalResults, path: Path, metric: str = "precision") -> None:
    """Rows: classes; columns: models; cells: the class's mean P@k over its queries (exact)."""
    models = list(results.models)
    classes = list(next(iter(results.models.values())).per_class)
    grid = np.array([[results.models[mo].per_class[c][metric] for mo in models] for c in classes])
    figure, axis = plt.subplots(
        figsize=(2.5 + 0.7 * len(models), 3.0 + 0.17 * len(classes))
    )  # room for labels
    image = axis.imshow(grid, aspect="auto", cmap="viridis", vmin=0, vmax=1)
    axis.set_xticks(range(len(models)), models, rotation=35, ha="right", fontsize=8)
    axis.set_yticks(range(len(classes)), classes, fontsize=6 if len(classes) > 30 else 8)
    axis.set_title(f"per-class P@{results.k} (exact search)")
    figure.colorbar(image, ax=axis, fraction=0.04)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def write_plots(results: EvalResults, out: Path, prefix: str = "") -> list[Path]:
    paths = [out / f"{prefix}models.png", out / f"{prefix}recall_vs_qps.png", out / f"{prefix}classes.png"]
    model_bars(results, paths[0])
    recall_vs_qps(results, paths[1])
    class_heat_map(results, paths[2])
    return paths
