"""The review queue: detected objects a person confirms or rejects (human in the loop).

Any front end may queue objects of a finished job for review (Image Intelligence's
``hitl`` does). Operators decide them through ``/v1/reviews`` or ``opensight reviews``.
A decision is one conditional UPDATE (``WHERE status = 'pending'``), so two reviewers
racing on the same object cannot both win; listeners then learn of it (e.g. to finish
the foreign request that waited for its last review).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from ..errors import Conflict, NotFound, ValidationFailed
from ..jobs.model import new_id, utcnow
from ..storage.db import Database
from ..storage.tables import Review

log = logging.getLogger("opensight.reviews")

STATUSES = ("pending", "confirmed", "rejected")
DECISIONS = {"confirm": "confirmed", "reject": "rejected"}
MAX_NOTE = 2000


@dataclass(frozen=True)
class ReviewItem:
    """An object to review: its position in the job's result and what the model said."""

    object_index: int
    label: str
    confidence: float
    box: list[float] | None = None


class ReviewService:
    def __init__(self, db: Database, on_decided: Callable[[Review], None] | None = None) -> None:
        self.db = db
        self.on_decided = on_decided

    # ------------------------------------------------------------------ queue
    def enqueue(
        self, tenant_id: str, job_id: str, items: Iterable[ReviewItem], ref: str | None = None
    ) -> list[Review]:
        """Queue ``items`` of ``job_id``; objects already queued are kept (idempotent)."""
        items = list(items)
        if not items:
            return []
        try:
            return self._insert_new(tenant_id, job_id, items, ref)
        except IntegrityError:  # another process queued the same objects meanwhile
            return self._insert_new(tenant_id, job_id, items, ref)

    def _insert_new(
        self, tenant_id: str, job_id: str, items: Sequence[ReviewItem], ref: str | None
    ) -> list[Review]:
        now = utcnow()
        with self.db.session() as session:
            existing = set(
                session.scalars(select(Review.object_index).where(Review.job_id == job_id))
            )
            rows = [
                Review(
                    id=new_id("rev"),
                    tenant_id=tenant_id,
                    job_id=job_id,
                    object_index=item.object_index,
                    ref=ref,
                    label=item.label[:200],
                    confidence=float(item.confidence),
                    box=list(item.box) if item.box is not None else None,
                    status="pending",
                    created_at=now,
                )
                for item in items
                if item.object_index not in existing
            ]
            session.add_all(rows)
        return rows

    # ------------------------------------------------------------------ reads
    def get(self, review_id: str, tenant_id: str | None = None) -> Review:
        with self.db.read() as session:
            row = session.get(Review, review_id)
        if row is None or (tenant_id is not None and row.tenant_id != tenant_id):
            raise NotFound(f"no review {review_id!r}")
        return row

    def list(
        self,
        tenant_id: str | None,
        status: str | None = "pending",
        job_id: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> tuple[list[Review], str | None]:
        """Oldest first (a queue); ``cursor`` is the last id of the previous page."""
        if status is not None and status not in STATUSES:
            raise ValidationFailed(
                f"unknown review status {status!r}; one of {', '.join(STATUSES)}"
            )
        query = select(Review).order_by(Review.id).limit(limit + 1)
        if tenant_id is not None:
            query = query.where(Review.tenant_id == tenant_id)
        if status is not None:
            query = query.where(Review.status == status)
        if job_id is not None:
            query = query.where(Review.job_id == job_id)
        if cursor:
            query = query.where(Review.id > cursor)
        with self.db.read() as session:
            rows = list(session.scalars(query))
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, (rows[-1].id if more and rows else None)

    def for_jobs(self, job_ids: Sequence[str]) -> dict[tuple[str, int], Review]:
        """Every review of these jobs, by (job_id, object_index)."""
        if not job_ids:
            return {}
        found: dict[tuple[str, int], Review] = {}
        with self.db.read() as session:
            for start in range(0, len(job_ids), 500):
                chunk = list(job_ids[start : start + 500])
                for row in session.scalars(select(Review).where(Review.job_id.in_(chunk))):
                    found[(row.job_id, row.object_index)] = row
        return found

    def pending_count(self, ref: str) -> int:
        with self.db.read() as session:
            return int(
                session.scalar(
                    select(func.count())
                    .select_from(Review)
                    .where(Review.ref == ref, Review.status == "pending")
                )
                or 0
            )

    # -------------------------------------------------------------- decisions
    def decide(
        self,
        review_id: str,
        tenant_id: str | None,
        decision: str,
        note: str | None = None,
        reviewer: str | None = None,
    ) -> Review:
        """Confirm or reject a pending review. Repeating the same decision is a no-op;
        the opposite decision on a decided review is a 409 (decisions are final)."""
        status = DECISIONS.get(decision)
        if status is None:
            raise ValidationFailed(
                f"decision must be one of {', '.join(DECISIONS)}, not {decision!r}"
            )
        if note is not None and len(note) > MAX_NOTE:
            raise ValidationFailed(f"note is longer than {MAX_NOTE} characters")
        current = self.get(review_id, tenant_id)
        with self.db.session() as session:
            result = session.execute(
                update(Review)
                .where(Review.id == current.id, Review.status == "pending")
                .values(status=status, note=note, reviewer=reviewer, decided_at=utcnow())
            )
            won = bool(result.rowcount)  # type: ignore[attr-defined]
        row = self.get(review_id, tenant_id)
        if not won:
            if row.status == status:
                return row
            raise Conflict(f"review {review_id} is already {row.status}")
        if self.on_decided is not None:
            try:
                self.on_decided(row)
            except Exception:  # the decision is recorded; a listener must not undo it
                log.exception("review listener failed for %s", row.id)
        return row


def review_view(row: Review) -> dict[str, Any]:
    """The public JSON of a review (native API, CLI)."""
    return {
        "id": row.id,
        "job_id": row.job_id,
        "object_index": row.object_index,
        "ref": row.ref,
        "label": row.label,
        "confidence": row.confidence,
        "box": row.box,
        "status": row.status,
        "note": row.note,
        "reviewer": row.reviewer,
        "created_at": row.created_at.isoformat(),
        "decided_at": row.decided_at.isoformat() if row.decided_at else None,
    }
