"""`check`: the policy on one rendering. Every container's rules (containers), our own
containers' environment and settings (service_env), the rules across objects (cluster_rules),
and in profile "prod" TLS on every one of our services."""

from collections.abc import Sequence
from pathlib import Path

from devtools.k8s.cluster_rules import (
    check_autoscalers,
    check_network_policies,
    check_references,
    check_replicated,
    check_triton_models,
)
from devtools.k8s.containers import check_container
from devtools.k8s.manifests import Finding, Manifest, Profile, containers_of, ident, namespace_of, pod_spec
from devtools.k8s.paths import MODEL_REPOSITORY
from devtools.k8s.service_env import OurContainer, check_our_container, role_of


def check(
    docs: Sequence[Manifest], profile: Profile = "base", repository: Path = MODEL_REPOSITORY
) -> list[Finding]:
    """Every finding of the policy on one rendering (an empty list: it passes)."""
    findings: list[Finding] = []
    ours: list[OurContainer] = []
    for doc in docs:
        spec = pod_spec(doc)
        if spec is None:
            continue
        where = ident(doc)
        pod_context = spec.get("securityContext", {}) or {}
        for section, container in containers_of(spec):
            findings += check_container(where, doc["kind"], section, pod_context, container)
            role = role_of(str(container.get("image", "")))
            if role is not None and section == "containers":
                container_where = f"{where} {section}[{container.get('name')}]"
                more, our = check_our_container(container_where, namespace_of(doc), role, container)
                findings += more
                ours.append(our)
    findings += check_autoscalers(docs, profile)
    findings += check_references(docs, ours)
    findings += check_triton_models(docs, ours, repository)
    if profile == "prod":
        findings += check_network_policies(docs)
        findings += check_replicated(docs)
        for our in ours:
            settings = our.settings
            if settings is not None and (settings.insecure or settings.tls_cert is None):
                findings.append(Finding(our.where, "prod serves plaintext (insecure or no tls_cert)"))
    return findings
