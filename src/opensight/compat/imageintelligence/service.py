"""Detect requests: one native ``detect`` job per image, grouped, settled once, announced once.

A request is a native batch (all jobs inserted in one transaction) plus a row in
``ii_detect_requests`` holding the foreign fields (customId, feedId, webhookUrl, classes)
as queryable columns. The request *settles* when every image job has ended and every
object sent to review (``hitl``) has been decided: one conditional UPDATE moves it from
``IN_PROGRESS`` to its final status, so exactly one caller wins even when the last job and
the last review finish at once. The winner arms the native webhook on the request's first
job with the request's snapshot, so delivery, signing and retries are the native ones.

Settling is tried when a job of the request finishes (worker hook), when a review of it is
decided (review listener, also from the CLI) and when the request is read, so a missed
hook (a crash between a job's commit and its hook) is repaired by the next read.
"""

from __future__ import annotations

import hmac
import logging
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update

from ...errors import NotFound, OpenSightError, UnknownFeature
from ...jobs.model import FINAL_STATUSES, JobStatus, new_id, utcnow
from ...jobs.store import JobStore
from ...netguard import resolve_checked
from ...services.analysis import AnalysisRequest, AnalysisService, Source
from ...services.keys import KeyService, Principal
from ...services.reviews import ReviewService
from ...storage.db import Database
from ...storage.tables import ApiKey, Batch, DetectRequest, Job, Review
from . import tokens
from .errors import ApiError, unauthorized
from .hitl import objects_of, review_items
from .render import IN_PROGRESS, image_status, request_status
from .schemas import DetectRequestBody
from .webhook import SNAPSHOT_KEY

log = logging.getLogger("opensight.imageintelligence")

API = "imageintelligence"
FEATURE = "detect"
PAGE_SIZE = 50
SCOPE = "detect:create detect:read"
_SOURCE_PREFIX = re.compile(r"^source (\d+): ")


@dataclass(frozen=True)
class TokenGrant:
    token: tokens.IssuedToken
    org_name: str
    app_name: str
    scope: str = SCOPE


def ref_of(detect_id: str) -> str:
    return f"{API}:{detect_id}"


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _from_ms(value: float) -> datetime:
    try:
        return datetime.fromtimestamp(value / 1000.0, UTC)
    except (OverflowError, OSError, ValueError):
        raise ApiError(400, f"timestamp {value!r} is out of range") from None


