"""Who may call what: bearer tokens checked against an auth file, and roles per method.

The auth file has one credential a line, `ROLE SHA256HEX` (the SHA-256 of a bearer token, so
the file holds no secret); `#` starts a comment. Roles nest: `search` may search and read
stats, `write` also adds and deletes, `admin` may do everything, the internal services
included. A client certificate verified by the server's client CA (mutual TLS) counts as
`admin`: it is how the internal hops authenticate when they use mTLS instead of a token.
"""

import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

from imsearch.core.errors import PermissionDenied, Unauthenticated

_LINE = re.compile(r"^(search|write|admin)\s+([0-9a-f]{64})$")


class Role(IntEnum):
    SEARCH = 1
    WRITE = 2
    ADMIN = 3

    @property
    def label(self) -> str:
        return self.name.lower()


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Credentials:
    """Token digests and their roles."""

    roles: Mapping[str, Role]

    @classmethod
    def load(cls, path: Path) -> "Credentials":
        roles: dict[str, Role] = {}
        for number, raw in enumerate(path.read_text().splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            match = _LINE.match(line.lower())
            if match is None:
                # Never echo the line: it might be a token pasted by mistake.
                raise ValueError(f"{path}:{number}: expected `ROLE SHA256HEX`, ROLE search, write or admin")
            roles[match[2]] = Role[match[1].upper()]
        if not roles:
            raise ValueError(f"{path}: no credentials in the auth file")
        return cls(roles)

    def with_token(self, token: str, role: Role) -> "Credentials":
        return Credentials({**self.roles, token_digest(token): role})

    def role_of(self, token: str) -> Role | None:
        digest = token_digest(token)
        for known, role in self.roles.items():
            if hmac.compare_digest(known, digest):
                return role
        return None


def bearer_token(metadata: Sequence[tuple[str, str | bytes]] | None) -> str | None:
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            raise Unauthenticated("the authorization header must be `Bearer TOKEN`")
    return None


class Authorizer:
    """Decides each call: the caller's role from its token or client certificate, against the
    role its method needs (`method_roles`, by method name; any other method needs admin)."""

    def __init__(
        self, credentials: Credentials | None, method_roles: Mapping[str, Role], trust_client_certs: bool
    ) -> None:
        self._credentials = credentials
        self._method_roles = method_roles
        self._trust_client_certs = trust_client_certs

    def required_role(self, method: str) -> Role:
        return self._method_roles.get(method, Role.ADMIN)

    def authorize(
        self, method: str, metadata: Sequence[tuple[str, str | bytes]] | None, peer_has_verified_cert: bool
    ) -> Role:
        needed = self.required_role(method)
        token = bearer_token(metadata)
        if token is not None and self._credentials is not None:
            role = self._credentials.role_of(token)
            if role is None:
                raise Unauthenticated("unknown bearer token")
        elif self._trust_client_certs and peer_has_verified_cert:
            role = Role.ADMIN
        else:
            raise Unauthenticated(f"{method} needs credentials: send `authorization: Bearer TOKEN`")
        if role < needed:
            raise PermissionDenied(f"role {role.label} may not call {method} (it needs {needed.label})")
        return role
