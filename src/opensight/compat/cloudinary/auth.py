"""Cloudinary credentials: HTTP Basic ``api_key:api_secret``, or a bearer token.

An OpenSight key pair (``opensight keys create NAME --json``) is the api_key/api_secret pair.
The SDK's OAuth2 scheme sends ``Authorization: Bearer <token>``; the OpenSight key itself is
accepted as that token (as on the native API).
"""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass

from .errors import CloudinaryError

_MAX_HEADER = 4096
INVALID = "invalid api_key or api_secret"


@dataclass(frozen=True)
class Credentials:
    key: str
    secret: str | None
    """None for a bearer token (the key alone authenticates, as natively)."""


def unauthorized(message: str) -> CloudinaryError:
    return CloudinaryError(401, "unauthorized", message)


def parse_authorization(header: str | None) -> Credentials:
    """The credentials in an ``Authorization`` header; 401 when absent or malformed."""
    if not header:
        raise unauthorized(
            "send HTTP Basic credentials `api_key:api_secret` "
            "(create a pair with `opensight keys create NAME --json`)"
        )
    if len(header) > _MAX_HEADER:
        raise unauthorized("the Authorization header is too long")
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and value:
        return Credentials(key=value, secret=None)
    if scheme.lower() != "basic" or not value:
        raise unauthorized("use HTTP Basic (`api_key:api_secret`) or a bearer token")
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise unauthorized("the Basic credentials are not valid base64") from None
    key, sep, secret = decoded.partition(":")
    if not sep or not key or not secret:
        raise unauthorized("the Basic credentials must be `api_key:api_secret`")
    return Credentials(key=key, secret=secret)


def check_secret(expected: str, given: str | None) -> None:
    """Constant-time secret check; a bearer token (``given`` None) has no secret to check."""
    if given is not None and not hmac.compare_digest(expected.encode(), given.encode()):
        raise unauthorized(INVALID)
