"""Signed, expiring URLs: let a caller fetch a resource without credentials, for a while.

A signature is HMAC-SHA256 over the resource name and the expiry time, with a
server key: the setting ``url_signing_key`` (``OPENSIGHT_URL_SIGNING_KEY``)
when given, else a random key made once and kept in the database, so every
API process of a scale-out deployment signs and verifies alike.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

from sqlalchemy.exc import IntegrityError

from ..config import Settings
from ..jobs.model import utcnow
from ..storage.db import Database
from ..storage.tables import ServerSecret

SECRET_NAME = "url_signing_key"


class UrlSigner:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def signature(self, resource: str, expires: int) -> str:
        message = f"{resource}\n{expires}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def sign(self, resource: str, ttl_seconds: int, now: float | None = None) -> dict[str, str]:
        """Query parameters (``expires``, ``signature``) granting ``resource`` for a while.

        The expiry is rounded up to a whole ``ttl_seconds / 4`` step so that polling the
        same job returns the same URL for a while (caches and clients can reuse it).
        """
        now = time.time() if now is None else now
        step = max(1, ttl_seconds // 4)
        expires = (int(now + ttl_seconds) // step + 1) * step
        return {"expires": str(expires), "signature": self.signature(resource, expires)}

    def verify(
        self, resource: str, expires: str | None, signature: str | None, now: float | None = None
    ) -> bool:
        """True when ``signature`` is this server's for ``resource`` and has not expired."""
        if not expires or not signature or not expires.isdigit() or len(expires) > 12:
            return False
        expected = self.signature(resource, int(expires))
        valid = hmac.compare_digest(expected.encode(), signature.lower().encode())
        return valid and int(expires) >= (time.time() if now is None else now)


def signing_key(settings: Settings, db: Database) -> bytes:
    """The setting's key, else the database's (made on first use; a race keeps the first)."""
    if settings.url_signing_key:
        return settings.url_signing_key.encode()
    with db.read() as session:
        row = session.get(ServerSecret, SECRET_NAME)
    if row is None:
        try:
            with db.session() as session:
                session.add(
                    ServerSecret(name=SECRET_NAME, value=secrets.token_hex(32), created_at=utcnow())
                )
        except IntegrityError:
            pass  # another process made it first: use theirs
        with db.read() as session:
            row = session.get(ServerSecret, SECRET_NAME)
    assert row is not None
    return row.value.encode()
