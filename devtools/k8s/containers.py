"""The rules for every container and init container: non-root (runAsNonRoot and a non-zero
runAsUser), read-only root filesystem, no privilege escalation, all capabilities dropped, cpu and
memory requests and limits, an image with an explicit tag other than `latest` (or a digest);
long-running containers also have readiness and liveness probes."""

from collections.abc import Mapping
from typing import Any

from devtools.k8s.manifests import Finding

RUN_TO_COMPLETION = {"Job", "CronJob"}


def image_problem(image: str) -> str | None:
    if "@sha256:" in image:
        return None
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return f"image {image!r} has no tag (pin one, never rely on latest)"
    if last.split(":", 1)[1] in ("", "latest"):
        return f"image {image!r} uses the latest tag"
    return None


def check_container(
    where: str, kind: str, section: str, pod_context: Mapping[str, Any], container: Mapping[str, Any]
) -> list[Finding]:
    found: list[str] = []
    problem = image_problem(str(container.get("image", "")))
    if problem:
        found.append(problem)
    context = container.get("securityContext", {}) or {}

    def effective(key: str) -> Any:
        return context.get(key, pod_context.get(key))

    if effective("runAsNonRoot") is not True:
        found.append("runAsNonRoot is not true (pod or container securityContext)")
    user = effective("runAsUser")
    if not isinstance(user, int) or user == 0:
        found.append(f"runAsUser must be an explicit non-zero uid, not {user!r}")
    if context.get("readOnlyRootFilesystem") is not True:
        found.append("readOnlyRootFilesystem is not true")
    if context.get("allowPrivilegeEscalation") is not False:
        found.append("allowPrivilegeEscalation is not false")
    if context.get("privileged"):
        found.append("privileged")
    capabilities = context.get("capabilities", {}) or {}
    if "ALL" not in (capabilities.get("drop") or []):
        found.append("capabilities do not drop ALL")
    if capabilities.get("add"):
        found.append(f"capabilities added: {capabilities['add']}")
    resources = container.get("resources", {}) or {}
    for bound in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            if resource not in (resources.get(bound) or {}):
                found.append(f"no {resource} {bound[:-1]}")
    if section == "containers" and kind not in RUN_TO_COMPLETION:
        for probe in ("readinessProbe", "livenessProbe"):
            if not container.get(probe):
                found.append(f"no {probe}")
    return [Finding(f"{where} {section}[{container.get('name')}]", message) for message in found]
