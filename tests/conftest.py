from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.server import ServerProcess, create_key


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
