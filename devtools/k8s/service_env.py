"""Our own containers (images imsearch-<role>): every environment variable is one the service
reads (IMSEARCH_<ROLE>_<field> of its pydantic settings class), its values pass those settings'
validation, `$(VAR)` references point at variables defined before them, and a public bind has
TLS and credentials or says `insecure`. The settings read here feed the rules across objects
(cluster_rules) through OurContainer."""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from pydantic import SecretStr, ValidationError
from pydantic_settings import BaseSettings, EnvSettingsSource
from pydantic_settings.sources.utils import parse_env_vars

from devtools.k8s.manifests import Finding
from imsearch.core.service_settings import ServiceSettings, is_loopback
from services.encoder.settings import EncoderSettings
from services.gateway.settings import GatewaySettings
from services.index.settings import IndexSettings

SETTINGS: dict[str, type[ServiceSettings]] = {
    "encoder": EncoderSettings,
    "gateway": GatewaySettings,
    "index": IndexSettings,
}
# Variables our containers may set beyond their settings, with the reader that wants them.
EXTRA_ENV: dict[str, dict[str, str]] = {
    "index": {"SSL_CERT_FILE": "httpx, qdrant-client's REST transport: the CA of Qdrant's certificate"},
}
COMMON_ENV = {"IMSEARCH_CONFIG"}  # the TOML settings file, read by every service

_ROLE_IMAGE = re.compile(r"(?:^|/)imsearch-(gateway|encoder|index)(?::|@|$)")
_VAR_REF = re.compile(r"(?<!\$)\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def role_of(image: str) -> str | None:
    match = _ROLE_IMAGE.search(image)
    return match[1] if match else None


class _GivenEnvironment(EnvSettingsSource):
    """pydantic-settings' own environment source (prefixes, JSON for lists), fed a mapping
    instead of os.environ, so a check never depends on the shell it runs in."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]) -> None:
        self._given = dict(env)
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(
            self._given, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str
        )


def allowed_env(role: str) -> set[str]:
    cls = SETTINGS[role]
    prefix = str(cls.model_config.get("env_prefix", ""))
    return (
        {f"{prefix}{name}".upper() for name in cls.model_fields} | COMMON_ENV | set(EXTRA_ENV.get(role, {}))
    )


def settings_from_env(role: str, env: Mapping[str, str]) -> ServiceSettings:
    """The role's settings from these variables alone (raises pydantic's ValidationError).
    Validated by the class's own validator: BaseSettings.__init__ would merge os.environ."""
    cls = SETTINGS[role]
    values = _GivenEnvironment(cls, env)()
    return cast(ServiceSettings, cls.__pydantic_validator__.validate_python(values))


def _placeholder(cls: type[ServiceSettings], env_name: str) -> str | None:
    """What stands in for a variable set from a Secret or the downward API: a secret field
    gets a dummy secret, anything else is left to its default (its value is unknown here)."""
    prefix = str(cls.model_config.get("env_prefix", "")).upper()
    field = cls.model_fields.get(env_name.removeprefix(prefix).lower())
    if field is not None and SecretStr in getattr(field.annotation, "__args__", (field.annotation,)):
        return "placeholder-secret"
    return None


def bind_problem(settings: ServiceSettings) -> str | None:
    """ServiceSettings.server_security's refusal, without reading the certificate files."""
    if settings.insecure or is_loopback(settings.listen):
        return None
    if settings.tls_cert is None or settings.tls_key is None:
        return f"listens on {settings.listen} without TLS (set tls_cert/tls_key, or insecure)"
    if settings.auth_file is None and settings.internal_token is None and settings.tls_client_ca is None:
        return (
            f"listens on {settings.listen} without credentials (auth_file, internal_token or tls_client_ca)"
        )
    return None


@dataclass(frozen=True)
class OurContainer:
    where: str
    role: str
    namespace: str
    settings: ServiceSettings | None  # None when they did not validate


def check_our_container(
    where: str, namespace: str, role: str, container: Mapping[str, Any]
) -> tuple[list[Finding], OurContainer]:
    cls, allowed = SETTINGS[role], allowed_env(role)
    findings: list[Finding] = []
    defined: list[str] = []
    values: dict[str, str] = {}
    entries = container.get("env", []) or []
    referenced = {ref for entry in entries for ref in _VAR_REF.findall(str(entry.get("value", "")))}
    for entry in entries:
        name = str(entry.get("name"))
        if name not in allowed and name not in referenced:
            findings.append(Finding(where, f"env {name} is not a setting of the {role} (typo?)"))
        value = entry.get("value")
        if value is not None:
            for ref in _VAR_REF.findall(str(value)):
                if ref not in defined:
                    findings.append(Finding(where, f"env {name} uses $({ref}) before it is defined"))
            # A reference expands at run time: a stand-in keeps the value's shape.
            values[name] = _VAR_REF.sub("placeholder", str(value))
        elif "valueFrom" in entry:
            stand_in = _placeholder(cls, name)
            if stand_in is not None:
                values[name] = stand_in
        defined.append(name)
    if container.get("envFrom"):
        findings.append(Finding(where, "envFrom hides which variables are set: list them under env"))
    try:
        settings: ServiceSettings | None = settings_from_env(role, values)
    except ValidationError as exc:
        settings = None
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"]) or "(settings)"
            findings.append(Finding(where, f"{role} setting {field}: {error['msg']}"))
    if settings is not None:
        problem = bind_problem(settings)
        if problem:
            findings.append(Finding(where, problem))
        # onnxruntime's 0 means one thread per core of the node, whatever the pod's CPU limit.
        encoder = settings if isinstance(settings, EncoderSettings) else None
        if encoder and encoder.backend == "onnxruntime" and encoder.intra_op_threads == 0:
            findings.append(Finding(where, "intra_op_threads 0 oversubscribes: set it to the CPU limit"))
    return findings, OurContainer(where, role, namespace, settings)
