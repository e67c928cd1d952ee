"""The in-process worker pool of the embedded mode.

Threads claim jobs from the store, run them through an injected ``runner`` (the
job layer knows neither HTTP nor models), and write the outcome. A heartbeat
renews the leases of jobs in flight, so a lease only expires when the process
holding it is gone.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import OpenSightError
from ..storage.tables import Job
from .model import JobStatus
from .store import JobStore

log = logging.getLogger("opensight.jobs")


@dataclass
class JobOutcome:
    status: JobStatus
    result: dict[str, Any] | None = None
    reason: str | None = None
    error: dict[str, Any] | None = None


Runner = Callable[[Job], JobOutcome]


class WorkerPool:
    def __init__(
        self,
        store: JobStore,
        runner: Runner,
        workers: int = 2,
        lease_seconds: float = 60.0,
        poll_seconds: float = 1.0,
        on_finished: Callable[[Job, JobOutcome], None] | None = None,
    ) -> None:
        self.store = store
        self.runner = runner
        self.size = max(0, workers)
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self.on_finished = on_finished
        self.worker_id = f"{os.uname().nodename[:20]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._wake = threading.Condition()
        self._pending_wakeups = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._in_flight: set[str] = set()
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- control
    def start(self) -> None:
        for index in range(self.size):
            thread = threading.Thread(
                target=self._loop, name=f"opensight-worker-{index}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        if self.size:
            beat = threading.Thread(target=self._heartbeat, name="opensight-heartbeat", daemon=True)
            beat.start()
            self._threads.append(beat)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        with self._wake:
            self._wake.notify_all()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()

    def notify(self, count: int = 1) -> None:
        """A job was submitted: wake idle workers now instead of at the next poll."""
        with self._wake:
            self._pending_wakeups += count
            self._wake.notify(count)

    def alive(self) -> bool:
        workers = [t for t in self._threads if t.name.startswith("opensight-worker")]
        return len(workers) == self.size and all(t.is_alive() for t in workers)

    @property
    def busy(self) -> int:
        with self._lock:
            return len(self._in_flight)

    # ------------------------------------------------------------------ loops
    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                job = self.store.claim(self.worker_id, self.lease_seconds)
            except Exception:  # database hiccup: back off, never die
                log.exception("claiming a job failed")
                self._stop.wait(self.poll_seconds)
                continue
            if job is None:
                with self._wake:
                    if self._pending_wakeups == 0:
                        self._wake.wait(self.poll_seconds)
                    self._pending_wakeups = max(0, self._pending_wakeups - 1)
                continue
            self._run(job)

    def _run(self, job: Job) -> None:
        with self._lock:
            self._in_flight.add(job.id)
        try:
            try:
                outcome = self.runner(job)
            except Exception as exc:  # the runner maps known errors; this is a bug guard
                log.exception("job %s crashed", job.id)
                outcome = JobOutcome(
                    JobStatus.FAILED,
                    error=OpenSightError(f"{type(exc).__name__}: {exc}").problem(),
                )
            written = self.store.finish(
                job.id,
                self.worker_id,
                outcome.status,
                result=outcome.result,
                reason=outcome.reason,
                error=outcome.error,
            )
            if written and self.on_finished:
                self.on_finished(job, outcome)
        except Exception:
            log.exception(
                "finishing job %s failed; its lease will expire and it will rerun", job.id
            )
        finally:
            with self._lock:
                self._in_flight.discard(job.id)

    def _heartbeat(self) -> None:
        interval = max(0.5, self.lease_seconds / 3)
        while not self._stop.wait(interval):
            with self._lock:
                held = list(self._in_flight)
            for job_id in held:
                try:
                    self.store.renew(job_id, self.worker_id, self.lease_seconds)
                except Exception:
                    log.exception("renewing the lease of %s failed", job_id)
