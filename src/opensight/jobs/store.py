"""The job table is the truth: every state change is one conditional UPDATE.

A worker *claims* a job by moving it from ``pending`` (or ``processing`` with an
expired lease) to ``processing`` under its own name with a lease. It can only
*finish* a job it still holds (``WHERE lease_owner = me AND status =
'processing'``), so a result is written once even when a lease expired and the
job was handed to another worker meanwhile.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from ..errors import Conflict, NotFound, WorkerLost
from ..storage.db import Database
from ..storage.tables import Batch, Job
from .model import FINAL_STATUSES, RETRYABLE_STATUSES, JobStatus, new_id, utcnow

#: A job whose worker died this many times is failed instead of handed out again.
MAX_ATTEMPTS = 5
_JOB_COLUMNS = tuple(Job.__table__.columns)


@dataclass
class NewJob:
    tenant_id: str
    features: list[str]
    source: dict[str, Any]
    key_id: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    ttl_seconds: float | None = None
    webhook_url: str | None = None
    idempotency_key: str | None = None
    batch_id: str | None = None
    batch_index: int | None = None


class JobStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # ----------------------------------------------------------------- create
    def _row(self, spec: NewJob, now: datetime) -> Job:
        return Job(
            id=new_id("job"),
            tenant_id=spec.tenant_id,
            key_id=spec.key_id,
            status=JobStatus.PENDING,
            features=list(spec.features),
            source=spec.source,
            options=spec.options,
            created_at=now,
            ttl_seconds=spec.ttl_seconds,
            expires_at=now + timedelta(seconds=spec.ttl_seconds) if spec.ttl_seconds else None,
            attempts=0,
            idempotency_key=spec.idempotency_key,
            batch_id=spec.batch_id,
            batch_index=spec.batch_index,
            webhook_url=spec.webhook_url,
            webhook_attempts=[],
        )

    def create(self, spec: NewJob) -> tuple[Job, bool]:
        """Insert a pending job; with an idempotency key, return the earlier job instead."""
        if spec.idempotency_key:
            existing = self._by_idempotency_key(spec.tenant_id, spec.idempotency_key)
            if existing is not None:
                return existing, False
        row = self._row(spec, utcnow())
        values = {column.key: getattr(row, column.key) for column in _JOB_COLUMNS}
        try:
            # Core insert: the ORM's unit of work doubled the cost of a submission.
            with self.db.engine.begin() as connection:
                connection.execute(insert(Job), values)
        except IntegrityError:
            if spec.idempotency_key:  # lost a race with an identical request
                existing = self._by_idempotency_key(spec.tenant_id, spec.idempotency_key)
                if existing is not None:
                    return existing, False
            raise
        return row, True

    def _by_idempotency_key(self, tenant_id: str, key: str) -> Job | None:
        with self.db.read() as session:
            return session.scalar(
                select(Job).where(Job.tenant_id == tenant_id, Job.idempotency_key == key)
            )

    def create_batch(self, tenant_id: str, features: list[str], specs: Sequence[NewJob]) -> Batch:
        """Insert a batch and all its jobs in one transaction (all or nothing)."""
        now = utcnow()
        batch = Batch(
            id=new_id("bat"),
            tenant_id=tenant_id,
            features=features,
            total=len(specs),
            created_at=now,
        )
        with self.db.session() as session:
            session.add(batch)
            for index, spec in enumerate(specs):
                spec.batch_id, spec.batch_index = batch.id, index
                session.add(self._row(spec, now))
        return batch

    # ------------------------------------------------------------------ reads
    def get(self, job_id: str, tenant_id: str | None = None) -> Job:
        with self.db.read() as session:
            job = session.get(Job, job_id)
        if job is None or (tenant_id is not None and job.tenant_id != tenant_id):
            raise NotFound(f"no job {job_id!r}")
        return job

    def list(
        self,
        tenant_id: str | None,
        status: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> tuple[list[Job], str | None]:
        """Newest first; ``cursor`` is the last id of the previous page."""
        query = select(Job).order_by(Job.id.desc()).limit(limit + 1)
        if tenant_id is not None:
            query = query.where(Job.tenant_id == tenant_id)
        if status:
            query = query.where(Job.status == status)
        if cursor:
            query = query.where(Job.id < cursor)
        with self.db.read() as session:
            jobs = list(session.scalars(query))
        more = len(jobs) > limit
        jobs = jobs[:limit]
        return jobs, (jobs[-1].id if more and jobs else None)

    def counts(self, tenant_id: str | None = None, batch_id: str | None = None) -> dict[str, int]:
        query = select(Job.status, func.count()).group_by(Job.status)
        if tenant_id is not None:
            query = query.where(Job.tenant_id == tenant_id)
        if batch_id is not None:
            query = query.where(Job.batch_id == batch_id)
        with self.db.read() as session:
            return {str(status): int(n) for status, n in session.execute(query)}

    def get_batch(self, batch_id: str, tenant_id: str | None = None) -> Batch:
        with self.db.read() as session:
            batch = session.get(Batch, batch_id)
        if batch is None or (tenant_id is not None and batch.tenant_id != tenant_id):
            raise NotFound(f"no batch {batch_id!r}")
        return batch

    def iter_batch(self, batch_id: str, page: int = 200) -> Iterator[Job]:
        """Jobs of a batch in submission order, read page by page."""
        last = -1
        while True:
            with self.db.read() as session:
                rows = list(
                    session.scalars(
                        select(Job)
                        .where(Job.batch_id == batch_id, Job.batch_index > last)
                        .order_by(Job.batch_index)
                        .limit(page)
                    )
                )
            if not rows:
                return
            yield from rows
            last = rows[-1].batch_index or 0

    # ------------------------------------------------------------- lifecycle
    def claim(self, worker_id: str, lease_seconds: float) -> Job | None:
        """Take the oldest runnable job, or None. Jobs past their ttl end as timeout."""
        while True:
            now = utcnow()
            with self.db.session() as session:
                candidate = session.scalar(
                    select(Job)
                    .where(
                        or_(
                            Job.status == JobStatus.PENDING,
                            and_(Job.status == JobStatus.PROCESSING, Job.lease_expires_at < now),
                        )
                    )
                    .order_by(Job.created_at, Job.id)
                    .limit(1)
                    .with_for_update(skip_locked=True)
                )
                if candidate is None:
                    return None
                if candidate.expires_at is not None and candidate.expires_at <= now:
                    self._end(
                        session,
                        candidate,
                        JobStatus.TIMEOUT,
                        now,
                        reason="ttl passed before the job ran",
                    )
                    continue
                if candidate.attempts >= MAX_ATTEMPTS:
                    self._end(
                        session,
                        candidate,
                        JobStatus.FAILED,
                        now,
                        error=WorkerLost(
                            f"the worker processing this job stopped {MAX_ATTEMPTS} times"
                        ).problem(),
                    )
                    continue
                candidate.status = JobStatus.PROCESSING
                candidate.lease_owner = worker_id
                candidate.lease_expires_at = now + timedelta(seconds=lease_seconds)
                candidate.started_at = candidate.started_at or now
                candidate.attempts = candidate.attempts + 1
                session.flush()
                return candidate

    def renew(self, job_id: str, worker_id: str, lease_seconds: float) -> bool:
        with self.db.session() as session:
            result = session.execute(
                update(Job)
                .where(
                    Job.id == job_id,
                    Job.lease_owner == worker_id,
                    Job.status == JobStatus.PROCESSING,
                )
                .values(lease_expires_at=utcnow() + timedelta(seconds=lease_seconds))
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def finish(
        self,
        job_id: str,
        worker_id: str,
        status: JobStatus,
        result: dict[str, Any] | None = None,
        reason: str | None = None,
        error: dict[str, Any] | None = None,
    ) -> bool:
        """Write the outcome if this worker still holds the job. True when written."""
        now = utcnow()
        with self.db.session() as session:
            job = session.scalar(
                select(Job)
                .where(
                    Job.id == job_id,
                    Job.lease_owner == worker_id,
                    Job.status == JobStatus.PROCESSING,
                )
                .with_for_update()
            )
            if job is None:
                return False
            if (
                status in (JobStatus.COMPLETED, JobStatus.SKIPPED)
                and job.expires_at
                and job.expires_at <= now
            ):
                status, result, reason = JobStatus.TIMEOUT, None, "ttl passed before the job ended"
            self._end(session, job, status, now, result=result, reason=reason, error=error)
            return True

    def release(self, job_id: str, worker_id: str) -> None:
        """Hand a held job back untouched (worker shutting down)."""
        with self.db.session() as session:
            session.execute(
                update(Job)
                .where(
                    Job.id == job_id,
                    Job.lease_owner == worker_id,
                    Job.status == JobStatus.PROCESSING,
                )
                .values(
                    status=JobStatus.PENDING,
                    lease_owner=None,
                    lease_expires_at=None,
                    attempts=Job.attempts - 1,
                )
            )

    @staticmethod
    def _end(
        session: Any,
        job: Job,
        status: JobStatus,
        now: datetime,
        *,
        result: dict[str, Any] | None = None,
        reason: str | None = None,
        error: dict[str, Any] | None = None,
    ) -> None:
        job.status = status
        job.result = result
        job.reason = reason
        job.error = error
        job.finished_at = now
        job.lease_owner = None
        job.lease_expires_at = None
        if job.webhook_url:
            job.webhook_status = "pending"
            job.webhook_next_at = now

    def cancel(self, job_id: str, tenant_id: str | None) -> Job:
        now = utcnow()
        with self.db.session() as session:
            job = session.get(Job, job_id, with_for_update=True)
            if job is None or (tenant_id is not None and job.tenant_id != tenant_id):
                raise NotFound(f"no job {job_id!r}")
            if job.status != JobStatus.PENDING:
                raise Conflict(f"job {job_id} is {job.status}; only pending jobs can be cancelled")
            self._end(session, job, JobStatus.CANCELLED, now, reason="cancelled by the caller")
            return job

    def retry(self, job_id: str, tenant_id: str | None) -> Job:
        now = utcnow()
        with self.db.session() as session:
            job = session.get(Job, job_id, with_for_update=True)
            if job is None or (tenant_id is not None and job.tenant_id != tenant_id):
                raise NotFound(f"no job {job_id!r}")
            if job.status not in RETRYABLE_STATUSES:
                raise Conflict(
                    f"job {job_id} is {job.status}; only failed or timed-out jobs can be retried"
                )
            job.status = JobStatus.PENDING
            job.result = job.reason = job.error = None
            job.finished_at = job.started_at = None
            job.attempts = 0
            job.expires_at = now + timedelta(seconds=job.ttl_seconds) if job.ttl_seconds else None
            job.webhook_status = None
            job.webhook_next_at = None
            return job

    def requeue_all_processing(self) -> int:
        """Embedded start-up: this process owns the data dir, so every held job is orphaned."""
        with self.db.session() as session:
            result = session.execute(
                update(Job)
                .where(Job.status == JobStatus.PROCESSING)
                .values(status=JobStatus.PENDING, lease_owner=None, lease_expires_at=None)
            )
            return int(result.rowcount)  # type: ignore[attr-defined]

    def pending_count(self) -> int:
        with self.db.read() as session:
            return int(
                session.scalar(
                    select(func.count()).select_from(Job).where(Job.status == JobStatus.PENDING)
                )
                or 0
            )

    # --------------------------------------------------------------- webhooks
    def claim_webhook(self, lease_seconds: float) -> Job | None:
        """Take one job whose webhook is due; push its next time out while we deliver."""
        now = utcnow()
        with self.db.session() as session:
            job = session.scalar(
                select(Job)
                .where(Job.webhook_status == "pending", Job.webhook_next_at <= now)
                .order_by(Job.webhook_next_at)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
            if job is None:
                return None
            job.webhook_next_at = now + timedelta(seconds=lease_seconds)
            session.flush()
            return job

    def record_webhook(
        self, job_id: str, attempt: dict[str, Any], delivered: bool, next_at: datetime | None
    ) -> None:
        with self.db.session() as session:
            job = session.get(Job, job_id, with_for_update=True)
            if job is None or job.webhook_status != "pending":
                return
            job.webhook_attempts = [*list(job.webhook_attempts or []), attempt]
            if delivered:
                job.webhook_status, job.webhook_next_at = "delivered", None
            elif next_at is None:
                job.webhook_status, job.webhook_next_at = "failed", None
            else:
                job.webhook_next_at = next_at


__all__ = ["FINAL_STATUSES", "MAX_ATTEMPTS", "JobStore", "NewJob"]
