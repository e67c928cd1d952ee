"""Analysis requests: resolve a source, run the pipeline now, or queue a durable job."""

from __future__ import annotations

import base64
import binascii
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..analyzers import registry
from ..analyzers.pipeline import GATE_REASONS, Outcome, Pipeline
from ..config import Settings
from ..errors import OpenSightError, Overloaded, ValidationFailed
from ..images import DecodedImage, decode
from ..jobs.model import JobStatus
from ..jobs.store import JobStore, NewJob
from ..jobs.worker import JobOutcome
from ..netguard import FetchPolicy, fetch_bytes, resolve_checked
from ..storage.tables import Batch, Job
from .images import ImageService
from .keys import Principal

log = logging.getLogger("opensight.analysis")

OVERLOAD_PATIENCE_SECONDS = 120.0
"""How long a worker waits for a saturated model before failing a job with ``overloaded``."""


@dataclass
class Source:
    """Exactly one of: raw bytes (upload or base64), a URL, or a stored image id."""

    data: bytes | None = None
    url: str | None = None
    image_id: str | None = None

    @classmethod
    def from_fields(
        cls, *, url: str | None = None, image_id: str | None = None, base64_data: str | None = None
    ) -> Source:
        given = [
            name for name, v in (("url", url), ("image_id", image_id), ("base64", base64_data)) if v
        ]
        if len(given) != 1:
            raise ValidationFailed(
                "give exactly one image source: url, image_id or base64"
                + (f" (got {', '.join(given)})" if given else "")
            )
        if base64_data:
            return cls(data=decode_base64(base64_data))
        return cls(url=url, image_id=image_id)

    def describe(self) -> str:
        return self.url or self.image_id or "upload"


def decode_base64(value: str) -> bytes:
    if value.startswith("data:"):
        value = value.split(",", 1)[-1]
    try:
        return base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValidationFailed(f"base64 is not valid: {exc}") from exc


@dataclass
class AnalysisRequest:
    features: list[str]
    options: dict[str, Any] = field(default_factory=dict)
    skip_on: list[str] = field(default_factory=list)
    ttl_seconds: float | None = None
    webhook_url: str | None = None
    idempotency_key: str | None = None
    api: str | None = None
    """The API that made the request (``None`` for native); compat routers render by it."""
    api_data: dict[str, Any] | None = None
    """Foreign request fields a compat router needs later (request ids, locale, ...)."""

    def __post_init__(self) -> None:
        self.features = registry.normalize_features(self.features)
        bad = [r for r in self.skip_on if r not in GATE_REASONS]
        if bad:
            raise ValidationFailed(
                f"unknown skip_on reason(s) {bad}; allowed: {list(GATE_REASONS)}"
            )
        if self.ttl_seconds is not None and self.ttl_seconds <= 0:
            raise ValidationFailed("ttl must be a positive number of seconds")


