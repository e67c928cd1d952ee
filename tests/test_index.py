"""The vector index backends: one shared suite for usearch and Qdrant (local mode),
persistence of the usearch files, and crash safety of collections (SIGKILL)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from opensight.collections.index import IndexBackend, open_backend, usearch_backend
from opensight.collections.index.usearch_backend import UsearchBackend

DIM = 32


def unit(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def hashes(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 256, (n, 8), dtype=np.uint8)


def hamming(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.unpackbits(a ^ b).sum())


@pytest.fixture(
    params=["usearch-memory", "usearch-files", "ivf-files", "qdrant-memory", "qdrant-path"]
)
def backend(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[IndexBackend]:
    kind = request.param
    if kind == "ivf-files":  # the embedded backend past its HNSW -> IVF switch
        monkeypatch.setattr(usearch_backend, "IVF_THRESHOLD", 100)
        monkeypatch.setattr(usearch_backend, "BACKGROUND_BUILD", False)
    if kind.startswith("qdrant"):
        pytest.importorskip("qdrant_client")
    url = {
        "usearch-memory": "memory://",
        "usearch-files": None,
        "ivf-files": None,
        "qdrant-memory": "qdrant+memory://",
        "qdrant-path": f"qdrant+path://{tmp_path / 'qdrant'}",
    }[kind]
    made = open_backend(url, tmp_path)
    yield made
    made.close()


def test_add_search_exact_neighbours(backend: IndexBackend) -> None:
    rng = np.random.default_rng(1)
    vectors, hs = unit(rng, 200), hashes(rng, 200)
    keys = np.arange(1000, 1200)
    index = backend.open("c1", DIM)
    index.add(keys, vectors, hs)
    assert len(index) == 200
    assert sorted(index.keys().tolist()) == keys.tolist()
    for i in (0, 57, 199):
        found = index.search_vectors(vectors[i], 5)
        assert found.keys[0] == keys[i] and found.scores[0] == pytest.approx(1.0, abs=2e-3)
        assert list(found.scores) == sorted(found.scores, reverse=True)
        expected = np.argsort(-(vectors @ vectors[i]))[:5] + 1000
        assert set(found.keys.tolist()) == set(expected.tolist())
        near = index.search_hashes(hs[i], 3)
        assert near.keys[0] == keys[i] and near.scores[0] == 0
        for key, distance in zip(near.keys, near.scores, strict=True):
            assert distance == hamming(hs[key - 1000], hs[i])


def test_remove_and_replace_keep_the_index_exact(backend: IndexBackend) -> None:
    rng = np.random.default_rng(2)
    vectors, hs = unit(rng, 50), hashes(rng, 50)
    index = backend.open("c2", DIM)
    index.add(np.arange(1, 51), vectors, hs)
    index.remove(np.array([5, 6, 999]))  # an absent key is ignored
    assert len(index) == 48
    assert 5 not in index.search_vectors(vectors[4], 50).keys
    assert 6 not in index.search_hashes(hs[5], 50).keys
    # overwrite key 7 with another vector: only the new one is found
    index.add(np.array([7]), vectors[10:11], hs[10:11])
    found = index.search_vectors(vectors[10], 2)
    assert set(found.keys.tolist()) == {7, 11}
    assert 7 not in index.search_vectors(vectors[6], 3).keys
    assert len(index) == 48 and sorted(index.keys().tolist()) == sorted(set(range(1, 51)) - {5, 6})


def test_empty_indexes_and_isolation(backend: IndexBackend) -> None:
    rng = np.random.default_rng(3)
    a, b = backend.open("a", DIM), backend.open("b", 8)
    assert len(a) == 0 and len(a.search_vectors(unit(rng, 1)[0], 5)) == 0
    assert len(a.search_hashes(hashes(rng, 1)[0], 5)) == 0 and a.keys().size == 0
    a.add(np.array([1]), unit(rng, 1), hashes(rng, 1))
    b.add(np.array([1, 2]), unit(rng, 2, 8), hashes(rng, 2))
    assert len(a) == 1 and len(b) == 2
    backend.drop("a")
    assert len(backend.open("a", DIM)) == 0 and len(backend.open("b", 8)) == 2
    backend.drop("never-existed")


def test_large_batch_and_k_beyond_size(backend: IndexBackend) -> None:
    rng = np.random.default_rng(4)
    n = 1500
    vectors, hs = unit(rng, n), hashes(rng, n)
    index = backend.open("big", DIM)
    index.add(np.arange(n), vectors, hs)
    assert len(index) == n
    hits = 0
    for i in range(0, n, 50):
        hits += int(index.search_vectors(vectors[i], 10).keys[0] == i)
    assert hits >= 29  # approximate search: the vector itself is (almost always) first
    assert len(index.search_vectors(vectors[0], 5000)) == n


# ---------------------------------------------------------- usearch files
def test_usearch_files_survive_reopen_and_corruption(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    vectors, hs = unit(rng, 20), hashes(rng, 20)
    backend = UsearchBackend(tmp_path)
    index = backend.open("c", DIM)
    index.add(np.arange(20), vectors, hs)
    index.flush()
    backend.close()
    reopened = UsearchBackend(tmp_path).open("c", DIM)
    assert sorted(reopened.keys().tolist()) == list(range(20))
    assert reopened.search_vectors(vectors[3], 1).keys[0] == 3
    # a torn file is detected and the index starts empty (the service then rebuilds it)
    path = tmp_path / "c" / "vectors.usearch"
    path.write_bytes(path.read_bytes()[:100])
    assert len(UsearchBackend(tmp_path).open("c", DIM)) == 0
    assert not path.exists()
    # a missing file likewise
    index = UsearchBackend(tmp_path).open("c", DIM)
    index.add(np.arange(3), vectors[:3], hs[:3])
    index.flush()
    (tmp_path / "c" / "hashes.usearch").unlink()
    assert len(UsearchBackend(tmp_path).open("c", DIM)) == 0
    with pytest.raises(ValueError):
        UsearchBackend(tmp_path).open("../escape", DIM)


def test_unknown_index_url() -> None:
    with pytest.raises(ValueError):
        open_backend("redis://x", None)


# ------------------------------------------- the service over both backends
def _photo_bytes(name: str, crop: int = 0) -> bytes:
    import io

    from PIL import Image
    from skimage import data

    arr = getattr(data, name)()
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    arr = np.ascontiguousarray(arr[crop:, crop:, :3])
    buffer = io.BytesIO()
    Image.fromarray(arr).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _service(data_dir: Path, index_url: str | None):  # type: ignore[no-untyped-def]
    from opensight.config import Settings
    from opensight.services.container import Container
    from opensight.services.keys import Principal

    if index_url:
        os.environ["OPENSIGHT_INDEX_URL"] = index_url
    try:
        container = Container(Settings(data_dir=data_dir))
        service = container.collections
    finally:
        os.environ.pop("OPENSIGHT_INDEX_URL", None)
    principal = Principal(tenant_id="t", key_id="k", secret="")
    return container, service, principal


def _db_keys(service, name: str, principal) -> set[int]:  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from opensight.storage.tables import CollectionImage

    collection = service.get(principal, name)
    with service.db.read() as session:
        return set(
            session.scalars(
                select(CollectionImage.key).where(CollectionImage.collection_id == collection.id)
            )
        )


@pytest.mark.parametrize("index_url", [None, "qdrant+path"])
def test_service_keeps_the_index_exact(tmp_path: Path, index_url: str | None) -> None:
    from opensight.collections.service import SearchRequest
    from opensight.services.analysis import Source

    if index_url:
        pytest.importorskip("qdrant_client")
        index_url = f"qdrant+path://{tmp_path / 'qdrant'}"
    container, service, who = _service(tmp_path, index_url)
    service.create(who, "c")
    for name in ("astronaut", "coffee", "camera"):
        service.add(who, "c", Source(data=_photo_bytes(name)), image_id=name)
    service.add(who, "c", Source(data=_photo_bytes("coins")), image_id="astronaut", replace=True)
    service.delete_image(who, "c", "coffee")
    collection = service.get(who, "c")
    index = service.index_for(collection)
    assert set(index.keys().tolist()) == _db_keys(service, "c", who) and len(index) == 2
    hits = service.search(who, "c", SearchRequest(), source=Source(data=_photo_bytes("coins", 20)))
    assert hits[0]["id"] == "astronaut" and hits[0]["match"] == "near_duplicate"
    hits = service.search(who, "c", SearchRequest(), source=Source(data=_photo_bytes("coffee", 20)))
    assert all(h["match"] == "similar" for h in hits)
    service.delete(who, "c")
    service.close()
    container.close()


def test_stale_index_file_is_reconciled(tmp_path: Path) -> None:
    from opensight.collections.service import SearchRequest
    from opensight.services.analysis import Source

    container, service, who = _service(tmp_path, None)
    service.create(who, "c")
    for name in ("astronaut", "coffee", "camera"):
        service.add(who, "c", Source(data=_photo_bytes(name)), image_id=name)
    service.flush()  # the file holds 3 keys ...
    service.delete_image(who, "c", "coffee")  # ... one of which is deleted; no flush (a crash)
    service.add(who, "c", Source(data=_photo_bytes("rocket")), image_id="rocket")
    container.db.dispose()
    # another process (a restart) opens the same data dir
    container2, service2, _ = _service(tmp_path, None)
    collection = service2.get(who, "c")
    index = service2.index_for(collection)
    assert set(index.keys().tolist()) == _db_keys(service2, "c", who) and len(index) == 3
    hits = service2.search(
        who, "c", SearchRequest(), source=Source(data=_photo_bytes("rocket", 30))
    )
    assert hits[0]["id"] == "rocket"
    # a change by the other process is picked up by the first one's next search
    service2.add(who, "c", Source(data=_photo_bytes("coins")), image_id="coins")
    hits = service.search(who, "c", SearchRequest(), source=Source(data=_photo_bytes("coins", 30)))
    assert hits[0]["id"] == "coins"
    service2.close()
    container2.close()


_WRITER = textwrap.dedent(
    """
    import io, sys
    import numpy as np
    from PIL import Image
    from skimage import data
    from opensight.config import Settings
    from opensight.services.container import Container
    from opensight.services.keys import Principal
    from opensight.services.analysis import Source

    service = Container(Settings(data_dir=sys.argv[1])).collections
    who = Principal(tenant_id="t", key_id="k", secret="")
    service.create(who, "crash")
    base = data.astronaut()
    rng = np.random.default_rng(0)
    for i in range(10_000):
        y, x = rng.integers(0, 200, 2)
        arr = np.ascontiguousarray(base[y:y + 300, x:x + 300])
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, "JPEG", quality=85)
        service.add(who, "crash", Source(data=buf.getvalue()), image_id=f"img-{i}")
        print(f"ack img-{i}", flush=True)
    """
)


def test_sigkill_while_adding_loses_nothing_acknowledged(tmp_path: Path) -> None:
    from opensight.services.analysis import Source

    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    acked: list[str] = []
    deadline = time.monotonic() + 240
    assert proc.stdout is not None
    while len(acked) < 8 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        acked.append(line.split()[1])
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert len(acked) >= 8, proc.stderr.read() if proc.stderr else ""
    container, service, who = _service(tmp_path, None)
    collection = service.get(who, "crash")
    index = service.index_for(collection)
    db_keys = _db_keys(service, "crash", who)
    assert set(index.keys().tolist()) == db_keys and len(db_keys) >= len(acked)
    for image_id in acked:
        row = service.get_image(who, "crash", image_id)
        found = service.search(who, "crash", _exact_only(), source=Source(image_id=row.image_id))
        assert {h["id"] for h in found} >= {image_id}, json.dumps(found)
    service.close()
    container.close()


def _exact_only():  # type: ignore[no-untyped-def]
    from opensight.collections.matching import Match
    from opensight.collections.service import SearchRequest

    return SearchRequest(limit=100, matches=frozenset({Match.EXACT}))


def test_migration_and_service_on_postgresql(tmp_path: Path, pg_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from opensight.collections.service import SearchRequest
    from opensight.config import Settings
    from opensight.services.analysis import Source
    from opensight.services.container import Container
    from opensight.services.keys import Principal
    from opensight.storage.db import Database
    from opensight.storage.tables import Base

    db = Database(pg_url)
    db.upgrade()
    with db.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    db.dispose()
    container = Container(Settings(data_dir=tmp_path, database_url=pg_url))
    service, who = container.collections, Principal(tenant_id="t", key_id="k", secret="")
    service.create(who, "pg", {"n": "integer"})
    service.add(who, "pg", Source(data=_photo_bytes("astronaut")), image_id="a", metadata={"n": 1})
    service.add(who, "pg", Source(data=_photo_bytes("astronaut", 30)), image_id="b")
    service.add(who, "pg", Source(data=_photo_bytes("coffee")), image_id="c")
    hits = service.search(who, "pg", SearchRequest(metadata={"n": 1}), by_id="b")
    assert [h["id"] for h in hits] == ["a"] and hits[0]["match"] == "near_duplicate"
    groups = list(service.duplicates(who, "pg"))
    assert [[i["id"] for i in g["images"]] for g in groups] == [["a", "b"]]
    rows, cursor = service.list_images(who, "pg", limit=2)
    assert [r.id for r in rows] == ["c", "b"] and cursor
    service.delete(who, "pg")
    service.close()
    container.close()


def test_migration_on_sqlite(tmp_path: Path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from opensight.storage.db import Database
    from opensight.storage.tables import Base

    db = Database(f"sqlite:///{tmp_path / 'm.db'}")
    db.upgrade()
    with db.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
        ddl = connection.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE name = 'collection_images'"
        ).scalar()
    assert "AUTOINCREMENT" in str(ddl)  # keys are never reused
    db.dispose()
