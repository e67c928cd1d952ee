"""Blob store on S3-compatible object storage (scale-out mode), chosen by ``OPENSIGHT_BLOB_URL``.

Same interface and key rules as :class:`~opensight.storage.blobs.FileBlobStore`, so
every API and worker process on any machine reads the bytes another one stored.
Objects are content-addressed and immutable, so a plain PUT is safe to repeat.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .blobs import BlobStore, FileBlobStore

if TYPE_CHECKING:
    from ..config import Settings

_MISSING = {"404", "NoSuchKey", "NotFound"}


def check_key(key: str) -> str:
    """The same rule as the file store: keys are hex digests, never paths."""
    if len(key) < 8 or not key.isalnum():
        raise ValueError(f"bad blob key {key!r}")
    return key


class S3BlobStore:
    """Objects at ``<prefix>/<key[:2]>/<key>`` in one bucket (one boto3 client, thread-safe)."""

    def __init__(self, bucket: str, prefix: str = "", client: Any = None, **client_args: Any):
        if not bucket:
            raise ValueError("an S3 blob store needs a bucket: s3://bucket/prefix")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        if client is None:
            import boto3
            from botocore.config import Config

            config = Config(
                max_pool_connections=64,
                retries={"max_attempts": 5, "mode": "standard"},
                connect_timeout=5,
                read_timeout=30,
            )
            args = {k: v for k, v in client_args.items() if v is not None}
            client = boto3.session.Session().client("s3", config=config, **args)
        self.client = client

    def _name(self, key: str) -> str:
        check_key(key)
        name = f"{key[:2]}/{key}"
        return f"{self.prefix}/{name}" if self.prefix else name

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._name(key), Body=data)

    def get(self, key: str) -> bytes:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._name(key))
        except Exception as exc:
            if _is_missing(exc):
                raise KeyError(key) from None
            raise
        return bytes(response["Body"].read())

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._name(key))
        except Exception as exc:
            if _is_missing(exc):
                return False
            raise
        return True

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._name(key))

    def ping(self) -> bool:
        """Readiness: the bucket answers with these credentials."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
            return True
        except Exception:
            return False


def _is_missing(exc: Exception) -> bool:
    error = getattr(exc, "response", {}).get("Error", {})
    return str(error.get("Code")) in _MISSING


def open_blob_store(settings: Settings) -> BlobStore:
    """``OPENSIGHT_BLOB_URL``: unset → files in the data dir; ``s3://bucket/prefix``;
    ``file:///path`` → files there (e.g. a shared mount)."""
    url = settings.blob_url
    if not url:
        return FileBlobStore(settings.blob_dir)
    parts = urlsplit(url)
    if parts.scheme == "s3":
        secret = settings.s3_secret_access_key
        return S3BlobStore(
            parts.netloc,
            parts.path,
            endpoint_url=settings.s3_endpoint_url,
            region_name=settings.s3_region,
            aws_access_key_id=settings.s3_access_key_id,
            aws_secret_access_key=secret.get_secret_value() if secret else None,
        )
    if parts.scheme == "file" and parts.path:
        from pathlib import Path

        return FileBlobStore(Path(parts.path))
    raise ValueError(
        f"OPENSIGHT_BLOB_URL must be s3://bucket/prefix or file:///path, not {parts.scheme!r}://"
    )
