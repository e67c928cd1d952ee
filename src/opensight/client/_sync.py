"""The blocking client."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any

import httpx

from . import _base as b
from .errors import BatchTimeout, JobTimeout
from .models import AnalysisResult, Analyzer, BatchInfo, ImageInfo, Job, JobPage

__all__ = ["Client"]


class Client(b.ClientCore):
    """OpenSight API client on :mod:`httpx`.

    ``api_key`` defaults to ``$OPENSIGHT_API_KEY`` and ``base_url`` to
    ``$OPENSIGHT_BASE_URL`` or ``http://127.0.0.1:8000``. Use it as a context manager,
    or call :meth:`close`.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        max_retries: int = 3,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, api_key, timeout, max_retries)
        self._http = httpx.Client(transport=transport, **self._http_kwargs())

    # ------------------------------------------------------------ plumbing
    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _send(self, spec: b.RequestSpec, *, stream: bool = False) -> httpx.Response:
        """Send with the retry policy of :mod:`._base`; raise typed errors."""
        attempt = 0
        while True:
            request = self._http.build_request(spec.method, spec.path, **spec.kwargs())
            try:
                response = self._http.send(request, stream=stream)
            except httpx.TransportError as exc:
                delay = b.retry_delay_for_exception(spec, exc, attempt, self.max_retries)
                if delay is None:
                    raise b.connection_error(exc, spec) from exc
            else:
                if response.is_success or response.status_code in spec.accept:
                    return response
                response.read()
                response.close()
                delay = b.retry_delay_for_status(spec, response, attempt, self.max_retries)
                if delay is None:
                    raise b.error_from_response(response)
            time.sleep(delay)
            attempt += 1

    def _json(self, spec: b.RequestSpec) -> Any:
        return b.json_of(self._send(spec))

    # ------------------------------------------------------------- analyze
    def analyze(
        self,
        source: b.ImageSource | None = None,
        features: b.Features = None,
        *,
        image_id: str | ImageInfo | None = None,
        options: Mapping[str, Any] | None = None,
        skip_on: Iterable[str] | None = None,
    ) -> AnalysisResult:
        """Analyze one image now and return the result.

        ``source``: a path (``str`` or ``Path``), ``bytes``, a binary file object or an
        ``http(s)://`` URL that the server fetches; or leave it out and pass
        ``image_id=`` for a stored image.
        """
        spec = b.analyze_request(
            source, features, image_id=image_id, options=options, skip_on=skip_on
        )
        return AnalysisResult.model_validate(self._json(spec))

    def submit(
        self,
        source: b.ImageSource | None = None,
        features: b.Features = None,
        *,
        image_id: str | ImageInfo | None = None,
        ttl: float | None = None,
        webhook_url: str | None = None,
        idempotency_key: str | None = None,
        options: Mapping[str, Any] | None = None,
        skip_on: Iterable[str] | None = None,
    ) -> Job:
        """Queue an analysis as a job; :meth:`wait` for it or get a webhook.

        With ``idempotency_key`` a repeat of the call returns the first job (and the
        client may then safely resend after a broken connection).
        """
        spec = b.analyze_request(
            source,
            features,
            image_id=image_id,
            run_async=True,
            ttl=ttl,
            webhook_url=webhook_url,
            idempotency_key=idempotency_key,
            options=options,
            skip_on=skip_on,
        )
        return Job.model_validate(self._json(spec))

    # ---------------------------------------------------------------- jobs
    def get_job(self, job: str | Job) -> Job:
        return Job.model_validate(self._json(b.get_request(f"/v1/jobs/{b.ident(job)}")))

    def list_jobs_page(
        self, status: str | None = None, cursor: str | None = None, limit: int = 50
    ) -> JobPage:
        """One page of jobs, newest first; pass ``next_cursor`` back for the next one."""
        params = b.jobs_params(status, cursor, limit)
        return JobPage.model_validate(self._json(b.get_request("/v1/jobs", params)))

    def list_jobs(self, status: str | None = None, limit: int = 50) -> Iterator[Job]:
        """Every job (or every job with ``status``), newest first; ``limit`` is the page
        size, and pages are fetched as the iteration reaches them."""
        cursor: str | None = None
        while True:
            page = self.list_jobs_page(status, cursor, limit)
            yield from page.jobs
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    def cancel(self, job: str | Job) -> Job:
        """Cancel a pending job; :class:`ConflictError` once it has started or ended."""
        spec = b.RequestSpec("DELETE", f"/v1/jobs/{b.ident(job)}")
        return Job.model_validate(self._json(spec))

    def retry(self, job: str | Job) -> Job:
        """Re-queue a failed or timed-out job; :class:`ConflictError` otherwise."""
        spec = b.RequestSpec("POST", f"/v1/jobs/{b.ident(job)}/retry")
        return Job.model_validate(self._json(spec))

    def wait(self, job: str | Job, timeout: float = 300.0, poll_interval: float = 0.2) -> Job:
        """Poll until the job is final (backing off to one poll per ~2 s) and return it.

        Raises :class:`JobTimeout` (a :class:`TimeoutError`) with the last state.
        """
        if isinstance(job, Job) and job.is_final:
            return job
        deadline = time.monotonic() + timeout
        interval = poll_interval
        while True:
            current = self.get_job(job)
            if current.is_final:
                return current
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise JobTimeout(current, timeout)
            time.sleep(min(interval, remaining))
            interval = b.next_poll_interval(interval)

    # ------------------------------------------------------------- batches
    def batch(
        self,
        sources: Iterable[b.ImageSource | Mapping[str, str]],
        features: b.Features = None,
        *,
        options: Mapping[str, Any] | None = None,
        ttl: float | None = None,
        webhook_url: str | None = None,
    ) -> BatchInfo:
        """Submit many images at once: URLs, paths, bytes, files, :class:`ImageInfo` or
        ``{"image_id": ...}`` dicts (local images travel base64-encoded)."""
        spec = b.batch_request(sources, features, options=options, ttl=ttl, webhook_url=webhook_url)
        return BatchInfo.model_validate(self._json(spec))

    def get_batch(self, batch: str | BatchInfo) -> BatchInfo:
        return BatchInfo.model_validate(self._json(b.get_request(f"/v1/batch/{b.ident(batch)}")))

    def batch_results(self, batch: str | BatchInfo) -> Iterator[Job]:
        """Every job of the batch in submission order, streamed (NDJSON) as it is read."""
        spec = b.get_request(f"/v1/batch/{b.ident(batch)}/results")
        response = self._send(spec, stream=True)
        try:
            for line in response.iter_lines():
                job = b.parse_ndjson_line(line)
                if job is not None:
                    yield job
        finally:
            response.close()

    def wait_batch(
        self, batch: str | BatchInfo, timeout: float = 300.0, poll_interval: float = 0.5
    ) -> BatchInfo:
        """Poll until every job of the batch is final; raises :class:`BatchTimeout`."""
        deadline = time.monotonic() + timeout
        interval = poll_interval
        while True:
            current = self.get_batch(batch)
            if current.done:
                return current
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BatchTimeout(current, timeout)
            time.sleep(min(interval, remaining))
            interval = b.next_poll_interval(interval)

    # -------------------------------------------------------------- images
    def upload_image(self, source: b.ImageSource) -> ImageInfo:
        """Store an image (path, bytes or binary file); the same bytes give the same id."""
        return ImageInfo.model_validate(self._json(b.upload_request(source)))

    def get_image(self, image: str | ImageInfo) -> ImageInfo:
        return ImageInfo.model_validate(self._json(b.get_request(f"/v1/images/{b.ident(image)}")))

    def download_image(self, image: str | ImageInfo) -> bytes:
        return self._send(b.get_request(f"/v1/images/{b.ident(image)}/content")).content

    def delete_image(self, image: str | ImageInfo) -> None:
        self._send(b.RequestSpec("DELETE", f"/v1/images/{b.ident(image)}"))

    # --------------------------------------------------------------- about
    def analyzers(self) -> list[Analyzer]:
        """Every analyzer, its version and readiness; ``default`` marks default features."""
        return b.parse_analyzers(self._json(b.get_request("/v1/analyzers")))

    def health(self) -> dict[str, Any]:
        """``/healthz``: the server process answers."""
        return dict(self._json(b.get_request("/healthz")))

    def ready(self) -> dict[str, Any]:
        """``/readyz``: ``{"status": "ok"|"unavailable", "checks": {...}}`` (never raises on 503)."""
        return dict(self._json(b.get_request("/readyz", accept=(503,))))
