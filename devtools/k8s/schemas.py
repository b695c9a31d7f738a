"""`validate_schemas` checks each object against the Kubernetes OpenAPI schemas
(kubernetes-validate, offline) or, for custom resources, against the CRD kept in
deploy/k8s/vendor/, strictly: unknown fields are errors, and so is an object with no schema."""

import importlib
from collections.abc import Iterable
from functools import cache
from typing import Any

from devtools.k8s.manifests import Finding, Manifest, ident
from devtools.k8s.paths import VENDOR
from devtools.k8s.render import yaml

KUBERNETES_VERSION = "1.37.0"
CRD_FILES = {("keda.sh/v1alpha1", "ScaledObject"): VENDOR / "keda-2.20.1.scaledobjects.crd.yaml"}


def _strict(schema: Any) -> Any:
    """A CRD's structural schema with unknown fields refused, as the API server's strict field
    validation does (it prunes them otherwise), except where the CRD preserves them."""
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    if "properties" in schema:
        out["properties"] = {name: _strict(sub) for name, sub in schema["properties"].items()}
        if not schema.get("x-kubernetes-preserve-unknown-fields"):
            out.setdefault("additionalProperties", False)
    for key in ("items", "additionalProperties", "not"):
        if isinstance(schema.get(key), dict):
            out[key] = _strict(schema[key])
    for key in ("allOf", "anyOf", "oneOf"):
        if key in schema:
            out[key] = [_strict(sub) for sub in schema[key]]
    return out


@cache
def crd_schema(api_version: str, kind: str) -> Any:
    """The openAPIV3Schema of a vendored CRD's served version, strict; None if not vendored."""
    path = CRD_FILES.get((api_version, kind))
    if path is None:
        return None
    crd = yaml().safe_load(path.read_text())
    version = api_version.rpartition("/")[2]
    for served in crd["spec"]["versions"]:
        if served["name"] == version:
            return _strict(served["schema"]["openAPIV3Schema"])
    return None


def validate_schemas(docs: Iterable[Manifest], version: str = KUBERNETES_VERSION) -> list[Finding]:
    """Every object against its schema, strictly (unknown fields are errors). An object with no
    schema here, built in or vendored, is itself a finding: nothing goes unchecked silently."""
    validator = importlib.import_module("kubernetes_validate")  # untyped; a dev-only package
    jsonschema = importlib.import_module("jsonschema")
    findings = []
    for doc in docs:
        where = ident(doc)
        schema = crd_schema(doc.get("apiVersion", ""), doc.get("kind", ""))
        try:
            if schema is not None:
                jsonschema.Draft7Validator(schema).validate(doc)
            else:
                validator.validate(doc, version, strict=True)
        except validator.SchemaNotFoundError:
            findings.append(Finding(where, f"no schema for {doc.get('apiVersion')} {doc.get('kind')}"))
        except jsonschema.ValidationError as exc:  # kubernetes-validate's errors derive from it
            path = ".".join(str(part) for part in exc.path)
            findings.append(Finding(where, f"schema: {path}: {exc.message}"))
    return findings
