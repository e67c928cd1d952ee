from __future__ import annotations

import io
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import create_engine, text

from tests.server import ServerProcess, create_key


def _quiet_imageio_avif_import() -> None:
    """scikit-image's bundled photos load through imageio, whose Pillow plugin runs
    ``from pillow_heif import register_avif_opener`` on every image. pillow-heif 1.x has no
    such function, so each call is a failing submodule import through the import lock,
    and under threads CPython 3.11 can raise KeyError from that lock. Pillow reads AVIF
    itself, so a no-op here changes nothing but the failing import."""
    try:
        import pillow_heif
    except ImportError:
        return
    if not hasattr(pillow_heif, "register_avif_opener"):
        pillow_heif.register_avif_opener = lambda *args, **kwargs: None


_quiet_imageio_avif_import()


@pytest.fixture(scope="session")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One real server for the tests that only need isolation by tenant."""
    server = ServerProcess(tmp_path_factory.mktemp("shared-server"), workers=2).start()
    yield server
    server.stop()


@pytest.fixture
def tenant(shared_server: ServerProcess, request: pytest.FixtureRequest) -> dict[str, Any]:
    """A fresh key of a fresh tenant on the shared server."""
    name = request.node.name[:60].replace("[", "-").replace("]", "")
    return create_key(shared_server.data_dir, name, tenant=f"t-{name}-{id(request)}")


def photo_bytes(size: tuple[int, int] = (640, 480), fmt: str = "JPEG", seed: int = 0) -> bytes:
    """A real photograph (scikit-image's bundled astronaut) resized, as encoded bytes."""
    from skimage import data

    image = Image.fromarray(data.astronaut()).resize(size)
    if seed:
        arr = np.asarray(image).copy()
        arr[:4, :4] = seed % 256
        image = Image.fromarray(arr)
    buffer = io.BytesIO()
    image.save(buffer, fmt, quality=90)
    return buffer.getvalue()


@pytest.fixture
def photo() -> bytes:
    return photo_bytes()


@pytest.fixture
def photo_path(tmp_path: Path, photo: bytes) -> Path:
    path = tmp_path / "photo.jpg"
    path.write_bytes(photo)
    return path


PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def _pg_available() -> bool:
    try:
        engine = create_engine(PG_ADMIN_URL)
        with engine.connect():
            pass
        engine.dispose()
        return True
    except Exception:
        return False


@pytest.fixture
def pg_url() -> Iterator[str]:
    if not _pg_available():
        if os.environ.get("OPENSIGHT_REQUIRE_SERVICES") == "1":
            pytest.fail("PostgreSQL is not reachable at 127.0.0.1:5432 and CI requires it")
        pytest.skip("PostgreSQL is not reachable at 127.0.0.1:5432")
    name = f"opensight_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
