"""A tenant's stored images: content-addressed blobs plus one row per (tenant, image)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ..errors import NotFound
from ..images import DecodedImage, ImageLimits, decode, inspect
from ..jobs.model import utcnow
from ..storage.blobs import BlobStore
from ..storage.db import Database
from ..storage.tables import StoredImage


def image_id_for(sha256: str) -> str:
    """Same bytes, same id (per tenant): the id is derived from the content hash."""
    return f"img_{sha256[:32]}"


class ImageService:
    def __init__(self, db: Database, blobs: BlobStore, limits: ImageLimits) -> None:
        self.db = db
        self.blobs = blobs
        self.limits = limits

    def store(
        self, tenant_id: str, data: bytes, full_check: bool = True
    ) -> tuple[StoredImage, bool]:
        """Validate, keep the bytes, and return (row, created?).

        ``full_check=False`` validates from the header only (limits, format, size):
        for job submission, whose worker decodes the pixels anyway -- so each job
        decodes once, and a corrupt body fails that job as ``invalid_image``.
        """
        header = inspect(data, self.limits)
        if full_check:
            decode(data, self.limits)
        image_id = image_id_for(header.sha256)
        self.blobs.put(header.sha256, data)
        row = StoredImage(
            tenant_id=tenant_id,
            id=image_id,
            sha256=header.sha256,
            width=header.width,
            height=header.height,
            format=header.format.lower(),
            bytes=len(data),
            created_at=utcnow(),
        )
        try:
            with self.db.session() as session:
                existing = session.get(StoredImage, (tenant_id, image_id))
                if existing is not None:
                    return existing, False
                session.add(row)
        except IntegrityError:  # a concurrent upload of the same bytes won
            return self.get(tenant_id, image_id), False
        return row, True

    def require(self, tenant_id: str, image_id: str) -> None:
        """Raise NotFound unless the tenant has this image (one indexed read, no ORM)."""
        query = select(StoredImage.id).where(
            StoredImage.tenant_id == tenant_id, StoredImage.id == image_id
        )
        with self.db.read_engine.connect() as connection:
            found = connection.execute(query).first()
        if found is None:
            raise NotFound(f"no image {image_id!r}")

    def get(self, tenant_id: str, image_id: str) -> StoredImage:
        with self.db.read() as session:
            row = session.get(StoredImage, (tenant_id, image_id))
        if row is None:
            raise NotFound(f"no image {image_id!r}")
        return row

    def content(self, tenant_id: str, image_id: str) -> tuple[StoredImage, bytes]:
        row = self.get(tenant_id, image_id)
        try:
            return row, self.blobs.get(row.sha256)
        except KeyError:
            raise NotFound(f"the bytes of image {image_id!r} are missing") from None

    def load(self, tenant_id: str, image_id: str) -> DecodedImage:
        _, data = self.content(tenant_id, image_id)
        return decode(data, self.limits, source=image_id)

    def delete(self, tenant_id: str, image_id: str) -> None:
        with self.db.session() as session:
            row = session.get(StoredImage, (tenant_id, image_id))
            if row is None:
                raise NotFound(f"no image {image_id!r}")
            sha = row.sha256
            session.delete(row)
            session.flush()
            still_used = session.scalar(
                select(StoredImage.id).where(StoredImage.sha256 == sha).limit(1)
            )
        if still_used is None:
            self.blobs.delete(sha)

    def to_dict(self, row: StoredImage) -> dict[str, object]:
        return {
            "id": row.id,
            "sha256": row.sha256,
            "width": row.width,
            "height": row.height,
            "format": row.format,
            "bytes": row.bytes,
            "created_at": row.created_at.isoformat(),
        }
