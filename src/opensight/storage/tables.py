"""The database schema. Alembic migrations in ``migrations/`` mirror it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on SQLite and PostgreSQL alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime")
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            from datetime import UTC

            value = value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Tenant(Base):
    __tablename__ = "tenants"
    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ApiKey(Base):
    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    """Public key id (the ``key`` users see and send)."""
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    secret: Mapped[str] = mapped_column(String(100))
    """Kept so HMAC schemes (webhook signatures, VSHMAC, OAuth 1) can be verified."""
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    collection: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class StoredImage(Base):
    __tablename__ = "images"
    tenant_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    format: Mapped[str] = mapped_column(String(16))
    bytes: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Batch(Base):
    __tablename__ = "batches"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(100), index=True)
    features: Mapped[list[Any]] = mapped_column(JSON)
    total: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Job(Base):
    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(100))
    key_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    features: Mapped[list[Any]] = mapped_column(JSON)
    source: Mapped[dict[str, Any]] = mapped_column(JSON)
    """{"image_id": ...} or {"url": ...}: never raw bytes (those are stored as images)."""
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    ttl_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    batch_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    batch_index: Mapped[int | None] = mapped_column(Integer, nullable=True)
    webhook_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    webhook_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    """None (no webhook), pending, delivered or failed."""
    webhook_next_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    webhook_attempts: Mapped[list[Any]] = mapped_column(JSON, default=list)

    __table_args__ = (
        Index("ix_jobs_tenant_created", "tenant_id", "created_at"),
        Index("ix_jobs_status_created", "status", "created_at"),
        Index("ix_jobs_batch", "batch_id", "batch_index"),
        Index("ix_jobs_webhook", "webhook_status", "webhook_next_at"),
        Index("uq_jobs_idempotency", "tenant_id", "idempotency_key", unique=True),
    )


#: 64-bit keys on PostgreSQL; SQLite's rowid (INTEGER PRIMARY KEY is 64-bit there too).
_Key = BigInteger().with_variant(Integer(), "sqlite")


class Collection(Base):
    """A tenant's collection of images searched by similarity (see opensight.collections)."""

    __tablename__ = "collections"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    """Internal id (``col_...``), also the name of its vector index."""
    tenant_id: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(100))
    metadata_schema: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    embedder: Mapped[str] = mapped_column(String(64))
    """The descriptor space of its vectors (e.g. ``classic-v1``); never mixed."""
    dim: Mapped[int] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer, default=0)
    """Bumped by every change of its images: another process then knows to resync."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("uq_collections_tenant_name", "tenant_id", "name", unique=True),)


class CollectionImage(Base):
    """One image of a collection and its signals; ``key`` is its vector-index key."""

    __tablename__ = "collection_images"
    key: Mapped[int] = mapped_column(_Key, primary_key=True, autoincrement=True)
    """Never reused (AUTOINCREMENT / a sequence): a replaced image gets a new key."""
    collection_id: Mapped[str] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"))
    id: Mapped[str] = mapped_column(String(100))
    image_id: Mapped[str] = mapped_column(String(64))
    """The tenant's stored image holding the bytes (``/v1/images/{image_id}``)."""
    sha256: Mapped[str] = mapped_column(String(64))
    pixel_sha256: Mapped[str] = mapped_column(String(64))
    phash: Mapped[str] = mapped_column(String(16))
    dhash: Mapped[str] = mapped_column(String(16))
    colorhash: Mapped[str] = mapped_column(String(16))
    descriptor: Mapped[bytes] = mapped_column(LargeBinary)
    """float16 classical descriptor (``classic-v1``), in every collection."""
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    """float16 vector of a neural collection's embedder (None in classical ones)."""
    local_features: Mapped[bytes] = mapped_column(LargeBinary)
    """opensight.signals.local.LocalFeatures.to_bytes()."""
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    meta: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("uq_collection_images_id", "collection_id", "id", unique=True),
        Index("ix_collection_images_order", "collection_id", "key"),
        Index("ix_collection_images_sha256", "collection_id", "sha256"),
        Index("ix_collection_images_pixels", "collection_id", "pixel_sha256"),
        {"sqlite_autoincrement": True},
    )


