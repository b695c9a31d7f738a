"""Where the manifests, the vendored upstream files and the model repository are."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "k8s"
VENDOR = DEPLOY / "vendor"
MODEL_REPOSITORY = ROOT / "model_repository"
