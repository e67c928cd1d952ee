"""Scale-out dispatch: the broker carries job ids; the job row decides who runs a job.

Delivery over the broker is at least once: a message can arrive twice (a worker
died before acknowledging it, a sweeper sent it again) or never (a broker lost
it). Neither matters because

* a worker **claims the row by id** before running it (one conditional update
  under a row lock): a second delivery finds it held by a live lease or finished
  and returns without touching it, and ``finish`` only writes for the lease holder;
* a **sweeper** in every worker process puts jobs whose lease expired back to
  pending and sends them again, and re-sends old pending jobs when their queue is
  empty (a lost message), so nothing waits forever.

Webhooks are claimed from the row too (``JobStore.claim_webhook``), so they fire
once however many processes deliver them.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta

from sqlalchemy import select, update

from ..errors import OpenSightError, WorkerLost
from ..storage.db import Database
from ..storage.tables import Batch, Job
from .model import JobStatus, utcnow
from .store import MAX_ATTEMPTS, JobStore, NewJob
from .worker import JobOutcome, Runner

log = logging.getLogger("opensight.jobs")


class CeleryDispatcher:
    """Sends job ids to the queue their features need (``queue_for`` is injected:
    the job layer does not know which analyzers need a model)."""

    def __init__(self, broker_url: str, queue_for: Callable[[Sequence[str]], str]) -> None:
        from .celery_app import make_celery

        self.queue_for = queue_for
        self.app = make_celery(broker_url)

    def send(self, job_id: str, features: Sequence[str]) -> None:
        from .celery_app import send_job

        send_job(self.app, job_id, self.queue_for(features))

    def send_all(self, jobs: Iterable[tuple[str, Sequence[str]]]) -> int:
        """Send each job; returns how many were sent.

        A failure is logged, not raised: the rows exist and the sweeper resends them.
        After one failure the rest are left to it too, so a batch does not wait out the
        broker's connection retries once per job.
        """
        sent = 0
        pending = list(jobs)
        for job_id, features in pending:
            try:
                self.send(job_id, features)
                sent += 1
            except Exception as exc:
                log.warning(
                    "sending job %s to the broker failed (%s); %d job(s) left to the sweeper",
                    job_id,
                    type(exc).__name__,
                    len(pending) - sent,
                )
                break
        return sent

    def queue_depth(self, queue: str) -> int | None:
        from .celery_app import queue_depth

        return queue_depth(self.app, queue)

    def ping(self) -> bool:
        from .celery_app import ping_broker

        return ping_broker(self.app)

    def close(self) -> None:
        self.app.close()


class DispatchingJobStore(JobStore):
    """The job store of scale-out mode: every new or retried job is sent to the broker
    after its row is committed; workers claim rows by id."""

    def __init__(self, db: Database, dispatcher: CeleryDispatcher) -> None:
        super().__init__(db)
        self.dispatcher = dispatcher

    def create(self, spec: NewJob) -> tuple[Job, bool]:
        job, created = super().create(spec)
        if created:
            self.dispatcher.send_all([(job.id, job.features)])
        return job, created

    def create_batch(self, tenant_id: str, features: list[str], specs: Sequence[NewJob]) -> Batch:
        batch = super().create_batch(tenant_id, features, specs)
        self.dispatcher.send_all((job.id, job.features) for job in self.iter_batch(batch.id))
        return batch

    def retry(self, job_id: str, tenant_id: str | None) -> Job:
        job = super().retry(job_id, tenant_id)
        self.dispatcher.send_all([(job.id, job.features)])
        return job

    # ----------------------------------------------------------------- claim
    def claim_id(self, job_id: str, worker_id: str, lease_seconds: float) -> Job | None:
        """Claim this job if it is runnable (pending, or its holder's lease expired).

        None when it is held by a live lease, finished, unknown, or ended here because
        its ttl passed or its workers died too often -- the duplicate-delivery case.
        """
        now = utcnow()
        with self.db.session() as session:
            job = session.scalar(select(Job).where(Job.id == job_id).with_for_update())
            if job is None:
                return None
            expired = job.lease_expires_at is not None and job.lease_expires_at < now
            if not (
                job.status == JobStatus.PENDING or (job.status == JobStatus.PROCESSING and expired)
            ):
                return None
            if job.expires_at is not None and job.expires_at <= now:
                self._end(
                    session, job, JobStatus.TIMEOUT, now, reason="ttl passed before the job ran"
                )
                return None
            if job.attempts >= MAX_ATTEMPTS:
                self._end(
                    session,
                    job,
                    JobStatus.FAILED,
                    now,
                    error=WorkerLost(
                        f"the worker processing this job stopped {MAX_ATTEMPTS} times"
                    ).problem(),
                )
                return None
            job.status = JobStatus.PROCESSING
            job.lease_owner = worker_id
            job.lease_expires_at = now + timedelta(seconds=lease_seconds)
            job.started_at = job.started_at or now
            job.attempts = job.attempts + 1
            session.flush()
            return job

    # ----------------------------------------------------------------- sweep
    def requeue_expired(self, limit: int = 1000) -> list[tuple[str, list[str]]]:
        """Put jobs whose holder's lease expired back to pending; each row is won by one
        sweeper (the conditional update re-checks under the row lock)."""
        now = utcnow()
        with self.db.session() as session:
            ids = list(
                session.scalars(
                    select(Job.id)
                    .where(Job.status == JobStatus.PROCESSING, Job.lease_expires_at < now)
                    .order_by(Job.lease_expires_at)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            )
            if not ids:
                return []
            rows = session.execute(
                update(Job)
                .where(
                    Job.id.in_(ids),
                    Job.status == JobStatus.PROCESSING,
                    Job.lease_expires_at < now,
                )
                .values(status=JobStatus.PENDING, lease_owner=None, lease_expires_at=None)
                .returning(Job.id, Job.features)
            )
            return [(str(job_id), list(features)) for job_id, features in rows]

    def stale_pending(self, older_than: float, limit: int = 1000) -> list[tuple[str, list[str]]]:
        cutoff = utcnow() - timedelta(seconds=older_than)
        with self.db.read() as session:
            rows = session.execute(
                select(Job.id, Job.features)
                .where(Job.status == JobStatus.PENDING, Job.created_at < cutoff)
                .order_by(Job.created_at)
                .limit(limit)
            )
            return [(str(job_id), list(features)) for job_id, features in rows]


def worker_name() -> str:
    """host-pid-random: unique per process, and the pid shows which process held a job."""
    return f"{os.uname().nodename[:20]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class TaskExecutor:
    """Runs delivered job ids in the worker's threads: claim, run, finish once.

    A heartbeat renews the leases of jobs in flight, so a lease expires only when
    the process holding it is gone.
    """

    def __init__(
        self,
        store: DispatchingJobStore,
        runner: Runner,
        lease_seconds: float = 60.0,
        on_finished: Callable[[Job, JobOutcome], None] | None = None,
    ) -> None:
        self.store = store
        self.runner = runner
        self.lease_seconds = lease_seconds
        self.on_finished = on_finished
        self.worker_id = worker_name()
        self._in_flight: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def start(self) -> None:
        self._beat = threading.Thread(target=self._heartbeat, name="opensight-lease", daemon=True)
        self._beat.start()

    def stop(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join(5)

    def alive(self) -> bool:
        return self._beat is not None and self._beat.is_alive()

    def execute(self, job_id: str) -> str:
        """One delivery of ``job_id``; returns what happened (for Celery's log)."""
        job = self.store.claim_id(job_id, self.worker_id, self.lease_seconds)
        if job is None:
            return "not runnable (held, finished or unknown)"
        with self._lock:
            self._in_flight.add(job.id)
        try:
            try:
                outcome = self.runner(job)
            except Exception as exc:  # the runner maps known errors; this guards bugs
                log.exception("job %s crashed", job.id)
                outcome = JobOutcome(
                    JobStatus.FAILED, error=OpenSightError(f"{type(exc).__name__}: {exc}").problem()
                )
            written = self.store.finish(
                job.id,
                self.worker_id,
                outcome.status,
                result=outcome.result,
                reason=outcome.reason,
                error=outcome.error,
            )
        finally:
            with self._lock:
                self._in_flight.discard(job.id)
        if not written:
            log.warning("job %s: lease lost before finishing; its result was discarded", job.id)
            return "lease lost"
        # One line per written outcome: operators (and the scale-out test) count these.
        log.info(
            "finished job %s status=%s attempt=%d worker=%s",
            job.id,
            outcome.status,
            job.attempts,
            self.worker_id,
        )
        if self.on_finished is not None:
            try:
                self.on_finished(job, outcome)
            except Exception:
                log.exception("after-finish hook of job %s failed", job.id)
        return str(outcome.status)

    def _heartbeat(self) -> None:
        interval = max(0.2, self.lease_seconds / 3)
        while not self._stop.wait(interval):
            with self._lock:
                held = list(self._in_flight)
            for job_id in held:
                try:
                    self.store.renew(job_id, self.worker_id, self.lease_seconds)
                except Exception:
                    log.exception("renewing the lease of %s failed", job_id)


class Sweeper:
    """Re-sends what the broker will not: jobs of dead workers and lost messages.

    Every worker process runs one; two sweepers at once only cause duplicate
    messages, which the claim turns into no-ops.
    """

    def __init__(
        self,
        store: DispatchingJobStore,
        interval: float = 15.0,
        redispatch_after: float = 60.0,
    ) -> None:
        self.store = store
        self.dispatcher = store.dispatcher
        self.interval = interval
        self.redispatch_after = redispatch_after
        self._recent: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="opensight-sweeper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.sweep()
            except Exception:
                log.exception("sweeping jobs failed")
            # jitter: sweepers of many workers spread out instead of firing together
            self._stop.wait(self.interval * random.uniform(0.8, 1.2))

    def sweep(self) -> dict[str, int]:
        """One pass; returns how many jobs were requeued and resent."""
        expired = self.store.requeue_expired()
        if expired:
            log.info("requeued %d job(s) whose worker stopped", len(expired))
        resent = self.dispatcher.send_all(expired)
        now = time.monotonic()
        self._recent = {k: t for k, t in self._recent.items() if now - t < self.redispatch_after}
        recent = {job_id for job_id, _ in expired}
        by_queue: dict[str, list[tuple[str, list[str]]]] = {}
        for job_id, features in self.store.stale_pending(self.redispatch_after):
            if job_id not in recent and job_id not in self._recent:
                by_queue.setdefault(self.dispatcher.queue_for(features), []).append(
                    (job_id, features)
                )
        lost = 0
        for queue, jobs in by_queue.items():
            # Old pending jobs while their queue is empty: their messages are gone
            # (or reserved by a worker, where a duplicate is harmless).
            if self.dispatcher.queue_depth(queue) in (0, None):
                lost += self.dispatcher.send_all(jobs)
                self._recent.update((job_id, now) for job_id, _ in jobs)
        if lost:
            log.info("resent %d pending job(s) whose message was lost", lost)
        return {"requeued": len(expired), "resent": resent + lost}
