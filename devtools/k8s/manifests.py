"""What the checks pass around: a parsed object (Manifest), a profile, a Finding, and how to
read a workload (its pod spec, pod labels, containers) and name an object in a finding."""

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

Manifest = dict[str, Any]
Profile = Literal["base", "dev", "prod"]

NAME_LABEL = "app.kubernetes.io/name"
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod"}


@dataclass(frozen=True)
class Finding:
    where: str  # Kind/namespace/name, then the part of it
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


def ident(doc: Mapping[str, Any]) -> str:
    meta = doc.get("metadata", {})
    namespace = meta.get("namespace")
    return "/".join(part for part in (doc.get("kind", "?"), namespace, meta.get("name", "?")) if part)


def namespace_of(doc: Mapping[str, Any]) -> str:
    return str(doc.get("metadata", {}).get("namespace", ""))


def pod_spec(doc: Mapping[str, Any]) -> dict[str, Any] | None:
    kind, spec = doc.get("kind"), doc.get("spec", {})
    if kind not in WORKLOAD_KINDS:
        return None
    if kind == "Pod":
        return cast(dict[str, Any], spec)
    if kind == "CronJob":
        spec = spec.get("jobTemplate", {}).get("spec", {})
    return cast(dict[str, Any], spec.get("template", {}).get("spec", {}))


def pod_labels(doc: Mapping[str, Any]) -> dict[str, str]:
    if doc.get("kind") == "Pod":
        return dict(doc.get("metadata", {}).get("labels", {}))
    spec = doc.get("spec", {})
    if doc.get("kind") == "CronJob":
        spec = spec.get("jobTemplate", {}).get("spec", {})
    return dict(spec.get("template", {}).get("metadata", {}).get("labels", {}))


def containers_of(spec: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for key in ("initContainers", "containers"):
        for container in spec.get(key, []) or []:
            yield key, container
