"""Dynamic batching: gather concurrent calls for one model into one inference.

Callers (worker threads, async API handlers) submit items; one dispatcher
thread per batcher takes up to ``max_batch_size`` items, runs them as one
batch and hands each caller its own results. It waits for as many items as
were in flight last time (the previous batch plus those left queued: callers
answered together tend to come back together), but never longer than
``max_wait_ms`` after the oldest item arrived. Under light load a caller runs
its batch in its own thread, so a lone caller pays no hand-off and no wait.
Requests are served round-robin, one item per request per turn, so a caller
with 500 images cannot starve a caller with one. The queue is bounded: when it
is full, ``submit`` raises ``Overloaded`` (503 with Retry-After) at once
instead of letting memory and latency grow.
"""

from __future__ import annotations

import _thread
import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from ..errors import Overloaded

In = TypeVar("In")
Out = TypeVar("Out")

log = logging.getLogger("opensight.runtime")


@dataclass(eq=False)
class _Request(Generic[In, Out]):
    """One caller's items. A blocking caller waits on ``signal``, a raw lock the batcher
    releases once (a ``Future`` costs a Condition and several lock hand-offs per call,
    which add up when 32 callers come back between two batches); an event loop awaits
    ``future``. ``closed`` (under the batcher's lock) is set once: answered or given up."""

    items: Sequence[In]
    enqueued_at: float
    future: Future[list[Out]] | None = None
    signal: Any = None
    results: list[Any] = field(default_factory=list)
    error: BaseException | None = None
    closed: bool = False
    next: int = 0
    """Index of the next item to hand to a batch."""
    done: int = 0

    @property
    def undispatched(self) -> int:
        return len(self.items) - self.next

    def answer(self, error: BaseException | None = None) -> None:
        """Hand the caller its results (or ``error``); the batcher's lock is held."""
        if self.closed:
            return
        self.closed = True
        self.error = error
        if self.future is not None:
            with contextlib.suppress(InvalidStateError):  # its caller gave up meanwhile
                if error is None:
                    self.future.set_result(self.results)
                else:
                    self.future.set_exception(error)
        else:
            self.signal.release()


@dataclass
class BatcherStats:
    batches: int = 0
    items: int = 0
    max_batch: int = 0
    rejected: int = 0
    max_depth: int = 0

    @property
    def mean_batch(self) -> float:
        return self.items / self.batches if self.batches else 0.0


