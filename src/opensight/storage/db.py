"""Engine and sessions for SQLite (embedded, WAL) and PostgreSQL (scale-out)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_MIGRATION_LOCK = 0x0F5E_6D16
"""PostgreSQL advisory lock key held while migrating (any constant unique to OpenSight)."""


class Database:
    """One engine per process; ``session()`` is a unit of work that commits on exit."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {"future": True}
        if self.is_sqlite:
            path = url.split("///", 1)[1] if "///" in url else ""
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            kwargs.update(pool_size=10, max_overflow=20, pool_pre_ping=True)
        self.engine: Engine = create_engine(url, **kwargs)
        self.read_engine: Engine = self.engine
        if self.is_sqlite:
            # Writers take the lock at BEGIN so they queue (busy_timeout) instead of
            # failing with "database is locked" when a read lock is upgraded.
            # Readers get their own engine with deferred BEGIN so WAL lets them run
            # beside a writer.
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
            self.read_engine = create_engine(url, **kwargs)
            event.listen(self.read_engine, "connect", _sqlite_pragmas)
            event.listen(self.read_engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN"))
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._read_sessions = sessionmaker(self.read_engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions() as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reads only (no BEGIN IMMEDIATE on SQLite)."""
        with self._read_sessions() as session:
            yield session

    def upgrade(self) -> None:
        """Bring the schema to the newest Alembic revision."""
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        config.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        with self.engine.connect() as connection:
            if not self.is_sqlite:
                # Several API and worker processes start at once in scale-out mode: one
                # migrates, the others wait here and then find the schema current.
                connection.exec_driver_sql(f"SELECT pg_advisory_lock({_MIGRATION_LOCK})")
            try:
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
                connection.commit()
            finally:
                if not self.is_sqlite:
                    connection.exec_driver_sql(f"SELECT pg_advisory_unlock({_MIGRATION_LOCK})")
                    connection.commit()

    def ping(self) -> bool:
        try:
            with self.engine.connect() as connection:
                connection.exec_driver_sql("SELECT 1")
            return True
        except Exception:
            return False

    def dispose(self) -> None:
        self.engine.dispose()
        if self.read_engine is not self.engine:
            self.read_engine.dispose()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # The sqlite3 driver's own transaction handling would fight BEGIN IMMEDIATE.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
