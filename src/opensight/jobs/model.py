"""Job statuses and ids."""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime
from enum import StrEnum


class JobStatus(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    SKIPPED = "skipped"
    FAILED = "failed"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"


FINAL_STATUSES = frozenset(
    {
        JobStatus.COMPLETED,
        JobStatus.SKIPPED,
        JobStatus.FAILED,
        JobStatus.TIMEOUT,
        JobStatus.CANCELLED,
    }
)
RETRYABLE_STATUSES = frozenset({JobStatus.TIMEOUT, JobStatus.FAILED})


_last_tick = 0
_tick_lock = threading.Lock()


def new_id(prefix: str) -> str:
    """Time-ordered id: sorting ids sorts by creation (cursor pagination needs no clock column).

    Microseconds, strictly increasing within a process, then random bits so that
    ids made by several processes never collide.
    """
    global _last_tick
    with _tick_lock:
        tick = max(time.time_ns() // 1000, _last_tick + 1)
        _last_tick = tick
    return f"{prefix}_{tick:014x}{os.urandom(5).hex()}"


def utcnow() -> datetime:
    return datetime.now(UTC)
