"""The S3 blob store against moto's S3 server on loopback (real boto3, real HTTP)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from opensight.config import Settings
from opensight.images import ImageLimits
from opensight.services.images import ImageService
from opensight.storage.blobs import FileBlobStore
from opensight.storage.db import Database
from opensight.storage.s3 import S3BlobStore, open_blob_store
from tests.cluster import S3Server
from tests.conftest import photo_bytes


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    server = S3Server("blobs-test").start()
    yield server
    server.stop()


def _settings(s3: S3Server, tmp_path: Path, prefix: str) -> Settings:
    return Settings(
        data_dir=tmp_path,
        blob_url=f"s3://{s3.bucket}/{prefix}",
        s3_endpoint_url=s3.endpoint,
        s3_region="us-east-1",
        s3_access_key_id="testing-key",
        s3_secret_access_key="testing-secret",  # type: ignore[arg-type]
    )


def test_put_get_exists_delete(s3: S3Server, tmp_path: Path) -> None:
    store = open_blob_store(_settings(s3, tmp_path, "one/two"))
    assert isinstance(store, S3BlobStore) and store.ping()
    data = b"\x00\x01 bytes" * 1000
    key = hashlib.sha256(data).hexdigest()
    assert not store.exists(key)
    with pytest.raises(KeyError):
        store.get(key)
    store.put(key, data)
    store.put(key, data)  # content-addressed: a repeat is harmless
    assert store.exists(key) and store.get(key) == data
    names = [o["Key"] for o in s3.client().list_objects_v2(Bucket=s3.bucket)["Contents"]]
    assert f"one/two/{key[:2]}/{key}" in names
    store.delete(key)
    store.delete(key)  # deleting a missing blob is not an error (as with files)
    assert not store.exists(key)
    assert not (tmp_path / "blobs").exists()  # nothing written to the data dir


def test_keys_are_checked(s3: S3Server, tmp_path: Path) -> None:
    store = open_blob_store(_settings(s3, tmp_path, ""))
    for bad in ("short", "../../etc/passwd", "abc/def/ghi", ""):
        with pytest.raises(ValueError):
            store.put(bad, b"x")
        with pytest.raises(ValueError):
            store.get(bad)


def test_missing_bucket_is_not_ready(s3: S3Server, tmp_path: Path) -> None:
    settings = _settings(s3, tmp_path, "x").model_copy(update={"blob_url": "s3://no-such-bucket/x"})
    store = open_blob_store(settings)
    assert isinstance(store, S3BlobStore) and not store.ping()
    with pytest.raises(Exception) as info:
        store.put("a" * 64, b"x")
    assert "NoSuchBucket" in str(info.value)


def test_image_service_round_trip(s3: S3Server, tmp_path: Path) -> None:
    """Stored images go to the bucket and come back decoded, as workers read them."""
    settings = _settings(s3, tmp_path, "images")
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    db.upgrade()
    service = ImageService(db, open_blob_store(settings), ImageLimits(10_000_000, 50_000_000))
    data = photo_bytes((320, 240))
    row, created = service.store("tenant", data)
    assert created
    image = service.load("tenant", row.id)
    assert (image.width, image.height) == (320, 240)
    service.delete("tenant", row.id)
    assert not open_blob_store(settings).exists(row.sha256)
    db.dispose()


def test_blob_url_choices(tmp_path: Path) -> None:
    assert isinstance(open_blob_store(Settings(data_dir=tmp_path)), FileBlobStore)
    shared = open_blob_store(Settings(data_dir=tmp_path, blob_url=f"file://{tmp_path}/shared"))
    assert isinstance(shared, FileBlobStore) and shared.root == tmp_path / "shared"
    for bad in ("gs://bucket/x", "s3:///nobucket", "file://"):
        with pytest.raises(ValueError):
            open_blob_store(Settings(data_dir=tmp_path, blob_url=bad))


def test_secret_is_not_in_settings_repr(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, s3_secret_access_key="hush-hush-123")  # type: ignore[arg-type]
    assert "hush-hush-123" not in repr(settings) and "hush-hush-123" not in str(settings)
