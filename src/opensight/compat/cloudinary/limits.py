"""Cloudinary's ``limits`` object from the key's native token bucket.

OpenSight has one quota per key: a token bucket of ``rate_limit_burst`` requests refilled at
``rate_limit_per_second`` (shared with the native API). It is reported as one item: ``limit``
the bucket size, ``remaining`` whole tokens left, ``used_by_request`` 1, ``reset_time`` when
the bucket is full again. ``type`` is the SDK's quota family of the analyzer called. With rate
limiting off there is no quota, and ``limits`` is null.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol


class Buckets(Protocol):
    rate: float
    burst: int

    @property
    def enabled(self) -> bool: ...

    def level(self, key: str) -> float: ...

    def take(self, key: str, cost: float = 1.0) -> float: ...


def limits(buckets: Buckets, key_id: str, limit_type: str, used: int = 1) -> dict[str, Any] | None:
    if not buckets.enabled:
        return None
    level = max(0.0, buckets.level(key_id))
    reset = datetime.now(UTC) + timedelta(seconds=(buckets.burst - level) / buckets.rate)
    return {
        "items": [
            {
                "type": limit_type,
                "used_by_request": used,
                "remaining": math.floor(level),
                "limit": buckets.burst,
                "reset_time": reset.isoformat(timespec="seconds").replace("+00:00", "Z"),
            }
        ]
    }
