"""Processes starting together on an empty PostgreSQL database migrate it once, in turn."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import inspect, text

from opensight.storage.db import Database

pytestmark = pytest.mark.postgres


def test_concurrent_upgrades_on_one_empty_database_all_succeed(pg_url: str) -> None:
    databases = [Database(pg_url) for _ in range(4)]
    errors: list[BaseException] = []
    start = threading.Barrier(len(databases))

    def upgrade(db: Database) -> None:
        start.wait()
        try:
            db.upgrade()
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=upgrade, args=(db,)) for db in databases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    try:
        assert errors == []
        with databases[0].engine.connect() as connection:
            versions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
            assert len(versions) == 1
            assert "jobs" in inspect(connection).get_table_names()
    finally:
        for db in databases:
            db.dispose()
