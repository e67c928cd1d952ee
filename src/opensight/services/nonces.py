"""Replay memory in the database, so every API process refuses what another one saw.

Two shapes of it:

* :class:`NonceStore` -- single-use nonces (OAuth 1.0): a second use is refused.
* :class:`FirstSeenStore` -- when a request signature was first seen (VSHMAC allows a
  repeat for a few seconds, see ``compat.visualsnoop.replay``).

Both live in the database because scale-out runs several API processes on one
PostgreSQL (embedded mode: the SQLite file). Both let the primary key settle races
(``INSERT ... ON CONFLICT DO NOTHING``: no read-then-write window, on SQLite and
PostgreSQL alike). Rows only need to outlive their scheme's timestamp window -- an
older request is refused by its timestamp -- so they are deleted afterwards, at most
once a minute per process.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, insert, inspect, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from ..jobs.model import utcnow
from ..storage.db import Database
from ..storage.tables import Base, OAuthNonce, SeenSignature

MAX_NONCE_LENGTH = 128
#: Length of a :class:`FirstSeenStore` key (a SHA-256 in hex).
DIGEST_LENGTH = 64


def insert_new(connection: Connection, table: type[Base], values: dict[str, Any]) -> bool:
    """Insert the row unless its primary key exists; True when this call inserted it.

    One statement, so two processes racing on the same key cannot both win.
    """
    dialect = connection.dialect
    if dialect.name == "postgresql":
        statement: Any = pg_insert(table).values(values).on_conflict_do_nothing()
    elif dialect.name == "sqlite":
        statement = sqlite_insert(table).values(values).on_conflict_do_nothing()
    else:  # no portable upsert: let the key refuse it, inside a savepoint
        try:
            with connection.begin_nested():
                connection.execute(insert(table).values(values))
        except IntegrityError:
            return False
        return True
    if dialect.insert_returning:  # rowcount is not reliable here (psycopg 3 reports -1)
        key = inspect(table).primary_key[0]
        return connection.execute(statement.returning(key)).first() is not None
    return int(connection.execute(statement).rowcount) == 1  # SQLite before 3.35


class _Every:
    """True at most once per ``seconds`` in this process (cleanup scheduling)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._lock = threading.Lock()
        self._next = 0.0

    def due(self) -> bool:
        now = time.monotonic()
        with self._lock:
            if now < self._next:
                return False
            self._next = now + self.seconds
            return True


class NonceStore:
    def __init__(self, db: Database, keep_seconds: float = 900.0) -> None:
        self.db = db
        self.keep_seconds = keep_seconds
        self._cleanup = _Every(60.0)

    def use(self, key_id: str, nonce: str) -> bool:
        """Record ``nonce`` for ``key_id``; False when it was used before (a replay)."""
        if not nonce or len(nonce) > MAX_NONCE_LENGTH:
            return False
        if self._cleanup.due():
            self.cleanup()
        row = {"key_id": key_id, "nonce": nonce, "created_at": utcnow()}
        with self.db.engine.begin() as connection:
            return insert_new(connection, OAuthNonce, row)

    def cleanup(self) -> int:
        """Delete nonces older than ``keep_seconds``; returns how many went."""
        cutoff = utcnow() - timedelta(seconds=self.keep_seconds)
        with self.db.engine.begin() as connection:
            result = connection.execute(delete(OAuthNonce).where(OAuthNonce.created_at < cutoff))
        return int(result.rowcount)


class FirstSeenStore:
    """When each key (a digest, never a raw signature) was first seen, by any process."""

    def __init__(self, db: Database, keep_seconds: float) -> None:
        self.db = db
        self.keep_seconds = keep_seconds
        self._cleanup = _Every(60.0)

    def first_seen(self, digest: str, now: datetime | None = None) -> datetime | None:
        """Record ``digest`` as seen ``now`` unless it was seen before; when it was first seen.

        ``None`` only if its row expired (and was cleaned up) in between: it is older than
        ``keep_seconds`` then.
        """
        if not digest or len(digest) > DIGEST_LENGTH:
            raise ValueError("a digest of at most 64 characters is expected")
        if self._cleanup.due():
            self.cleanup()
        now = now or utcnow()
        row = {
            "digest": digest,
            "first_seen": now,
            "expires_at": now + timedelta(seconds=self.keep_seconds),
        }
        with self.db.engine.begin() as connection:
            if insert_new(connection, SeenSignature, row):
                return now
            # The row is committed (PostgreSQL waits for a concurrent inserter; SQLite
            # serialises writers), and each statement reads the latest commit.
            query = select(SeenSignature.first_seen).where(SeenSignature.digest == digest)
            first: datetime | None = connection.execute(query).scalar_one_or_none()
            return first

    def cleanup(self) -> int:
        """Delete expired rows; returns how many went."""
        with self.db.engine.begin() as connection:
            result = connection.execute(
                delete(SeenSignature).where(SeenSignature.expires_at < utcnow())
            )
        return int(result.rowcount)