class AnalysisService:
    def __init__(
        self,
        settings: Settings,
        images: ImageService,
        jobs: JobStore,
        pipeline: Pipeline,
        notify_workers: Callable[[int], None] = lambda n: None,
        on_retried: Callable[[Job], None] = lambda job: None,
    ) -> None:
        self.settings = settings
        self.images = images
        self.jobs = jobs
        self.pipeline = pipeline
        self.notify_workers = notify_workers
        self.on_retried = on_retried
        """Called with a job put back in the queue (a compat API may reopen what it ended)."""
        self.fetch_policy = FetchPolicy(
            allow_private=settings.allow_private_urls,
            connect_timeout=settings.url_connect_timeout,
            read_timeout=settings.url_read_timeout,
            max_redirects=settings.url_max_redirects,
            max_bytes=settings.max_upload_bytes,
        )

    # ------------------------------------------------------------------ sync
    def load(self, tenant_id: str, source: Source) -> DecodedImage:
        if source.data is not None:
            return decode(source.data, self.images.limits)
        if source.image_id is not None:
            return self.images.load(tenant_id, source.image_id)
        assert source.url is not None
        return decode(
            fetch_bytes(source.url, self.fetch_policy), self.images.limits, source=source.url
        )

    def analyze_now(
        self, principal: Principal, source: Source, request: AnalysisRequest
    ) -> dict[str, Any]:
        """Run the pipeline in the caller's thread: the fast path for sync calls."""
        image = self.load(principal.tenant_id, source)
        outcome = self.pipeline.run_one(image, request.features, request.options, request.skip_on)
        body: dict[str, Any] = {
            "status": outcome.status,
            "features": request.features,
            "image": image.info(),
            "result": outcome.results,
        }
        if outcome.skipped_reason:
            body["reason"] = outcome.skipped_reason
        return body

    # ----------------------------------------------------------------- async
    def _job_source(self, principal: Principal, source: Source) -> dict[str, Any]:
        """Persist what the job needs: uploaded bytes become a stored image; URLs are checked now."""
        if source.data is not None:
            row, _ = self.images.store(principal.tenant_id, source.data, full_check=False)
            return {"image_id": row.id}
        if source.image_id is not None:
            self.images.require(principal.tenant_id, source.image_id)
            return {"image_id": source.image_id}
        assert source.url is not None
        if len(source.url) > 4096:
            raise ValidationFailed("the URL is longer than 4096 characters")
        resolve_checked(source.url, self.fetch_policy)
        return {"url": source.url}

    def _check_webhook(self, url: str | None) -> None:
        if url:
            if len(url) > 4096:
                raise ValidationFailed("webhook_url is longer than 4096 characters")
            resolve_checked(url, self.fetch_policy)

    def _spec(
        self, principal: Principal, source: dict[str, Any], request: AnalysisRequest
    ) -> NewJob:
        ttl = request.ttl_seconds or self.settings.default_ttl_seconds
        return NewJob(
            tenant_id=principal.tenant_id,
            key_id=principal.key_id,
            features=request.features,
            source=source,
            options=_job_options(request),
            ttl_seconds=ttl,
            webhook_url=request.webhook_url,
            idempotency_key=request.idempotency_key,
        )

    def submit(
        self, principal: Principal, source: Source, request: AnalysisRequest
    ) -> tuple[Job, bool]:
        """Queue a durable job; returns (job, created). A repeat idempotency key returns the first."""
        if request.idempotency_key:
            if len(request.idempotency_key) > 200:
                raise ValidationFailed("Idempotency-Key is longer than 200 characters")
            existing = self.jobs._by_idempotency_key(principal.tenant_id, request.idempotency_key)
            if existing is not None:
                return existing, False
        self._check_webhook(request.webhook_url)
        spec = self._spec(principal, self._job_source(principal, source), request)
        job, created = self.jobs.create(spec)
        if created:
            self.notify_workers(1)
        return job, created

    def submit_batch(
        self, principal: Principal, sources: Sequence[Source], request: AnalysisRequest
    ) -> Batch:
        if not sources:
            raise ValidationFailed("a batch needs at least one source")
        if len(sources) > self.settings.max_batch_sources:
            raise ValidationFailed(
                f"a batch takes at most {self.settings.max_batch_sources} sources, "
                f"got {len(sources)}"
            )
        self._check_webhook(request.webhook_url)
        specs = []
        for index, source in enumerate(sources):
            try:
                specs.append(self._spec(principal, self._job_source(principal, source), request))
            except OpenSightError as exc:
                exc.detail = f"source {index}: {exc.detail}"
                raise
        batch = self.jobs.create_batch(principal.tenant_id, request.features, specs)
        self.notify_workers(len(specs))
        return batch

    def retry(self, principal: Principal, job_id: str) -> Job:
        """Put a failed or timed-out job back in the queue and wake a worker."""
        job = self.jobs.retry(job_id, principal.tenant_id)
        self.on_retried(job)
        self.notify_workers(1)
        return job

    # ---------------------------------------------------------------- worker
    def _run_waiting_for_capacity(
        self,
        image: DecodedImage,
        features: list[str],
        options: dict[str, Any],
        skip_on: list[str],
    ) -> Outcome:
        """A full model queue (``Overloaded``) makes a worker wait and try again rather than
        fail the job: sync callers get 503 and retry, a queued job has nobody to retry it.
        It fails only when the model stays saturated for ``OVERLOAD_PATIENCE_SECONDS``."""
        deadline = time.monotonic() + OVERLOAD_PATIENCE_SECONDS
        while True:
            try:
                return self.pipeline.run_one(image, features, options, skip_on)
            except Overloaded as exc:
                pause = min(max(exc.retry_after, 0.05), 5.0)
                if time.monotonic() + pause > deadline:
                    raise
                time.sleep(pause)

    def run_job(self, job: Job) -> JobOutcome:
        """The worker's runner: load the image, run the pipeline, map errors to outcomes."""
        options = job.options or {}
        try:
            if "image_id" in job.source:
                image = self.images.load(job.tenant_id, job.source["image_id"])
            else:
                image = self.load(job.tenant_id, Source(url=job.source["url"]))
            outcome = self._run_waiting_for_capacity(
                image, job.features, options.get("analyzers") or {}, options.get("skip_on") or []
            )
        except OpenSightError as exc:
            return JobOutcome(
                JobStatus.FAILED,
                error=exc.problem(),
            )
        result = {"image": image.info(), **outcome.results}
        if outcome.skipped_reason:
            return JobOutcome(JobStatus.SKIPPED, result=result, reason=outcome.skipped_reason)
        return JobOutcome(JobStatus.COMPLETED, result=result)


def _job_options(request: AnalysisRequest) -> dict[str, Any]:
    options: dict[str, Any] = {"analyzers": request.options, "skip_on": request.skip_on}
    if request.api is not None:
        options["api"] = request.api
        options["api_data"] = request.api_data or {}
    return options


def job_view(job: Job) -> dict[str, Any]:
    """The public JSON of a job (API replies, webhook bodies, CLI)."""
    body: dict[str, Any] = {
        "id": job.id,
        "status": str(job.status),
        "features": list(job.features),
        "created_at": job.created_at.isoformat(),
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        "attempts": job.attempts,
    }
    if "url" in job.source:
        body["source"] = {"url": job.source["url"]}
    else:
        body["source"] = {"image_id": job.source.get("image_id")}
    if job.ttl_seconds:
        body["ttl"] = job.ttl_seconds
        body["expires_at"] = job.expires_at.isoformat() if job.expires_at else None
    if job.batch_id:
        body["batch_id"], body["batch_index"] = job.batch_id, job.batch_index
    if job.result is not None:
        body["result"] = job.result
    if job.reason:
        body["reason"] = job.reason
    if job.error:
        body["error"] = job.error
    if job.webhook_url:
        body["webhook"] = {
            "url": job.webhook_url,
            "status": job.webhook_status or "waiting",
            "attempts": list(job.webhook_attempts or []),
        }
    return body


def wait_for_job(
    jobs: JobStore, job_id: str, tenant_id: str, timeout: float, poll: float = 0.05
) -> Job:
    """Poll the store until the job is final or ``timeout`` passes (then return it as is)."""
    import time

    from ..jobs.model import FINAL_STATUSES

    deadline = time.monotonic() + timeout
    while True:
        job = jobs.get(job_id, tenant_id)
        if job.status in FINAL_STATUSES or time.monotonic() >= deadline:
            return job
        time.sleep(min(poll, max(0.0, deadline - time.monotonic())))
        poll = min(poll * 1.5, 0.5)
