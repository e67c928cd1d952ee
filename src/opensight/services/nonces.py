"""Single-use nonces (OAuth 1.0): the database refuses a second use, whichever process sees it.

The nonce table is shared by every API process (scale-out uses one PostgreSQL),
so a replay sent to another node is refused too: the primary key (key id,
nonce) makes the second insert fail. Rows only need to outlive the timestamp
window -- an older request is refused by its timestamp -- so they are deleted
after ``keep_seconds``, at most once a minute per process.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from sqlalchemy import delete, insert
from sqlalchemy.exc import IntegrityError

from ..jobs.model import utcnow
from ..storage.db import Database
from ..storage.tables import OAuthNonce

MAX_NONCE_LENGTH = 128


class NonceStore:
    def __init__(self, db: Database, keep_seconds: float = 900.0) -> None:
        self.db = db
        self.keep_seconds = keep_seconds
        self._lock = threading.Lock()
        self._next_cleanup = 0.0

    def use(self, key_id: str, nonce: str) -> bool:
        """Record ``nonce`` for ``key_id``; False when it was used before (a replay)."""
        if not nonce or len(nonce) > MAX_NONCE_LENGTH:
            return False
        self._cleanup_if_due()
        try:
            with self.db.engine.begin() as connection:
                connection.execute(
                    insert(OAuthNonce), {"key_id": key_id, "nonce": nonce, "created_at": utcnow()}
                )
        except IntegrityError:
            return False
        return True

    def cleanup(self) -> int:
        """Delete nonces older than ``keep_seconds``; returns how many went."""
        cutoff = utcnow() - timedelta(seconds=self.keep_seconds)
        with self.db.engine.begin() as connection:
            result = connection.execute(delete(OAuthNonce).where(OAuthNonce.created_at < cutoff))
        return int(result.rowcount)

    def _cleanup_if_due(self) -> None:
        now = time.monotonic()
        with self._lock:
            if now < self._next_cleanup:
                return
            self._next_cleanup = now + 60.0
        self.cleanup()