class ImageIntelligenceService:
    def __init__(
        self,
        db: Database,
        keys: KeyService,
        analysis: AnalysisService,
        jobs: JobStore,
        reviews: ReviewService,
        notify_webhooks: Callable[[], None] = lambda: None,
    ) -> None:
        self.db = db
        self.keys = keys
        self.analysis = analysis
        self.jobs = jobs
        self.reviews = reviews
        self.notify_webhooks = notify_webhooks

    # ------------------------------------------------------------------ tokens
    def issue_token(self, client_id: str, client_secret: str) -> TokenGrant:
        """OAuth2 client credentials: clientId is an OpenSight key, clientSecret its secret."""
        record = self.keys.lookup(client_id)
        expected = record.secret if record is not None else "\x00" * 48
        matches = hmac.compare_digest(expected.encode(), client_secret.encode())
        if record is None or not matches or record.revoked_at is not None:
            raise unauthorized("invalid client credentials")
        grant = tokens.issue(record.id, record.secret)
        return TokenGrant(token=grant, org_name=record.tenant_id, app_name=record.name)

    def authenticate(self, token: str) -> Principal:
        """The caller behind an access token; 401 when forged, expired or its key revoked."""
        try:
            claims = tokens.read_claims(token)
            record = self._key(claims.key_id)
            if record is None:
                raise tokens.InvalidToken("unknown key")
            tokens.verify(token, record.secret)
        except tokens.InvalidToken as exc:
            raise unauthorized(f"invalid access token: {exc}") from None
        if record.revoked_at is not None:
            raise unauthorized("invalid access token: its credentials have been revoked")
        return Principal(
            tenant_id=record.tenant_id,
            key_id=record.id,
            secret=record.secret,
            collection=record.collection,
        )

    def _key(self, key_id: str) -> ApiKey | None:
        if not key_id or len(key_id) > 40:
            return None
        with self.db.read() as session:
            return session.get(ApiKey, key_id)

    # ------------------------------------------------------------------ create
    def create(self, principal: Principal, body: DetectRequestBody) -> dict[str, Any]:
        """Queue one native job per image and record the request; returns its snapshot."""
        if body.webhook_url:
            try:
                resolve_checked(body.webhook_url, self.analysis.fetch_policy)
            except OpenSightError as exc:
                raise ApiError(400, f"webhookUrl: {exc.detail}") from None
        names = [c.name.strip() for c in body.classes]
        detect_id = new_id("det")
        try:
            request = AnalysisRequest(
                features=[FEATURE],
                options={FEATURE: {"classes": names}},
                api=API,
                api_data={"detect_id": detect_id},
            )
        except UnknownFeature:
            raise ApiError(503, "this server has no detect analyzer installed") from None
        sources = [Source(url=image.url) for image in body.images]
        try:
            batch = self.analysis.submit_batch(principal, sources, request)
        except OpenSightError as exc:
            match = _SOURCE_PREFIX.match(exc.detail)
            if match:
                exc.detail = f"images.{match.group(1)}.url: {exc.detail[match.end() :]}"
            raise
        return self.record(principal, body, detect_id, batch)

    def record(
        self, principal: Principal, body: DetectRequestBody, detect_id: str, batch: Batch
    ) -> dict[str, Any]:
        """Group ``batch`` (its jobs carry ``api_data.detect_id``) as request ``detect_id``."""
        row = DetectRequest(
            id=detect_id,
            tenant_id=principal.tenant_id,
            key_id=principal.key_id,
            batch_id=batch.id,
            custom_id=body.custom_id,
            feed_id=body.feed_id,
            webhook_url=body.webhook_url,
            classes=body.class_modes(self.analysis.settings.hitl_auto_threshold),
            images=[{"url": i.url, "customId": i.custom_id} for i in body.images],
            status=IN_PROGRESS,
            created_at=batch.created_at,
        )
        with self.db.session() as session:
            session.add(row)
        # Jobs may have finished before the row existed: their hooks found nothing to settle.
        return self.snapshot(self.settle(detect_id) or row)

    # ------------------------------------------------------------------- reads
    def _row(self, detect_id: str, tenant_id: str | None = None) -> DetectRequest | None:
        if len(detect_id) > 40:
            return None
        with self.db.read() as session:
            row = session.get(DetectRequest, detect_id)
        if row is None or (tenant_id is not None and row.tenant_id != tenant_id):
            return None
        return row

    def get(self, principal: Principal, detect_id: str) -> dict[str, Any]:
        row = self._row(detect_id, principal.tenant_id)
        if row is None:
            raise NotFound(f"no detect job {detect_id!r}")
        if row.status == IN_PROGRESS:
            row = self.settle(row.id) or row
        return self.snapshot(row)

    def search(
        self,
        principal: Principal,
        page: int = 1,
        feed_id: str | None = None,
        custom_id: str | None = None,
        before_ms: float | None = None,
        after_ms: float | None = None,
    ) -> list[dict[str, Any]]:
        """The tenant's requests, newest first, ``PAGE_SIZE`` per page (1-based)."""
        query = (
            select(DetectRequest)
            .where(DetectRequest.tenant_id == principal.tenant_id)
            .order_by(DetectRequest.created_at.desc(), DetectRequest.id.desc())
            .offset((page - 1) * PAGE_SIZE)
            .limit(PAGE_SIZE)
        )
        if feed_id is not None:
            query = query.where(DetectRequest.feed_id == feed_id)
        if custom_id is not None:
            query = query.where(DetectRequest.custom_id == custom_id)
        # Compared as the API shows them, whole milliseconds (createdAt drops the rest).
        if before_ms is not None:
            query = query.where(DetectRequest.created_at < _from_ms(math.ceil(before_ms)))
        if after_ms is not None:
            query = query.where(DetectRequest.created_at >= _from_ms(math.floor(after_ms) + 1))
        with self.db.read() as session:
            rows = list(session.scalars(query))
        return [
            self.snapshot((self.settle(r.id) or r) if r.status == IN_PROGRESS else r) for r in rows
        ]

    def snapshot(self, row: DetectRequest, jobs: Sequence[Job] | None = None) -> dict[str, Any]:
        """The request as plain JSON of native facts: what ``render.render_job`` renders."""
        jobs = list(jobs) if jobs is not None else list(self.jobs.iter_batch(row.batch_id))
        reviews = self.reviews.for_jobs([j.id for j in jobs])
        by_index = {j.batch_index: j for j in jobs}
        images = []
        for index, image in enumerate(row.images):
            job = by_index.get(index)
            images.append(
                {
                    "jobId": job.id if job else None,
                    "url": image.get("url"),
                    "customId": image.get("customId"),
                    "jobStatus": str(job.status) if job else str(JobStatus.PENDING),
                    "detect": (job.result or {}).get(FEATURE) if job else None,
                    "error": job.error if job else None,
                    "reason": job.reason if job else None,
                }
            )
        return {
            "id": row.id,
            "createdAt": _ms(row.created_at),
            "status": row.status,
            "customId": row.custom_id,
            "feedId": row.feed_id,
            "webhookUrl": row.webhook_url,
            "classes": list(row.classes),
            "images": images,
            "reviews": {f"{job_id}:{index}": r.status for (job_id, index), r in reviews.items()},
        }

    # ---------------------------------------------------------------- settling
    def job_finished(self, job: Job) -> None:
        """Worker hook: queue the finished image's reviews, then try to settle its request."""
        detect_id = ((job.options or {}).get("api_data") or {}).get("detect_id")
        if not detect_id:
            return
        try:
            row = self._row(str(detect_id))
            if row is None:
                return
            self._enqueue_reviews(row, [self.jobs.get(job.id)])
            self.settle(row.id)
        except Exception:  # the job's result is stored; the next read settles the request
            log.exception("settling detect request %s after job %s failed", detect_id, job.id)

    def job_retried(self, job: Job) -> None:
        """A native retry of one image: its request is in progress again, and a webhook
        armed with the old outcome is disarmed; settling afresh re-arms it with the new one.

        The job may already have finished again (a worker claims it at once): settling
        here covers that, since its own settle ran while the request was still closed.
        """
        detect_id = ((job.options or {}).get("api_data") or {}).get("detect_id")
        row = self._row(str(detect_id)) if detect_id else None
        if row is None:
            return
        with self.db.session() as session:
            session.execute(
                update(Job)
                .where(Job.batch_id == row.batch_id, Job.webhook_url.is_not(None))
                .values(webhook_url=None, webhook_status=None, webhook_next_at=None)
            )
            session.execute(
                update(DetectRequest)
                .where(DetectRequest.id == row.id)
                .values(status=IN_PROGRESS, finished_at=None)
            )
        self.settle(row.id)

    def review_decided(self, review: Review) -> None:
        """Review listener: the request may have been waiting for this decision."""
        if review.ref and review.ref.startswith(API + ":"):
            self.settle(review.ref.split(":", 1)[1])

    def _enqueue_reviews(self, row: DetectRequest, jobs: Sequence[Job]) -> None:
        done = [j for j in jobs if j.status == JobStatus.COMPLETED]
        if not done:
            return
        existing = self.reviews.for_jobs([j.id for j in done])
        for job in done:
            items = review_items(row.classes, objects_of((job.result or {}).get(FEATURE)))
            missing = [i for i in items if (job.id, i.object_index) not in existing]
            if missing:
                self.reviews.enqueue(row.tenant_id, job.id, missing, ref=ref_of(row.id))

    def settle(self, detect_id: str) -> DetectRequest | None:
        """Finish the request if every image ended and no review is pending; idempotent."""
        row = self._row(detect_id)
        if row is None or row.status != IN_PROGRESS:
            return row
        jobs = list(self.jobs.iter_batch(row.batch_id))
        if len(jobs) < len(row.images) or any(j.status not in FINAL_STATUSES for j in jobs):
            return row
        self._enqueue_reviews(row, jobs)
        if self.reviews.pending_count(ref_of(row.id)):
            return row
        final = request_status([image_status(str(j.status), j.error) for j in jobs])
        now = utcnow()
        with self.db.session() as session:
            result = session.execute(
                update(DetectRequest)
                .where(DetectRequest.id == row.id, DetectRequest.status == IN_PROGRESS)
                .values(status=final, finished_at=now)
            )
            won = bool(result.rowcount)  # type: ignore[attr-defined]
        row = self._row(detect_id) or row
        if won and row.webhook_url and jobs:
            self._arm_webhook(row, jobs)
        return row

    def _arm_webhook(self, row: DetectRequest, jobs: Sequence[Job]) -> None:
        """Hand the finished request to the native webhook dispatcher on its first job."""
        snapshot = self.snapshot(row, jobs)
        carrier = min(jobs, key=lambda j: j.batch_index or 0)
        with self.db.session() as session:
            job = session.get(Job, carrier.id, with_for_update=True)
            if job is None:
                return
            options = dict(job.options or {})
            options["api_data"] = {**(options.get("api_data") or {}), SNAPSHOT_KEY: snapshot}
            job.options = options
            job.webhook_url = row.webhook_url
            job.webhook_status = "pending"
            job.webhook_next_at = utcnow()
            job.webhook_attempts = []
        self.notify_webhooks()
