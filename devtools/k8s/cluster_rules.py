"""Rules across the objects of one rendering:

- the addresses of our other services in our containers' settings name Services, and ports of
  them, in the same rendering;
- an encoder on the Triton backend lists its models, and Triton loads each ONNX one;
- at most one autoscaler (HPA or KEDA ScaledObject) per workload, and a ScaledObject's
  Prometheus queries name its own namespace and metrics that our services export;
- profile "prod": NetworkPolicies let only the gateway reach the encoder and the index and only
  the encoder reach Triton (metrics ports aside), a PodDisruptionBudget and spreading for every
  workload with more than one replica, autoscalers aim at real targets.
"""

import re
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any, cast

from devtools.k8s.manifests import (
    NAME_LABEL,
    WORKLOAD_KINDS,
    Finding,
    Manifest,
    Profile,
    containers_of,
    ident,
    namespace_of,
    pod_labels,
    pod_spec,
)
from devtools.k8s.service_env import OurContainer
from imsearch.core.metrics import ServiceMetrics
from services.encoder.settings import EncoderSettings

# Settings that address another of our services: (role, field) -> the Service must exist.
ADDRESS_FIELDS = {("gateway", "encoder_address"), ("gateway", "index_address"), ("encoder", "triton_url")}
# prod: who may reach whom on the non-metrics ports (by app.kubernetes.io/name).
PROD_INGRESS: dict[str, frozenset[str]] = {
    "encoder": frozenset({"gateway"}),
    "index": frozenset({"gateway"}),
    "triton": frozenset({"encoder"}),
}
REPLICATED_KINDS = {"Deployment", "StatefulSet"}

_QUERY_NAMESPACE = re.compile(r"""namespace\s*=\s*"([^"]*)\"""")
_OUR_SERIES = re.compile(r"\b((?:imsearch|grpc_server)_[a-z0-9_]+)\b")


