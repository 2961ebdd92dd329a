"""route_ids that carry their own decision, signed so they cannot be forged.

Feedback can then be attributed to its arm without a lookup (and on any replica that
shares the key), and the route hot path writes nothing before it answers.
Format: ``r2.<base64url(JSON [ms, tenant, policy, bucket, model, input_tokens, nonce])>.<mac>``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os

import orjson

from bandit_router.types import RouteTicket

_PREFIX = "r2"
_MAC_BYTES = 16
KEY_BYTES = 32


class UnknownRoute(ValueError):
    """The route_id was not issued by this router (or was altered)."""


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

    def _mac(self, body: str) -> bytes:
        # Keyed BLAKE2b is a MAC in its own right (no HMAC construction needed), and fast.
        return hashlib.blake2b(body.encode("ascii"), key=self._key[:64],
                               digest_size=_MAC_BYTES).digest()

    def issue(self, ticket: RouteTicket) -> str:
        payload = orjson.dumps([round(ticket.created_at * 1000), ticket.tenant, ticket.policy,
                                ticket.bucket, ticket.model, ticket.input_tokens, ticket.nonce])
        body = f"{_PREFIX}.{_b64(payload)}"
        return f"{body}.{_b64(self._mac(body))}"

    def read(self, route_id: str) -> RouteTicket:
        prefix, _, rest = route_id.partition(".")
        body_b64, _, mac_b64 = rest.rpartition(".")
        if prefix != _PREFIX or not body_b64 or not mac_b64:
            raise UnknownRoute("not a route_id issued by this router")
        body = f"{prefix}.{body_b64}"
        try:
            # Compare the MAC's text, not its decoded bytes: base64 decoding ignores padding,
            # stray characters and the last character's spare bits, so several strings would
            # decode to one MAC, and feedback (deduplicated by route_id) could count twice.
            if not route_id.isascii() or not hmac.compare_digest(mac_b64,
                                                                 _b64(self._mac(body))):
                raise UnknownRoute("unknown route_id (signature does not match)")
            ms, tenant, policy, bucket, model, input_tokens, nonce = orjson.loads(
                _unb64(body_b64))
        except (binascii.Error, ValueError, TypeError) as exc:
            if isinstance(exc, UnknownRoute):
                raise
            raise UnknownRoute("not a route_id issued by this router") from exc
        return RouteTicket(policy=policy, bucket=bucket, model=model, created_at=ms / 1000.0,
                           input_tokens=input_tokens, nonce=nonce, tenant=tenant)


def new_key() -> bytes:
    return os.urandom(KEY_BYTES)


def new_nonce() -> str:
    return os.urandom(6).hex()
