"""CloudSight requests on the native services: auth, submit, poll, repost, signed image URLs.

A CloudSight request is one native job (its token is the job id, scoped to the
caller's tenant) running, in order: ``quality`` and ``moderation`` as gates
(``skip_on`` blurry, dark, bright, close, offensive -- the job stops there,
before any model runs), then ``caption`` (its ``name``), then ``tags`` (its
``categories``) when a tags model is installed. No analysis happens here:
only the mapping of CloudSight's fields onto the native request.
"""

from __future__ import annotations

import time
from functools import cached_property
from typing import TYPE_CHECKING, Any

from ...analyzers import registry
from ...analyzers.pipeline import GATE_REASONS
from ...errors import Conflict, Forbidden, NotFound, OpenSightError, Unauthorized
from ...jobs.model import JobStatus
from ...netguard import fetch_bytes
from ...services.analysis import AnalysisRequest, Source
from ...services.keys import Principal
from ...services.nonces import NonceStore
from ...services.signed_urls import UrlSigner, signing_key
from ...storage.tables import Job
from . import oauth
from .errors import CloudSightError, from_native, unauthorized
from .render import JobFailed, render
from .request import ImageRequest, relative_focus

if TYPE_CHECKING:
    from ...services.container import Container

API = "cloudsight"
#: The longest ttl the server accepts (``ttl=max``): the native API's limit, 30 days.
MAX_TTL_SECONDS = 30 * 86400.0
#: How long a signed image URL in a job body stays valid.
IMAGE_URL_SECONDS = 3600
GATES = ("quality", "moderation")
MEDIA_TYPES = {
    "jpeg": "image/jpeg",
    "mpo": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "gif": "image/gif",
    "bmp": "image/bmp",
    "tiff": "image/tiff",
    "heif": "image/heif",
}


class CloudSightService:
    def __init__(self, container: Container) -> None:
        self.container = container
        self.nonces = NonceStore(container.db, keep_seconds=3 * oauth.TIMESTAMP_WINDOW_SECONDS)

    @cached_property
    def signer(self) -> UrlSigner:
        return UrlSigner(signing_key(self.container.settings, self.container.db))

    # ------------------------------------------------------------------ auth
    def authenticate_key(self, key: str) -> Principal:
        """``Authorization: CloudSight <key>``: any OpenSight key; revoked keys are refused."""
        try:
            return self.container.keys.authenticate(key)
        except (Unauthorized, Forbidden) as exc:
            raise unauthorized(exc.detail) from None

    def begin_oauth(self, header: str) -> tuple[oauth.OAuthHeader, Principal]:
        """What can be checked before the body is read: syntax, clock, consumer key."""
        parsed = oauth.parse_header(header, time.time())
        return parsed, self.authenticate_key(parsed.consumer_key)

    def finish_oauth(
        self,
        parsed: oauth.OAuthHeader,
        principal: Principal,
        method: str,
        urls: list[str],
        form: oauth.Pairs,
        query: oauth.Pairs,
    ) -> None:
        """Verify the signature, then spend the nonce (only a valid request can spend one)."""
        oauth.verify(parsed, principal.secret, method, urls, form, query)
        if not self.nonces.use(principal.key_id, parsed.nonce):
            raise unauthorized("this oauth_nonce was used before: a replayed request is refused")

    # -------------------------------------------------------------- requests
    def features(self) -> list[str]:
        """Gates, then the caption, then tags when a tags model is installed (categories are
        optional in CloudSight, so a missing tags model must not fail the request)."""
        known = registry.all_analyzers()
        features = [name for name in GATES if name in known]
        if "caption" in known:
            features.append("caption")
            tags = known.get("tags")
            if tags is not None and tags.readiness().ready:
                features.append("tags")
        return features

    def submit(self, principal: Principal, request: ImageRequest, upload: bytes | None) -> Job:
        """Store the image (fetched now for a remote URL, so ``url`` can serve it), queue the job."""
        container = self.container
        field = "image" if upload is not None else "remote_image_url"
        try:
            if upload is None:
                assert request.remote_image_url is not None
                upload = fetch_bytes(request.remote_image_url, container.analysis.fetch_policy)
            row, _ = container.images.store(principal.tenant_id, upload, full_check=False)
        except OpenSightError as exc:
            raise from_native(exc, field) from None
        features = self.features()
        options: dict[str, Any] = {}
        if "caption" in features:
            caption: dict[str, Any] = {"locale": request.language or request.locale}
            if request.focus is not None:
                caption["focus"] = list(relative_focus(request.focus, row.width, row.height))
            options["caption"] = caption
        elif request.focus is not None:
            relative_focus(request.focus, row.width, row.height)  # still refuse a bad one
        analysis_request = AnalysisRequest(
            features=features,
            options=options,
            skip_on=list(GATE_REASONS),
            ttl_seconds=request.ttl_seconds,
            api=API,
            api_data=request.api_data(),
        )
        job, _ = container.analysis.submit(principal, Source(image_id=row.id), analysis_request)
        return job

    def job(self, principal: Principal, token: str) -> Job | None:
        """The caller's CloudSight job ``token``, or None (other tenants' and native jobs too)."""
        if not token or len(token) > 40:
            return None
        try:
            job = self.container.jobs.get(token, principal.tenant_id)
        except NotFound:
            return None
        return job if (job.options or {}).get("api") == API else None

    def body(self, job: Job, base_url: str) -> dict[str, Any]:
        """The CloudSight body of ``job``; a failed job raises CloudSight's error."""
        try:
            return render(job, self.image_url(job, base_url))
        except JobFailed as exc:
            raise CloudSightError(exc.status, exc.message, extra={"token": job.id}) from None

    def repost(self, principal: Principal, token: str) -> None:
        """Queue a timed-out (or failed, e.g. before its model was pulled) request again."""
        job = self.job(principal, token)
        if job is None:
            raise CloudSightError(404, f"no image request with token {token!r}")
        if job.status not in (JobStatus.TIMEOUT, JobStatus.FAILED):
            raise CloudSightError(
                422, f"only a timed-out request can be reposted; this one is {job.status}"
            )
        try:
            self.container.analysis.retry(principal, job.id)
        except Conflict as exc:  # it changed meanwhile
            raise CloudSightError(422, exc.detail) from None

    # ------------------------------------------------------- signed image URLs
    @staticmethod
    def _resource(token: str) -> str:
        return f"cloudsight-image:{token}"

    def image_url(self, job: Job, base_url: str) -> str | None:
        if "image_id" not in job.source:
            return None
        query = self.signer.sign(self._resource(job.id), IMAGE_URL_SECONDS)
        return (
            f"{base_url}/cloudsight/images/{job.id}"
            f"?expires={query['expires']}&signature={query['signature']}"
        )

    def image_content(
        self, token: str, expires: str | None, signature: str | None
    ) -> tuple[bytes, str, str]:
        """(bytes, media type, sha256) of a job's image, for a valid, unexpired signature."""
        if not self.signer.verify(self._resource(token), expires, signature):
            raise CloudSightError(403, "the image URL is not valid or has expired")
        try:
            job = self.container.jobs.get(token)
            row, data = self.container.images.content(job.tenant_id, job.source["image_id"])
        except (NotFound, KeyError):
            raise CloudSightError(404, "the image is no longer stored") from None
        return data, MEDIA_TYPES.get(row.format, "application/octet-stream"), row.sha256
