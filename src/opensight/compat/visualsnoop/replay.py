"""What replay protection VSHMAC allows without breaking the official client.

A VSHMAC signature covers method, path and a one-second Date -- not the body, not the
query, no nonce. The official client therefore sends *identical* signatures for two
legitimate calls in the same second (two ``add_image`` uploads, two searches), so
"every signature once" would refuse real traffic. What does hold: a legitimate
client only repeats a signature within the second it was made. This guard remembers
when each signature was first seen and refuses it once ``grace_seconds`` have
passed, which shrinks a captured signature's usefulness from the ±15-minute Date
window to a few seconds.

The memory is per process (a server, or each API node in scale-out mode) and bounded:
past ``max_entries`` the oldest signatures are forgotten early.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

#: How far a request's Date may be from the server's clock, either way.
MAX_SKEW_SECONDS = 15 * 60
#: So one signature is accepted during at most this long.
SIGNATURE_LIFETIME_SECONDS = 2 * MAX_SKEW_SECONDS


class ReplayGuard:
    def __init__(
        self,
        grace_seconds: float = 5.0,
        lifetime_seconds: float = SIGNATURE_LIFETIME_SECONDS,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.grace_seconds = grace_seconds
        self.lifetime_seconds = lifetime_seconds
        self.max_entries = max_entries
        self.clock = clock
        self._first_seen: OrderedDict[bytes, float] = OrderedDict()
        self._lock = threading.Lock()

    def admit(self, public_key: str, signature: str) -> bool:
        """True for a new signature, or a repeat within ``grace_seconds`` of its first use."""
        digest = hashlib.blake2b(f"{public_key}\0{signature}".encode(), digest_size=16).digest()
        now = self.clock()
        with self._lock:
            self._forget(now)
            first = self._first_seen.get(digest)
            if first is None:
                self._first_seen[digest] = now
                while len(self._first_seen) > self.max_entries:
                    self._first_seen.popitem(last=False)
                return True
            return now - first <= self.grace_seconds

    def _forget(self, now: float) -> None:
        """Signatures older than their Date can be are refused by the clock check anyway."""
        seen = self._first_seen
        while seen and now - next(iter(seen.values())) > self.lifetime_seconds:
            seen.popitem(last=False)
