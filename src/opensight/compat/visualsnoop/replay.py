"""What replay protection VSHMAC allows without breaking the official client.

A VSHMAC signature covers method, path and a one-second Date -- not the body, not the
query, no nonce. The official client therefore sends *identical* signatures for two
legitimate calls in the same second (two ``add_image`` uploads, two searches), so
"every signature once" would refuse real traffic. What does hold: a legitimate
client only repeats a signature within the second it was made. This guard remembers
when each signature was first seen and refuses it once ``grace_seconds`` have
passed, which shrinks a captured signature's usefulness from the ±15-minute Date
window to a few seconds.

With a database (:meth:`ReplayGuard.admit` given ``db``, as the API does) the first
sighting is recorded there, so it holds across every API process of a scale-out
deployment: a signature first seen on another node is judged by *that* sighting.
A small per-process cache sits in front; it only ever holds first-seen times the
database confirmed (which never change), so answering from it is exactly what the
database would answer -- repeats and late replays cost no query, a new signature
costs one insert. Times are wall-clock times compared across nodes: their clocks
must agree to well under a second (NTP), as the Date check already assumes.

Without a database the memory is this process's only. Either way it is bounded:
past ``max_entries`` the oldest entries are forgotten early (with a database they are
then read again from it).
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from weakref import WeakKeyDictionary

from sqlalchemy.exc import SQLAlchemyError

from ...errors import ServiceUnavailable
from ...services.nonces import FirstSeenStore
from ...storage.db import Database

log = logging.getLogger("opensight.compat.visualsnoop")

#: How far a request's Date may be from the server's clock, either way.
MAX_SKEW_SECONDS = 15 * 60
#: So one signature is accepted during at most this long.
SIGNATURE_LIFETIME_SECONDS = 2 * MAX_SKEW_SECONDS
#: Database rows outlive that, with room for clocks of nodes that disagree.
STORED_SECONDS = SIGNATURE_LIFETIME_SECONDS + 5 * 60


def digest(public_key: str, signature: str) -> str:
    """What is remembered of a signature: a hash (holding it must not allow a replay)."""
    return hashlib.sha256(f"vshmac\0{public_key}\0{signature}".encode()).hexdigest()


class ReplayGuard:
    """First sightings of signatures: in this process, or (``store``) in a database."""

    def __init__(
        self,
        grace_seconds: float = 5.0,
        lifetime_seconds: float = SIGNATURE_LIFETIME_SECONDS,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.time,
        store: FirstSeenStore | None = None,
    ) -> None:
        self.grace_seconds = grace_seconds
        self.lifetime_seconds = lifetime_seconds
        self.max_entries = max_entries
        self.clock = clock
        self.store = store
        self._first_seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()
        self._shared: WeakKeyDictionary[Database, ReplayGuard] = WeakKeyDictionary()

    def admit(self, public_key: str, signature: str, db: Database | None = None) -> bool:
        """True for a new signature, or a repeat within ``grace_seconds`` of its first use.

        With ``db`` the first use is the first by any process sharing that database.
        """
        if db is not None:
            return self.for_database(db).admit(public_key, signature)
        now = self.clock()
        return now - self._first(digest(public_key, signature), now) <= self.grace_seconds

    def for_database(self, db: Database) -> ReplayGuard:
        """The guard (same settings, its own cache) whose memory is ``db``."""
        with self._lock:
            guard = self._shared.get(db)
            if guard is None:
                store = FirstSeenStore(db, keep_seconds=max(STORED_SECONDS, self.lifetime_seconds))
                guard = ReplayGuard(
                    self.grace_seconds, self.lifetime_seconds, self.max_entries, self.clock, store
                )
                self._shared[db] = guard
            return guard

    def _first(self, key: str, now: float) -> float:
        """When ``key`` was first seen (``now`` if never), from the cache or the store."""
        with self._lock:
            self._forget(now)
            first = self._first_seen.get(key)
            if first is not None:
                return first
            store = self.store
            if store is None:
                self._remember(key, now)
                return now
        first = self._stored_first(store, key, now)  # unlocked: the database settles races
        with self._lock:
            self._remember(key, first)
        return first

    def _stored_first(self, store: FirstSeenStore, key: str, now: float) -> float:
        try:
            seen = store.first_seen(key, datetime.fromtimestamp(now, UTC))
        except SQLAlchemyError:
            log.exception("the VSHMAC replay memory (database) failed")
            raise ServiceUnavailable(
                "the server cannot check this signature against replays right now; retry",
                retry_after=1,
            ) from None
        return -math.inf if seen is None else seen.timestamp()  # None: expired, long ago

    def _remember(self, key: str, first: float) -> None:
        self._first_seen[key] = first
        while len(self._first_seen) > self.max_entries:
            self._first_seen.popitem(last=False)

    def _forget(self, now: float) -> None:
        """Signatures older than their Date can be are refused by the clock check anyway."""
        seen = self._first_seen
        while seen and now - next(iter(seen.values())) > self.lifetime_seconds:
            seen.popitem(last=False)
