"""Signed webhook delivery with retries and exponential backoff.

Signature: ``X-OpenSight-Signature: sha256=<hex HMAC-SHA256(secret, f"{timestamp}.{body}")>``
with the calling key's secret, and ``X-OpenSight-Timestamp`` (unix seconds).
The receiving side checks it with :func:`verify_signature` (also in the SDK).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from ..errors import OpenSightError
from ..netguard import FetchPolicy, guarded_request
from ..storage.tables import Job
from .model import utcnow
from .store import JobStore

log = logging.getLogger("opensight.webhooks")

SIGNATURE_HEADER = "X-OpenSight-Signature"
TIMESTAMP_HEADER = "X-OpenSight-Timestamp"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(
    secret: str, timestamp: str, body: bytes, signature: str, tolerance_seconds: float = 300
) -> bool:
    """Constant-time check of a delivery; refuses timestamps outside the tolerance."""
    try:
        age = abs(time.time() - float(timestamp))
    except ValueError:
        return False
    if age > tolerance_seconds:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature.strip())


class WebhookDispatcher:
    """Background threads that deliver due webhooks recorded on job rows."""

    def __init__(
        self,
        store: JobStore,
        render: Callable[[Job], dict[str, Any]],
        secret_for: Callable[[Job], str | None],
        policy: FetchPolicy,
        max_attempts: int = 6,
        backoff_seconds: float = 20.0,
        threads: int = 2,
        poll_seconds: float = 1.0,
    ) -> None:
        self.store = store
        self.render = render
        self.secret_for = secret_for
        self.policy = policy
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads = [
            threading.Thread(target=self._loop, name=f"opensight-webhook-{i}", daemon=True)
            for i in range(threads)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout)

    def notify(self) -> None:
        self._wake.set()

    def _loop(self) -> None:
        lease = self.policy.read_timeout + self.policy.connect_timeout + 30
        while not self._stop.is_set():
            try:
                job = self.store.claim_webhook(lease)
            except Exception:
                log.exception("claiming a webhook failed")
                job = None
            if job is None:
                self._wake.wait(self.poll_seconds)
                self._wake.clear()
                continue
            self.deliver(job)

    def deliver(self, job: Job) -> bool:
        attempt_no = len(job.webhook_attempts or []) + 1
        body = json.dumps(self.render(job), separators=(",", ":"), default=str).encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: timestamp,
            "X-OpenSight-Job": job.id,
            "X-OpenSight-Attempt": str(attempt_no),
        }
        secret = self.secret_for(job)
        if secret:
            headers[SIGNATURE_HEADER] = sign(secret, timestamp, body)
        started = time.perf_counter()
        attempt: dict[str, Any] = {"attempt": attempt_no, "at": utcnow().isoformat()}
        delivered = False
        try:
            with guarded_request(
                "POST",
                job.webhook_url or "",
                self.policy,
                content=body,
                headers=headers,
                follow_redirects=False,
            ) as response:
                attempt["status_code"] = response.status_code
                delivered = 200 <= response.status_code < 300
                if not delivered:
                    attempt["error"] = f"HTTP {response.status_code}"
        except OpenSightError as exc:
            attempt["error"] = exc.detail
        except Exception as exc:  # never let one receiver kill the thread
            attempt["error"] = f"{type(exc).__name__}: {exc}"
        attempt["duration_ms"] = round((time.perf_counter() - started) * 1000, 1)
        next_at = None
        if not delivered and attempt_no < self.max_attempts:
            next_at = utcnow() + timedelta(seconds=self.backoff_seconds * 2 ** (attempt_no - 1))
        self.store.record_webhook(job.id, attempt, delivered, next_at)
        return delivered
