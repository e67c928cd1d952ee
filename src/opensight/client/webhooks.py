"""Checking webhook deliveries on the receiving side.

The server signs each delivery with the secret of the API key that created the job:
``X-OpenSight-Signature: sha256=<hex HMAC-SHA256(secret, f"{timestamp}.{body}")>`` and
``X-OpenSight-Timestamp: <unix seconds>``. Verify against the raw body bytes, before any
JSON parsing, and refuse old timestamps so a captured delivery cannot be replayed.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

import pydantic

from .errors import WebhookVerificationError
from .models import Job

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "compute_signature",
    "construct_event",
    "verify_webhook",
]

SIGNATURE_HEADER = "X-OpenSight-Signature"
TIMESTAMP_HEADER = "X-OpenSight-Timestamp"


def compute_signature(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` exactly as the server computes it."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:  # plain dicts are case-sensitive; HTTP header names are not
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value


def _check(body: bytes | str, headers: Mapping[str, str], secret: str, tolerance: float) -> bytes:
    raw = body.encode() if isinstance(body, str) else bytes(body)
    if not secret:
        raise WebhookVerificationError("no secret given to verify with")
    signature = _header(headers, SIGNATURE_HEADER)
    timestamp = _header(headers, TIMESTAMP_HEADER)
    if not signature or not timestamp:
        raise WebhookVerificationError(f"missing {SIGNATURE_HEADER} or {TIMESTAMP_HEADER} header")
    try:
        age = abs(time.time() - float(timestamp))
    except ValueError:
        raise WebhookVerificationError(f"{TIMESTAMP_HEADER} is not a number") from None
    if age > tolerance:
        raise WebhookVerificationError(
            f"timestamp is {age:.0f} s away from now; the tolerance is {tolerance:g} s"
        )
    if not hmac.compare_digest(compute_signature(secret, timestamp, raw), signature.strip()):
        raise WebhookVerificationError("signature does not match the body")
    return raw


def verify_webhook(
    body: bytes | str, headers: Mapping[str, str], secret: str, tolerance: float = 300
) -> bool:
    """True when the delivery was signed with ``secret`` within ``tolerance`` seconds."""
    try:
        _check(body, headers, secret, tolerance)
    except WebhookVerificationError:
        return False
    return True


def construct_event(
    body: bytes | str, headers: Mapping[str, str], secret: str, tolerance: float = 300
) -> Job:
    """Verify a delivery and parse it: the job, as ``GET /v1/jobs/{id}`` would return it.

    Raises :class:`WebhookVerificationError` when the signature, the timestamp or the
    body does not check out.
    """
    raw = _check(body, headers, secret, tolerance)
    try:
        return Job.model_validate_json(raw)
    except pydantic.ValidationError as exc:
        raise WebhookVerificationError(f"the body is not a job: {exc}") from exc
