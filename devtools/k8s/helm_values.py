"""The Helm values files (deploy/k8s/overlays/prod/helm) against the charts' own values.yaml,
vendored in deploy/k8s/vendor/, and the Prometheus Adapter's custom metrics (from its values)
beside the metrics the rendered HPAs read."""

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from devtools.k8s.manifests import Manifest


def _paths(values: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    if isinstance(values, dict):
        for key, value in values.items():
            yield (*prefix, str(key))
            yield from _paths(value, (*prefix, str(key)))


def unknown_values(
    ours: Mapping[str, Any], upstream: Mapping[str, Any], free_form: Iterable[str]
) -> list[str]:
    """Keys of our values file that the chart's own values.yaml does not have. A key below an
    empty map or a list there (user content, e.g. resources: {}), or below a `free_form` path
    (maps the chart passes through whole, e.g. Qdrant's config), is accepted."""
    free = [tuple(path.split(".")) for path in free_form]
    unknown = []
    for path in _paths(ours):
        if any(path[: len(f)] == f for f in free):
            continue
        node: Any = upstream
        for depth, key in enumerate(path):
            if isinstance(node, dict) and key in node:
                node = node[key]
                continue
            if not (depth > 0 and (node == {} or isinstance(node, list))):
                unknown.append(".".join(path))
            break
    return unknown


def adapter_metrics(values: Mapping[str, Any]) -> dict[str, str]:
    """The Prometheus Adapter's custom metrics from its chart values: API name -> its query."""
    rules = (values.get("rules") or {}).get("custom") or []
    return {str(rule["name"]["as"]): str(rule["metricsQuery"]) for rule in rules}


def hpa_custom_metrics(docs: Iterable[Manifest]) -> set[str]:
    """Names of the Pods/Object/External metrics that rendered HPAs read."""
    names = set()
    for doc in docs:
        if doc.get("kind") != "HorizontalPodAutoscaler":
            continue
        for metric in doc.get("spec", {}).get("metrics", []):
            kind = str(metric.get("type", ""))
            source = metric.get(kind[:1].lower() + kind[1:], {})  # Pods -> pods, External -> external
            if isinstance(source, dict) and "metric" in source:
                names.add(str(source["metric"]["name"]))
    return names
