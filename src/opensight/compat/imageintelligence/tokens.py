"""Stateless access tokens for ``POST /v2/oauth/token`` (OAuth2 client credentials).

A token is ``ii1.<payload>.<mac>``: the payload (base64url JSON) names the key id, the
issue and expiry times in milliseconds and a random nonce (so every request issues a new
token); the MAC is HMAC-SHA256 over ``ii1.<payload>`` with a key derived from the API
key's secret. Nothing is stored: a token dies when it expires (24 h) or when its key is
revoked (the key row is read on every request), and checking it needs the secret only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

PREFIX = "ii1"
TOKEN_TTL_MS = 24 * 3600 * 1000
MAX_TOKEN_LENGTH = 1024


class InvalidToken(Exception):
    """The token is malformed, forged or expired (the message says which, for logs)."""


@dataclass(frozen=True)
class Claims:
    key_id: str
    issued_at: int
    expires_at: int


@dataclass(frozen=True)
class IssuedToken:
    token: str
    claims: Claims


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, signed: str) -> str:
    # A key of its own (not the raw secret) so no other HMAC scheme's signature is a token.
    key = hmac.new(secret.encode(), b"opensight/imageintelligence/token", hashlib.sha256).digest()
    return _b64(hmac.new(key, signed.encode(), hashlib.sha256).digest())


def issue(
    key_id: str, secret: str, at_ms: int | None = None, ttl_ms: int = TOKEN_TTL_MS
) -> IssuedToken:
    issued = now_ms() if at_ms is None else at_ms
    claims = Claims(key_id=key_id, issued_at=issued, expires_at=issued + ttl_ms)
    payload = _b64(
        json.dumps(
            {
                "k": key_id,
                "iat": claims.issued_at,
                "exp": claims.expires_at,
                "n": secrets.token_hex(8),
            },
            separators=(",", ":"),
        ).encode()
    )
    signed = f"{PREFIX}.{payload}"
    return IssuedToken(token=f"{signed}.{_mac(secret, signed)}", claims=claims)


def read_claims(token: str) -> Claims:
    """The token's claims, unverified (to find whose secret checks it)."""
    if len(token) > MAX_TOKEN_LENGTH:
        raise InvalidToken("token too long")
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != PREFIX:
        raise InvalidToken("not an access token of this server")
    try:
        data = json.loads(_unb64(parts[1]))
        claims = Claims(
            key_id=str(data["k"]), issued_at=int(data["iat"]), expires_at=int(data["exp"])
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidToken(f"malformed token payload: {type(exc).__name__}") from None
    return claims


def verify(token: str, secret: str, at_ms: int | None = None) -> Claims:
    """Check the MAC (constant time) and the expiry; return the claims."""
    claims = read_claims(token)
    signed, _, mac = token.rpartition(".")
    if not hmac.compare_digest(_mac(secret, signed), mac):
        raise InvalidToken("bad token signature")
    if (now_ms() if at_ms is None else at_ms) >= claims.expires_at:
        raise InvalidToken("the access token has expired")
    return claims
