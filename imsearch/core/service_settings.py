"""The settings every service has: where it listens, its metrics endpoint, limits, security.

Each service's settings class derives from `ServiceSettings`, giving its own environment prefix
(IMSEARCH_<SERVICE>_) and its own default ports.
"""

import ipaddress
from collections.abc import Mapping
from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import BaseSettings

from imsearch.core.auth import Authorizer, Credentials, Role
from imsearch.core.server import ServerLimits, ServerSecurity
from imsearch.core.tls import server_credentials


class InsecureBindRefused(ValueError):
    pass


def is_loopback(listen: str) -> bool:
    host = listen.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name or a wildcard such as 0.0.0.0 / [::]
        return False


class ServiceSettings(BaseSettings):
    listen: str = "127.0.0.1:0"
    metrics_port: int = 0  # 0 picks a free port, -1 disables
    metrics_host: str = "127.0.0.1"  # where /metrics listens; 0.0.0.0 for a scraper elsewhere
    # Admission: calls past these limits get RESOURCE_EXHAUSTED at once (clients back off).
    max_concurrent_rpcs: int = 64
    max_concurrent_streams: int = 8
    stream_idle_timeout_s: float = 30.0  # a client stream silent this long is ended
    health_interval_s: float = 2.0  # how often health re-checks the service's dependencies
    # Security. Off loopback a service refuses to start without TLS and credentials (tokens
    # or client certificates) unless `insecure` says so.
    tls_cert: Path | None = None  # PEM certificate chain of this server
    tls_key: Path | None = None
    tls_client_ca: Path | None = None  # mutual TLS: clients need a certificate this CA signed
    auth_file: Path | None = None  # `ROLE SHA256HEX` lines; see imsearch/core/auth.py
    # The token this service's peers use (the gateway's hops to encoder and index); it
    # counts as admin. `imsearch serve` generates one.
    internal_token: SecretStr | None = None
    insecure: bool = False
    reflection: bool = True

    def server_limits(self) -> ServerLimits:
        return ServerLimits(self.max_concurrent_rpcs, self.max_concurrent_streams, self.stream_idle_timeout_s)

    def public_addresses(self) -> list[str]:
        """Every address this service listens on for callers (the off-loopback rule covers each)."""
        return [self.listen]

    def server_security(
        self, method_roles: Mapping[str, Role], extra_admin_token: str | None = None
    ) -> ServerSecurity:
        """TLS and authorisation from these settings; raises InsecureBindRefused off loopback
        without them (unless `insecure`). `extra_admin_token` is one more admin credential
        (the gateway's HTTP front speaks for its certificate-verified callers with it)."""
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ValueError("tls_client_ca (mutual TLS) needs tls_cert and tls_key")
        credentials = Credentials.load(self.auth_file) if self.auth_file else None
        if self.internal_token is not None:
            credentials = (credentials or Credentials({})).with_token(
                self.internal_token.get_secret_value(), Role.ADMIN
            )
        if extra_admin_token is not None:
            credentials = (credentials or Credentials({})).with_token(extra_admin_token, Role.ADMIN)
        mtls = self.tls_client_ca is not None
        unprotected = self.tls_cert is None or (credentials is None and not mtls)
        exposed = [a for a in self.public_addresses() if not is_loopback(a)]
        if unprotected and not self.insecure and exposed:
            raise InsecureBindRefused(
                f"refusing to serve {exposed[0]} (not loopback) without TLS and credentials: "
                "give --tls-cert FILE --tls-key FILE and --auth-file FILE (or --tls-client-ca FILE "
                "for mutual TLS), or --insecure to serve anyway"
            )
        authorizer = Authorizer(credentials, method_roles, mtls) if credentials or mtls else None
        tls = (
            server_credentials(self.tls_cert, self.tls_key, self.tls_client_ca)
            if self.tls_cert and self.tls_key
            else None
        )
        return ServerSecurity(tls, authorizer, self.reflection)