class Batcher(Generic[In, Out]):
    """A bounded, fair batching queue in front of ``run_batch`` (one output per input)."""

    def __init__(
        self,
        run_batch: Callable[[list[In]], Sequence[Out]],
        *,
        max_batch_size: int = 16,
        max_wait_ms: float = 5.0,
        max_queue: int = 256,
        name: str = "batcher",
        idle_exit_seconds: float = 30.0,
    ) -> None:
        if max_batch_size < 1 or max_queue < 1 or max_wait_ms < 0:
            raise ValueError("max_batch_size and max_queue must be >= 1, max_wait_ms >= 0")
        self.run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self.name = name
        self.idle_exit_seconds = idle_exit_seconds
        self.stats = BatcherStats()
        self._cond = threading.Condition()
        self._requests: deque[_Request[In, Out]] = deque()
        self._pending = 0
        self._thread: threading.Thread | None = None
        self._closed = False
        self._expected = 1
        self._running = False
        """A batch is running (in the dispatcher or inline in a caller): one at a time."""
        """Items the next batch waits for: the size of the last one (adapts to the load)."""

    # ------------------------------------------------------------------ callers
    def submit(self, item: In, timeout: float | None = None) -> Out:
        """Run ``item`` in the next batch and block until its own result is ready."""
        return self.submit_many([item], timeout)[0]

    def submit_many(self, items: Sequence[In], timeout: float | None = None) -> list[Out]:
        """Run several items (possibly across batches); results come back in input order."""
        if not items:
            return []
        if self._claim_inline(len(items)):
            return self._run_inline(items)
        signal = _thread.allocate_lock()
        signal.acquire()
        request = self._enqueue(items, signal=signal)
        if not signal.acquire(timeout=-1 if timeout is None else max(0.0, timeout)):
            with self._cond:
                if not request.closed:  # not answered meanwhile: give up its place
                    request.closed = True
                    self._drop(request)
                    raise TimeoutError(f"no result from {self.name!r} in {timeout} s")
        if request.error is not None:
            raise request.error
        return request.results

    async def submit_async(self, item: In) -> Out:
        """``submit`` for event loops: waits without blocking the loop."""
        return (await self.submit_many_async([item]))[0]

    async def submit_many_async(self, items: Sequence[In]) -> list[Out]:
        if not items:
            return []
        request = self._enqueue(items, future=Future())
        assert request.future is not None
        try:
            return await asyncio.wrap_future(request.future)
        except asyncio.CancelledError:
            self._cancel(request)
            raise

    @property
    def depth(self) -> int:
        """Items waiting to be batched."""
        with self._cond:
            return self._pending

    def close(self) -> None:
        """Stop accepting work; items already queued still run, then the thread ends."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    # ----------------------------------------------------------------- internals
    def _claim_inline(self, count: int) -> bool:
        """Light load (nothing queued or running, last batch no bigger than this request):
        the caller runs its own batch in its own thread, sparing two thread hand-offs."""
        with self._cond:
            if (
                self._requests
                or self._running
                or self._closed
                or not self._expected <= count <= self.max_batch_size
            ):
                return False
            self._running = True
            return True

    def _run_inline(self, items: Sequence[In]) -> list[Out]:
        try:
            outputs = list(self.run_batch(list(items)))
            if len(outputs) != len(items):
                raise RuntimeError(
                    f"batch function of {self.name!r} returned {len(outputs)} results "
                    f"for {len(items)} inputs"
                )
            self._count(len(items))
            return outputs
        finally:
            with self._cond:
                self._running = False
                self._expected = len(items)
                self._cond.notify_all()

    def _count(self, size: int) -> None:
        self.stats.batches += 1
        self.stats.items += size
        self.stats.max_batch = max(self.stats.max_batch, size)

    def _enqueue(
        self, items: Sequence[In], *, signal: Any = None, future: Future[list[Out]] | None = None
    ) -> _Request[In, Out]:
        request: _Request[In, Out] = _Request(
            items=items,
            enqueued_at=time.monotonic(),
            future=future,
            signal=signal,
            results=[None] * len(items),
        )
        with self._cond:
            if self._closed:
                raise Overloaded(f"model batcher {self.name!r} is shut down", retry_after=1.0)
            # A request bigger than the whole queue is admitted only into an empty queue,
            # so it can always run eventually while memory stays bounded.
            if self._pending and self._pending + len(items) > self.max_queue:
                self.stats.rejected += 1
                raise Overloaded(
                    f"model batcher {self.name!r} is full ({self._pending} items queued, "
                    f"limit {self.max_queue}); retry later",
                    retry_after=max(1.0, self.max_wait * 2),
                )
            first = not self._requests
            self._requests.append(request)
            self._pending += len(items)
            self.stats.max_depth = max(self.stats.max_depth, self._pending)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name=f"batcher-{self.name}", daemon=True
                )
                self._thread.start()
            # Wake the dispatcher only when it has something to do: a first item (it
            # starts the max-wait clock) or a full gather. Under load 32 callers come
            # back per batch; waking it for each costs a thread switch and the GIL.
            if first or self._pending >= min(self.max_batch_size, self._expected):
                self._cond.notify_all()
        return request

    def _cancel(self, request: _Request[In, Out]) -> None:
        with self._cond:
            request.closed = True
            if request.future is not None:
                request.future.cancel()
            self._drop(request)

    def _drop(self, request: _Request[In, Out]) -> None:
        """Remove a finished/cancelled request's undispatched items (lock held)."""
        try:
            self._requests.remove(request)
        except ValueError:
            return
        self._pending -= request.undispatched
        request.next = len(request.items)

    def _loop(self) -> None:
        try:
            self._serve()
        finally:
            with self._cond:  # however it ended, the next submit starts a fresh thread
                if self._thread is threading.current_thread():
                    self._thread = None

    def _serve(self) -> None:
        while True:
            with self._cond:
                while not self._requests:
                    idle = self._closed or not self._cond.wait(self.idle_exit_seconds)
                    if idle and not self._requests:  # end the thread; restarted on demand
                        self._thread = None  # same lock hold as the check: no lost wake-up
                        return
                # Gather: until as many items as last time are here (at most a full batch),
                # or the oldest item has waited max_wait.
                target = min(self.max_batch_size, self._expected)
                deadline = self._requests[0].enqueued_at + self.max_wait
                while self._pending < target and not self._closed:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                while self._running:  # a caller is running its own batch inline
                    self._cond.wait()
                batch = self._take()
                # Callers in flight: this batch's plus those still queued; answered callers
                # tend to come back, so the next batch waits for about that many.
                self._expected = max(1, len(batch) + self._pending)
                self._running = bool(batch)
            if batch:
                try:
                    self._run(batch)
                finally:
                    with self._cond:
                        self._running = False
                        self._cond.notify_all()

    def _take(self) -> list[tuple[_Request[In, Out], int]]:
        """Up to max_batch_size items, round-robin over requests (lock held)."""
        taken: list[tuple[_Request[In, Out], int]] = []
        while len(taken) < self.max_batch_size and self._requests:
            request = self._requests.popleft()
            if request.closed:  # its caller gave up
                self._pending -= request.undispatched
                request.next = len(request.items)
                continue
            taken.append((request, request.next))
            request.next += 1
            self._pending -= 1
            if request.undispatched:
                self._requests.append(request)
        return taken

    def _run(self, batch: list[tuple[_Request[In, Out], int]]) -> None:
        items = [request.items[index] for request, index in batch]
        try:
            outputs = list(self.run_batch(items))
            if len(outputs) != len(items):
                raise RuntimeError(
                    f"batch function of {self.name!r} returned {len(outputs)} results "
                    f"for {len(items)} inputs"
                )
        except BaseException as exc:
            self._fail(batch, exc)
            if not isinstance(exc, Exception):
                raise
            return
        self._count(len(items))
        finished = []
        for (request, index), output in zip(batch, outputs, strict=True):
            request.results[index] = output
            request.done += 1
            if request.done == len(request.items):
                finished.append(request)
        with self._cond:  # one acquisition for the batch; ``closed`` is read under it
            for request in finished:
                request.answer()

    def _fail(self, batch: list[tuple[_Request[In, Out], int]], exc: BaseException) -> None:
        """Every caller with an item in the failed batch gets the error; their rest is dropped."""
        if isinstance(exc, Exception) and not hasattr(exc, "detail"):
            log.warning("batch of %s failed: %s: %s", self.name, type(exc).__name__, exc)
        with self._cond:
            for request in {request for request, _ in batch}:
                self._drop(request)
                request.answer(exc)
