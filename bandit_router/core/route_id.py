"""route_ids that carry their own decision, signed so they cannot be forged.

Feedback can then be attributed to its arm without a lookup (and on any replica that
shares the key), and the route hot path writes nothing before it answers.

Format: ``r3.<base64url(JSON [ms, policy, bucket, model, input_tokens, nonce(, 1)])>.<mac>``
(the trailing 1 marks a call the gateway makes and measures itself).
The tenant is not written in it: the MAC covers it, and the reader supplies it (the tenant
of the caller's key), so a route_id names nobody, and another tenant's route_id fails to
verify exactly as a forged one does. ``r2`` route_ids (which carried the tenant in clear)
are still read until they expire.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os

import orjson

from bandit_router.core.types import RouteTicket

_PREFIX = "r3"
_LEGACY = "r2"  # [ms, tenant, policy, bucket, model, input_tokens, nonce], tenant unbound
_MAC_BYTES = 16
KEY_BYTES = 32
UNKNOWN = "unknown route_id: not issued to this tenant by this router, or altered"


class UnknownRoute(ValueError):
    """The route_id was not issued to this tenant by this router (or was altered)."""


_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).translate(_URLSAFE).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class RouteIds:
    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("route_id key must be at least 16 bytes")
        self._key = key

    def _mac(self, body: str, tenant: str | None) -> str:
        # Keyed BLAKE2b is a MAC in its own right (no HMAC construction needed), and fast.
        # The tenant is hashed after a NUL, which no route_id body contains.
        data = body.encode("ascii") if tenant is None else \
            body.encode("ascii") + b"\0" + tenant.encode("utf-8", "surrogatepass")
        return _b64(hashlib.blake2b(data, key=self._key[:64], digest_size=_MAC_BYTES).digest())

    def issue(self, ticket: RouteTicket) -> str:
        fields = [round(ticket.created_at * 1000), ticket.policy, ticket.bucket, ticket.model,
                  ticket.input_tokens, ticket.nonce]
        payload = orjson.dumps([*fields, 1] if ticket.measured else fields)
        body = f"{_PREFIX}.{_b64(payload)}"
        return f"{body}.{self._mac(body, ticket.tenant)}"

    def read(self, route_id: str, tenant: str) -> RouteTicket:
        """The ticket of a route_id issued to `tenant`; UnknownRoute (always the same
        message) for anything else."""
        prefix, _, rest = route_id.partition(".")
        body_b64, _, mac_b64 = rest.rpartition(".")
        if prefix not in (_PREFIX, _LEGACY) or not body_b64 or not mac_b64 or \
                not route_id.isascii():
            raise UnknownRoute(UNKNOWN)
        body = f"{prefix}.{body_b64}"
        # Compare the MAC's text, not its decoded bytes: base64 decoding ignores padding,
        # stray characters and the last character's spare bits, so several strings would
        # decode to one MAC, and feedback (deduplicated by route_id) could count twice.
        bound = tenant if prefix == _PREFIX else None
        if not hmac.compare_digest(mac_b64, self._mac(body, bound)):
            raise UnknownRoute(UNKNOWN)
        try:
            fields = orjson.loads(_unb64(body_b64))
            measured = False
            if prefix == _LEGACY:
                ms, owner, policy, bucket, model, input_tokens, nonce = fields
            elif len(fields) == 7 and fields[6] == 1:
                (ms, policy, bucket, model, input_tokens, nonce, _), owner = fields, tenant
                measured = True
            else:
                (ms, policy, bucket, model, input_tokens, nonce), owner = fields, tenant
        except (binascii.Error, ValueError, TypeError) as exc:
            raise UnknownRoute(UNKNOWN) from exc
        if owner != tenant:
            raise UnknownRoute(UNKNOWN)
        return RouteTicket(policy=policy, bucket=bucket, model=model, created_at=ms / 1000.0,
                           input_tokens=input_tokens, nonce=nonce, tenant=tenant,
                           measured=measured)


def new_key() -> bytes:
    return os.urandom(KEY_BYTES)


def new_nonce() -> str:
    return os.urandom(6).hex()