class CollectionDuplicate(Base):
    """An exact or near-duplicate pair found when the newer image (``key_b``) was added."""

    __tablename__ = "collection_duplicates"
    key_a: Mapped[int] = mapped_column(
        _Key, ForeignKey("collection_images.key", ondelete="CASCADE"), primary_key=True
    )
    key_b: Mapped[int] = mapped_column(
        _Key, ForeignKey("collection_images.key", ondelete="CASCADE"), primary_key=True
    )
    collection_id: Mapped[str] = mapped_column(String(40))
    score: Mapped[float] = mapped_column(Float)
    match: Mapped[str] = mapped_column(String(16))

    __table_args__ = (
        Index("ix_collection_duplicates_collection", "collection_id", "key_a"),
        Index("ix_collection_duplicates_b", "key_b"),
    )


class Review(Base):
    """One detected object a person must confirm or reject (the human-in-the-loop queue).

    ``ref`` names the group the object belongs to (e.g. ``imageintelligence:det_...``) so the
    front end that asked for the review learns when its whole request is decided.
    """

    __tablename__ = "reviews"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(100))
    job_id: Mapped[str] = mapped_column(String(40))
    object_index: Mapped[int] = mapped_column(Integer)
    """Position of the object in the job's result: (job_id, object_index) is unique."""
    ref: Mapped[str | None] = mapped_column(String(100), nullable=True)
    label: Mapped[str] = mapped_column(String(200))
    confidence: Mapped[float] = mapped_column(Float)
    box: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    """[x_min, y_min, x_max, y_max] in the image's pixels."""
    status: Mapped[str] = mapped_column(String(16))
    """pending, confirmed or rejected."""
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    reviewer: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    __table_args__ = (
        Index("uq_reviews_job_object", "job_id", "object_index", unique=True),
        Index("ix_reviews_tenant_status", "tenant_id", "status", "id"),
        Index("ix_reviews_ref", "ref", "status"),
    )


class DetectRequest(Base):
    """An Image Intelligence detect request: one native job per image (a batch), grouped."""

    __tablename__ = "ii_detect_requests"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(100))
    key_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    batch_id: Mapped[str] = mapped_column(String(40))
    custom_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    feed_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    webhook_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    classes: Mapped[list[Any]] = mapped_column(JSON)
    """[{"class": name, "hitl": "NEVER|AUTO|ALWAYS"}]"""
    images: Mapped[list[Any]] = mapped_column(JSON)
    """[{"url", "customId"}] in request order (the batch index)."""
    status: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    __table_args__ = (
        Index("ix_ii_detect_tenant_created", "tenant_id", "created_at"),
        Index("ix_ii_detect_tenant_feed", "tenant_id", "feed_id", "created_at"),
        Index("ix_ii_detect_tenant_custom", "tenant_id", "custom_id", "created_at"),
        Index("ix_ii_detect_batch", "batch_id"),
    )


class OAuthNonce(Base):
    """A nonce an OAuth 1.0 signature used: refused when seen again (replay), across processes.

    Rows older than the timestamp window are deleted; the window itself refuses older replays.
    """

    __tablename__ = "oauth_nonces"
    key_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(128), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_oauth_nonces_created", "created_at"),)


class SeenSignature(Base):
    """When a request signature (VSHMAC) was first seen, by any process: a repeat is
    refused once a few seconds have passed. Keyed by a SHA-256 of key and signature,
    never the signature itself; rows are deleted after ``expires_at`` (past the Date window).
    """

    __tablename__ = "seen_signatures"
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_seen_signatures_expires", "expires_at"),)


class ServerSecret(Base):
    """Random secrets the server makes once and every process shares (e.g. URL signing)."""

    __tablename__ = "server_secrets"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
