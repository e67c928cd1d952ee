"""VSHMAC, VisualSnoop's request signature, verified exactly as ``visualsnoop==0.2`` signs.

The client sends ``Date`` (RFC 1123) and ``Authorization: VSHMAC <public key>:<sig>``
with ``sig = base64(HMAC-SHA1(secret.strip(), METHOD + "\\n" + path + "\\n" + Date))``,
``path`` being the URL path as it went on the wire (``/api/v1/...``, percent-encoded,
without the query). The string to sign covers neither the body nor the query, and the
Date has one-second resolution: two legitimate calls of the same method on the same
path within one second carry the same signature. See :mod:`.replay` for what that
allows against replays.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime

from ...errors import Forbidden, Unauthorized
from ...services.keys import KeyService, Principal
from .replay import MAX_SKEW_SECONDS, ReplayGuard

SCHEME = "VSHMAC"


@dataclass(frozen=True)
class SignedRequest:
    """What a VSHMAC request claims: its key, signature and the Date it signed."""

    public_key: str
    signature: str
    date: str


def parse(authorization: str | None, date: str | None) -> SignedRequest:
    """The credentials of a request, or 401 saying what is missing."""
    scheme, _, credentials = (authorization or "").strip().partition(" ")
    public_key, _, signature = credentials.strip().partition(":")
    if scheme.upper() != SCHEME or not public_key or not signature:
        raise Unauthorized(
            "send `Authorization: VSHMAC <public key>:<signature>` and a `Date` header "
            "(create a key pair with `opensight keys create NAME --json`)"
        )
    if not date or not date.strip():
        raise Unauthorized("the request has no Date header; VSHMAC signs it")
    return SignedRequest(public_key.strip(), signature.strip(), date.strip())


def check_date(date: str, now: float | None = None) -> None:
    """401 unless ``date`` is an RFC 1123 time within ±15 minutes of ``now``."""
    try:
        when = parsedate_to_datetime(date)
    except (TypeError, ValueError, IndexError):
        raise Unauthorized(f"the Date header {date!r} is not an RFC 1123 date") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    skew = when.timestamp() - (time.time() if now is None else now)
    if abs(skew) > MAX_SKEW_SECONDS:
        raise Unauthorized(
            f"the Date header is {abs(skew) / 60:.0f} minutes "
            f"{'ahead of' if skew > 0 else 'behind'} the server's clock "
            f"(allowed: ±{MAX_SKEW_SECONDS // 60} minutes); check the client's clock"
        )


def sign(secret: str, method: str, path: str, date: str) -> str:
    """The signature the client computes (base64, no newline)."""
    message = "\n".join([method, path, date]).encode("utf-8")
    digest = hmac.new(secret.strip().encode("utf-8"), message, hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def matches(secret: str, method: str, paths: Iterable[str], date: str, signature: str) -> bool:
    """Whether ``signature`` signs this request under one of the candidate ``paths``."""
    given = signature.encode("utf-8", "replace")
    found = False
    for path in dict.fromkeys(paths):  # every candidate, so timing does not tell which
        expected = sign(secret, method.upper(), path, date).encode("ascii")
        found |= hmac.compare_digest(expected, given)
    return found


def authenticate(
    keys: KeyService,
    signed: SignedRequest,
    method: str,
    paths: Iterable[str],
    replay: ReplayGuard | None = None,
    now: float | None = None,
) -> Principal:
    """The caller behind a VSHMAC request (401 wrong credentials or a replay, 403 revoked
    key, 503 replay memory unreachable).

    The signature is checked before anything about the key is revealed: an unknown key
    and a wrong secret read the same.
    """
    check_date(signed.date, now)
    wrong = Unauthorized("the VSHMAC signature does not match (wrong key pair?)")
    principal = keys.cached_principal(signed.public_key)
    if principal is not None:
        secret, revoked = principal.secret, False
    else:
        record = keys.lookup(signed.public_key)
        if record is None:
            raise wrong
        secret, revoked = record.secret, record.revoked_at is not None
    if not matches(secret, method, paths, signed.date, signed.signature):
        raise wrong
    if revoked:
        raise Forbidden("this API key has been revoked")
    # After the signature check: only genuine signatures are recorded (in the database,
    # shared by every API process), so strangers cannot fill the replay memory.
    if replay is not None and not replay.admit(signed.public_key, signed.signature, keys.db):
        raise Unauthorized(
            "this signature was already used; sign every request with the current Date"
        )
    return principal if principal is not None else keys.authenticate(signed.public_key)
