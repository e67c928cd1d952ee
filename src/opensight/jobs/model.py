"""Job statuses and ids."""

from __future__ import annotations

import os
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


def new_id(prefix: str) -> str:
    """Time-ordered id: sorting ids sorts by creation (cursor pagination needs no clock column)."""
    return f"{prefix}_{int(time.time() * 1000):012x}{os.urandom(6).hex()}"


def utcnow() -> datetime:
    return datetime.now(UTC)
