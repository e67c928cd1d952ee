"""Per-key token buckets, in memory (one bucket set per API process)."""

from __future__ import annotations

import threading
import time


class TokenBuckets:
    def __init__(self, rate_per_second: float, burst: int) -> None:
        self.rate = rate_per_second
        self.burst = max(1, burst)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, key: str, cost: float = 1.0) -> float:
        """Spend ``cost`` tokens; return 0 when allowed, else seconds until it would be."""
        if not self.enabled:
            return 0.0
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens >= cost:
                self._buckets[key] = (tokens - cost, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (cost - tokens) / self.rate

    def level(self, key: str) -> float:
        """Tokens ``key`` has now (``burst`` when unseen), without spending any: for quota replies."""
        if not self.enabled:
            return float(self.burst)
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.burst), now))
            return min(float(self.burst), tokens + (now - last) * self.rate)
