"""The Celery side of scale-out mode: a message is one job id, nothing else.

The database row stays the truth (see :mod:`opensight.jobs.dispatch`): Celery only
wakes a worker up for a given job. Delivery is at least once (late acknowledgement,
re-queue when the worker is lost); the claim on the row makes the outcome exactly once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from celery import Celery

log = logging.getLogger("opensight.jobs")

RUN_TASK = "opensight.run_job"
"""The one task name; API processes send it by name, workers register it."""


def make_celery(
    broker_url: str, *, default_queue: str = "cpu", visibility_timeout: float = 3600.0
) -> Celery:
    """A Celery app configured for at-least-once delivery of job ids (JSON only, no results)."""
    app = Celery("opensight", broker=broker_url, set_as_current=False)
    app.conf.update(
        # A message is acknowledged after the task ran: a killed worker's message comes back.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # One message reserved per thread: a killed worker strands as few as possible.
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],  # never pickle: a broker message must not run code
        task_default_queue=default_queue,
        task_create_missing_queues=True,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": visibility_timeout},
        worker_hijack_root_logger=True,
        worker_redirect_stdouts=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,
    )
    return app


#: Tries of one delivery whose execution raised (database or blob store down).
MAX_TASK_RETRIES = 8


def register_run_task(app: Celery, execute: Callable[[str], str]) -> Any:
    """Register the worker's task: validate the id, then hand it to ``execute``.

    ``execute`` maps job errors to outcomes itself; what escapes is infrastructure
    (the database or the blob store unreachable), retried with backoff -- safe
    because a delivery is idempotent. After the last try the sweeper still resends it.
    """

    @app.task(
        name=RUN_TASK,
        bind=True,
        acks_late=True,
        reject_on_worker_lost=True,
        ignore_result=True,
        max_retries=MAX_TASK_RETRIES,
    )
    def run_job(self: Any, job_id: Any) -> str:
        if not isinstance(job_id, str) or not job_id.startswith("job_") or len(job_id) > 40:
            log.warning("ignoring a malformed task argument %r", str(job_id)[:60])
            return "malformed"
        try:
            return execute(job_id)
        except Exception as exc:
            retries = int(self.request.retries or 0)
            log.warning(
                "job %s: %s (try %d of %d)",
                job_id,
                type(exc).__name__,
                retries + 1,
                MAX_TASK_RETRIES + 1,
            )
            raise self.retry(exc=exc, countdown=min(60, 2**retries)) from None

    return run_job


def send_job(app: Celery, job_id: str, queue: str) -> None:
    app.send_task(RUN_TASK, args=[job_id], queue=queue, routing_key=queue)


def queue_depth(app: Celery, queue: str) -> int | None:
    """Messages waiting in ``queue`` (not those reserved by workers); None if unknown."""
    try:
        with app.connection_for_read() as connection:
            channel = connection.default_channel
            declared = channel.queue_declare(queue=queue, passive=True)
            return int(declared.message_count)
    except Exception as exc:
        # RabbitMQ answers NOT_FOUND for a queue nobody declared yet: nothing waits in it.
        if "NOT_FOUND" in str(exc) or "no queue" in str(exc).lower():
            return 0
        log.debug("queue depth of %s unknown: %s", queue, exc)
        return None


def ping_broker(app: Celery, timeout: float = 2.0) -> bool:
    try:
        with app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=timeout)
        return True
    except Exception:
        return False


def worker_argv(queues: Sequence[str], concurrency: int, loglevel: str, hostname: str) -> list[str]:
    """`celery worker` arguments: a thread pool, so one process keeps one copy of each model."""
    return [
        "worker",
        "--pool=threads",
        f"--concurrency={concurrency}",
        f"--queues={','.join(queues)}",
        f"--loglevel={loglevel}",
        f"--hostname={hostname}",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