def _selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A LabelSelector against labels; matchExpressions beyond In/Exists count as no match."""
    if selector is None:
        return False
    if any(labels.get(key) != value for key, value in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression.get("key"), expression.get("operator"), expression.get("values")
        if operator == "In" and labels.get(key) not in (values or []):
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator not in ("In", "Exists"):
            return False
    return True


def _replicas(doc: Mapping[str, Any], autoscalers: Sequence[Manifest]) -> int:
    count = int(doc.get("spec", {}).get("replicas", 1))
    name, namespace = doc["metadata"]["name"], namespace_of(doc)
    for scaler in autoscalers:
        spec = scaler.get("spec", {})
        if spec.get("scaleTargetRef", {}).get("name") == name and namespace_of(scaler) == namespace:
            count = max(count, int(spec.get("minReplicas", spec.get("minReplicaCount", 1))))
    return count


@cache
def exported_series() -> frozenset[str]:
    """Every series name our services can export (histograms as _bucket, _sum and _count)."""
    names = set()
    for family in ServiceMetrics("any").registry.collect():
        if family.type == "histogram":
            names |= {f"{family.name}_bucket", f"{family.name}_sum", f"{family.name}_count"}
        elif family.type == "counter":
            names |= {f"{family.name}_total", f"{family.name}_created"}
        else:
            names.add(family.name)
    return frozenset(names)


def unknown_series(promql: str) -> list[str]:
    """Names in a query that look like ours (imsearch_*, grpc_server_*) but are not exported."""
    return sorted({name for name in _OUR_SERIES.findall(promql) if name not in exported_series()})


def check_autoscalers(docs: Sequence[Manifest], profile: Profile) -> list[Finding]:
    findings = []
    scalers = [d for d in docs if d.get("kind") in ("HorizontalPodAutoscaler", "ScaledObject")]
    targets: dict[tuple[str, str, str], list[str]] = {}
    workloads = {
        (namespace_of(d), d["kind"], d["metadata"]["name"]) for d in docs if d.get("kind") in WORKLOAD_KINDS
    }
    for scaler in scalers:
        ref = scaler.get("spec", {}).get("scaleTargetRef", {})
        key = (namespace_of(scaler), str(ref.get("kind", "Deployment")), str(ref.get("name")))
        targets.setdefault(key, []).append(ident(scaler))
        if profile == "prod" and key not in workloads:
            findings.append(
                Finding(ident(scaler), f"scales {key[1]}/{key[2]}, which is not in the rendering")
            )
    for (_, kind, name), owners in targets.items():
        if len(owners) > 1:
            findings.append(Finding(f"{kind}/{name}", f"has {len(owners)} autoscalers: {', '.join(owners)}"))
    for scaler in scalers:
        if scaler.get("kind") != "ScaledObject":
            continue
        for trigger in scaler.get("spec", {}).get("triggers", []):
            if trigger.get("type") != "prometheus":
                continue
            query = str(trigger.get("metadata", {}).get("query", ""))
            for namespace in set(_QUERY_NAMESPACE.findall(query)):
                if namespace != namespace_of(scaler):
                    findings.append(
                        Finding(ident(scaler), f"query reads namespace {namespace!r}, not its own")
                    )
            for name in unknown_series(query):
                findings.append(Finding(ident(scaler), f"query reads {name}, which no service exports"))
    return findings


def _target_of(address: str) -> tuple[str, int] | None:
    """'dns:///encoder:50051' or 'index:50052' -> (host, port); None for anything else."""
    host, _, port = address.removeprefix("dns:///").rpartition(":")
    return (host, int(port)) if host and port.isdigit() else None


def check_references(docs: Sequence[Manifest], ours: Sequence[OurContainer]) -> list[Finding]:
    services = {
        (namespace_of(d), d["metadata"]["name"]): {
            int(p.get("port", 0)) for p in d.get("spec", {}).get("ports", [])
        }
        for d in docs
        if d.get("kind") == "Service"
    }
    findings = []
    for container in ours:
        if container.settings is None:
            continue
        for role, field in ADDRESS_FIELDS:
            if role != container.role:
                continue
            if field == "triton_url" and cast(EncoderSettings, container.settings).backend != "triton":
                continue
            target = _target_of(str(getattr(container.settings, field)))
            if target is None or "." in target[0] or target[0] in ("localhost", "127.0.0.1"):
                continue  # another namespace or an outside name: not ours to resolve
            ports = services.get((container.namespace, target[0]))
            if ports is None:
                findings.append(
                    Finding(container.where, f"{field} names Service {target[0]!r}, not rendered")
                )
            elif target[1] not in ports:
                findings.append(
                    Finding(container.where, f"{field}: Service {target[0]} has no port {target[1]}")
                )
    return findings


def _triton_loads(docs: Sequence[Manifest]) -> set[str] | None:
    loads: set[str] | None = None
    for doc in docs:
        spec = pod_spec(doc) or {}
        for _, container in containers_of(spec):
            if "tritonserver" in str(container.get("image", "")):
                words = [*container.get("command", []), *container.get("args", [])]
                loads = (loads or set()) | {
                    w.split("=", 1)[1] for w in words if w.startswith("--load-model=")
                }
    return loads


def check_triton_models(
    docs: Sequence[Manifest], ours: Sequence[OurContainer], repository: Path
) -> list[Finding]:
    findings = []
    loaded = _triton_loads(docs)
    for container in ours:
        settings = container.settings
        if container.role != "encoder" or settings is None:
            continue
        encoder = cast(EncoderSettings, settings)
        if encoder.backend != "triton":
            continue
        if not encoder.models:
            findings.append(Finding(container.where, "Triton backend without IMSEARCH_ENCODER_MODELS"))
        if loaded is None:
            findings.append(Finding(container.where, "Triton backend, but no Triton in the rendering"))
            continue
        for model in encoder.models:
            if not (repository / model / "imsearch.json").is_file():
                findings.append(Finding(container.where, f"model {model!r} is not in {repository}"))
            elif (repository / model / "config.pbtxt").is_file() and model not in loaded:
                findings.append(Finding(container.where, f"model {model!r} is not loaded by Triton"))
    return findings


def _peer_sources(peer: Mapping[str, Any], workloads: Mapping[str, Mapping[str, str]]) -> set[str] | None:
    """The rendered workloads a NetworkPolicy peer admits; None for peers beyond them (ipBlock,
    other namespaces), which count as 'anyone'."""
    if "ipBlock" in peer or "namespaceSelector" in peer or "podSelector" not in peer:
        return None
    return {name for name, labels in workloads.items() if _selects(peer["podSelector"], labels)}


def check_network_policies(docs: Sequence[Manifest]) -> list[Finding]:
    findings = []
    workloads = {
        pod_labels(d).get(NAME_LABEL, ""): pod_labels(d) for d in docs if d.get("kind") in WORKLOAD_KINDS
    }
    metrics_ports = {
        pod_labels(d).get(NAME_LABEL, ""): {
            p.get("containerPort")
            for _, c in containers_of(pod_spec(d) or {})
            for p in c.get("ports", [])
            if p.get("name") == "metrics"
        }
        for d in docs
        if d.get("kind") in WORKLOAD_KINDS
    }
    policies = [d for d in docs if d.get("kind") == "NetworkPolicy"]
    for target, allowed in PROD_INGRESS.items():
        labels = workloads.get(target)
        if labels is None:
            findings.append(Finding(f"workload {target}", "missing from the prod rendering"))
            continue
        selecting = [
            p
            for p in policies
            if _selects(p["spec"].get("podSelector"), labels)
            and "Ingress" in (p["spec"].get("policyTypes") or ["Ingress"])
        ]
        if not selecting:
            findings.append(Finding(f"workload {target}", "no NetworkPolicy selects it: anyone may connect"))
        for policy in selecting:
            for rule in policy["spec"].get("ingress", []) or []:
                ports = {p.get("port") for p in rule.get("ports", []) or []}
                if ports and ports <= metrics_ports.get(target, set()):
                    continue  # the scrape port: Prometheus lives in another namespace
                peers = rule.get("from") or []
                sources = [_peer_sources(peer, workloads) for peer in peers]
                if not peers or any(s is None or not s or not s <= allowed for s in sources):
                    reached = "all ports" if not ports else f"port {sorted(ports, key=str)}"
                    findings.append(
                        Finding(
                            ident(policy),
                            f"lets more than {', '.join(sorted(allowed))} reach {target} on {reached}",
                        )
                    )
    return findings


def check_replicated(docs: Sequence[Manifest]) -> list[Finding]:
    findings = []
    autoscalers = [d for d in docs if d.get("kind") in ("HorizontalPodAutoscaler", "ScaledObject")]
    budgets = [d for d in docs if d.get("kind") == "PodDisruptionBudget"]
    for doc in docs:
        if doc.get("kind") not in REPLICATED_KINDS or _replicas(doc, autoscalers) <= 1:
            continue
        labels = pod_labels(doc)
        if not any(
            namespace_of(b) == namespace_of(doc) and _selects(b["spec"].get("selector"), labels)
            for b in budgets
        ):
            findings.append(Finding(ident(doc), "more than one replica and no PodDisruptionBudget"))
        if not (pod_spec(doc) or {}).get("topologySpreadConstraints"):
            findings.append(Finding(ident(doc), "more than one replica and no topologySpreadConstraints"))
    return findings
