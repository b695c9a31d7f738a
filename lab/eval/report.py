"""The evaluation's files: results.json, a markdown report, and its PNG figures."""

from pathlib import Path

import numpy as np

from lab.eval.plots import write_plots
from lab.eval.results import METRICS, Estimate, EvalResults, ModelResult

HEADERS = {"precision": "P", "recall": "R", "hit_rate": "hit", "ap": "AP", "ndcg": "nDCG"}


def _cell(value: Estimate) -> str:
    return f"{value.mean:.3f} ± {value.ci95:.3f}"


def results_table(results: EvalResults) -> list[str]:
    k = results.k
    head = " | ".join(f"{HEADERS[n]}@{k}" for n in METRICS)
    times = "encode p50 / p95 ms | search p50 / p95 ms | search QPS"
    lines = [
        f"| model | index | {head} | full mAP | ANN recall@{k} | {times} |",
        "|---|---|" + "---|" * (len(METRICS) + 5),
    ]
    for model, result in results.models.items():
        for index, outcome in result.indexes.items():
            cells = " | ".join(_cell(outcome.at_k[n]) for n in METRICS)
            lines.append(
                f"| {model} | {index} | {cells} | {result.map_full.mean:.3f} | "
                f"{outcome.ann_recall.mean:.3f} | "
                f"{result.encode_ms.p50:.1f} / {result.encode_ms.p95:.1f} | "
                f"{outcome.search_ms.p50:.2f} / {outcome.search_ms.p95:.2f} | "
                f"{outcome.search_ms.qps:.0f} |"
            )
    return lines


def parent_scores(result: ModelResult, parents: dict[str, str]) -> dict[str, dict[str, float]]:
    """Mean over each parent's classes of the per-class means (exact search)."""
    grouped: dict[str, list[dict[str, float]]] = {}
    for label, scores in result.per_class.items():
        grouped.setdefault(parents[label], []).append(scores)
    return {
        parent: {"classes": len(rows), **{n: float(np.mean([r[n] for r in rows])) for n in METRICS}}
        for parent, rows in sorted(grouped.items())
    }


def parent_tables(results: EvalResults, parents: dict[str, str]) -> list[str]:
    k = results.k
    models = list(results.models)
    lines: list[str] = []
    for metric in ("precision", "recall", "ndcg"):
        lines += [
            "",
            f"**{HEADERS[metric]}@{k} per parent class** (exact search; mean over the parent's classes)",
            "",
            "| parent (classes) | " + " | ".join(models) + " |",
            "|---|" + "---|" * len(models),
        ]
        scores = {mo: parent_scores(results.models[mo], parents) for mo in models}
        for parent, first in scores[models[0]].items():
            row = " | ".join(f"{scores[mo][parent][metric]:.3f}" for mo in models)
            lines.append(f"| {parent} ({first['classes']:.0f}) | {row} |")
    return lines


def protocol_lines(results: EvalResults) -> list[str]:
    k = results.k
    seeds = results.seeds
    spread = "over the seeds' means" if len(seeds) > 1 else "over queries"
    return [
        "Protocol: " + ", ".join(f"{key} = {value}" for key, value in results.protocol.items()),
        "",
        f"Means with 95% confidence half-widths {spread} (seeds {', '.join(map(str, seeds))}). "
        f"Recall@{k} is relevant retrieved over relevant in the gallery; hit rate@{k} is whether any "
        f"of the top {k} is relevant. Full mAP ranks the whole gallery. ANN recall@{k} is the share "
        f"of the exact top {k} an index returns. Times: one query at a time, on this machine's CPU.",
    ]


def write(results: EvalResults, out: Path, parents: dict[str, str] | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(results.to_json())
    figures = write_plots(results, out)
    lines = ["# Retrieval evaluation", "", *protocol_lines(results), "", *results_table(results)]
    if parents:
        lines += parent_tables(results, parents)
    lines += ["", *(f"![{p.stem}]({p.name})" for p in figures)]
    (out / "report.md").write_text("\n".join(lines) + "\n")
