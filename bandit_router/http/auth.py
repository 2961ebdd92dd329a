"""API keys: who is calling, for which tenant, allowed to do what.

Keys come from the config (`[[auth.keys]]`, secrets read from the environment). They are
looked up by their SHA-256 digest and confirmed with a constant-time comparison, and never
logged. With no keys configured the service is open and everyone is the default tenant.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from aiohttp import web

from bandit_router.core.settings import OPERATOR, SCOPES, AuthConfig
from bandit_router.core.types import DEFAULT_TENANT
from bandit_router.http.errors import Forbidden, Unauthorized

PUBLIC_PATHS = frozenset({"/healthz", "/openapi.json", "/dashboard"})  # the page holds no data


@dataclass(frozen=True, slots=True)
class Principal:
    name: str | None  # the key's name; None when the service is open
    tenant: str
    scopes: frozenset[str]

    @property
    def operator(self) -> bool:
        """May change what every tenant shares, and see every tenant."""
        return OPERATOR in self.scopes


OPEN = Principal(None, DEFAULT_TENANT, frozenset(SCOPES))


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


class KeyRing:
    def __init__(self, config: AuthConfig) -> None:
        self.open = config.open
        self._by_digest = {_digest(k.secret): Principal(k.name, k.tenant, k.scopes)
                           for k in config.keys}

    def find(self, presented: str) -> Principal | None:
        digest = _digest(presented)
        for known, principal in self._by_digest.items():
            # every key is compared, in constant time: no early exit to time
            if hmac.compare_digest(known, digest):
                return principal
        return None


def presented_key(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return request.headers.get("X-API-Key") or None


def authenticate(ring: KeyRing, request: web.Request, scope: str | None) -> Principal:
    """The caller, or Unauthorized/Forbidden. `scope` None: any valid key will do."""
    if ring.open or request.path in PUBLIC_PATHS:
        return OPEN
    secret = presented_key(request)
    if secret is None:
        raise Unauthorized("an API key is required: send 'Authorization: Bearer <key>' "
                           "or 'X-API-Key: <key>'")
    principal = ring.find(secret)
    if principal is None:
        raise Unauthorized("invalid API key")
    # an operator may do what a tenant's admin may (for any tenant), never the reverse
    allowed = scope is None or scope in principal.scopes or \
        (scope == "admin" and principal.operator)
    if not allowed:
        what = "change what all tenants share (operator scope)" if scope == OPERATOR else scope
        raise Forbidden(f"this key may not {what}; its scopes: "
                        f"{', '.join(sorted(principal.scopes))}")
    return principal
