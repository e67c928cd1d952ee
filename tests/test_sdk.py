"""The Python SDK (opensight.client) against the real server process."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from opensight.client import (
    AnalysisResult,
    AsyncClient,
    AuthenticationError,
    BatchInfo,
    Client,
    ConflictError,
    ImageInfo,
    InvalidImageError,
    Job,
    JobTimeout,
    ModelUnavailableError,
    NotFoundError,
    OpenSightError,
    Problem,
    RateLimitError,
    RequestTimeoutError,
    ServerError,
    UnsupportedMediaTypeError,
    UrlFetchError,
    ValidationError,
    WebhookVerificationError,
    _base,
    compute_signature,
    construct_event,
    verify_webhook,
)
from opensight.client import ConnectionError as SDKConnectionError
from opensight.client.errors import error_for
from opensight.jobs.webhooks import sign, verify_signature
from tests.conftest import photo_bytes
from tests.server import ServerProcess, create_key, free_port

# ------------------------------------------------------------------ helpers


class _Site(ThreadingHTTPServer):
    daemon_threads = True
    photo: bytes
    hooks: list[tuple[dict[str, str], bytes]]


class _Handler(BaseHTTPRequestHandler):
    server: _Site

    def do_GET(self) -> None:
        if self.path == "/photo.jpg":
            body = self.server.photo
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_error(404)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.hooks.append((dict(self.headers.items()), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def site() -> Iterator[_Site]:
    """A tiny web server on 127.0.0.1: serves /photo.jpg, 404s the rest, records POSTs."""
    server = _Site(("127.0.0.1", 0), _Handler)
    server.photo = photo_bytes()
    server.hooks = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def site_url(site: _Site, path: str) -> str:
    return f"http://127.0.0.1:{site.server_address[1]}{path}"


@pytest.fixture
def client(shared_server: ServerProcess, tenant: dict[str, Any]) -> Iterator[Client]:
    with Client(shared_server.url, tenant["key"]) as c:
        yield c


def dark_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (320, 240), (2, 2, 2)).save(buffer, "JPEG")
    return buffer.getvalue()


def assert_completed(result: AnalysisResult, features: tuple[str, ...] = ("quality", "metadata")):
    assert result.status == "completed"
    assert set(result.result) == set(features)
    assert (result.image.width, result.image.height) == (640, 480)


# ------------------------------------------------------------------ analyze


def test_analyze_by_path_str_bytes_and_file(client: Client, photo: bytes, photo_path: Path) -> None:
    assert_completed(client.analyze(photo_path))
    assert_completed(client.analyze(str(photo_path)))
    assert_completed(client.analyze(photo))
    assert_completed(client.analyze(bytearray(photo)))
    with photo_path.open("rb") as fh:
        result = client.analyze(fh, ["quality"])
    assert_completed(result, ("quality",))
    assert 0 <= result["quality"]["score"] <= 1


def test_analyze_by_url_and_image_id(client: Client, site: _Site) -> None:
    result = client.analyze(site_url(site, "/photo.jpg"), "quality,metadata")
    assert_completed(result)
    data_url = "data:image/jpeg;base64," + base64.b64encode(site.photo).decode()
    assert_completed(client.analyze(data_url))
    info = client.upload_image(site.photo)
    assert_completed(client.analyze(image_id=info.id, features=["quality"]), ("quality",))
    assert_completed(client.analyze(info, ["metadata"]), ("metadata",))
    with pytest.raises(UrlFetchError) as err:
        client.analyze(site_url(site, "/missing.jpg"))
    assert err.value.slug == "url_fetch_failed"


def test_analyze_skip_on_and_options(client: Client, photo: bytes, site: _Site) -> None:
    skipped = client.analyze(dark_jpeg(), ["quality", "metadata"], skip_on=["dark"], options={})
    assert skipped.skipped and skipped.status == "skipped"
    assert skipped.reason == "dark"
    assert "quality" in skipped.result
    strict = {"quality": {"min_pixels": 1_000_000}}  # 640x480 is then "low resolution"
    assert "low_resolution" not in client.analyze(photo, ["quality"])["quality"]["issues"]
    by_form = client.analyze(photo, ["quality"], options=strict)
    assert "low_resolution" in by_form["quality"]["issues"]
    by_json = client.analyze(site_url(site, "/photo.jpg"), ["quality"], options=strict)
    assert "low_resolution" in by_json["quality"]["issues"]
    with pytest.raises(ValidationError) as err:
        client.analyze(dark_jpeg(), skip_on=["sleepy"])
    assert err.value.status_code == 422
    with pytest.raises(ValidationError):
        client.analyze(dark_jpeg(), ["no_such_feature"])


def test_source_errors_are_raised_before_sending(tmp_path: Path, photo: bytes) -> None:
    with Client("http://127.0.0.1:9", "k", max_retries=0) as c:
        with pytest.raises(FileNotFoundError):
            c.analyze(str(tmp_path / "nope.jpg"))
        with pytest.raises(TypeError):
            c.analyze(photo, image_id="img_x")
        with pytest.raises(TypeError):
            c.analyze()
        text = tmp_path / "t.txt"
        text.write_text("hi")
        with text.open() as fh, pytest.raises(TypeError):
            c.analyze(fh)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            c.upload_image("https://example.com/a.jpg")
        with pytest.raises(ValueError):
            c.get_job("")


def test_garbage_and_truncated_images(client: Client, photo: bytes) -> None:
    with pytest.raises(UnsupportedMediaTypeError) as err:
        client.analyze(b"not an image")
    assert err.value.status_code == 415
    assert err.value.slug == "unsupported_media_type"
    assert err.value.problem.type == "https://opensight.dev/problems/unsupported_media_type"
    with pytest.raises(InvalidImageError) as err2:
        client.analyze(photo[:2000])
    assert err2.value.slug == "invalid_image"
    assert "truncated" in err2.value.detail


# --------------------------------------------------------------------- jobs


def test_submit_and_wait(client: Client, photo: bytes) -> None:
    job = client.submit(photo, ["quality"], ttl=600)
    assert isinstance(job, Job)
    assert job.status in ("pending", "processing", "completed")
    assert job.ttl == 600
    assert job.source["image_id"].startswith("img_")
    done = client.wait(job, timeout=60)
    assert done.id == job.id
    assert done.status == "completed" and done.is_final and done.succeeded
    assert done.result is not None
    assert set(done.result) >= {"image", "quality"}
    assert done.finished_at is not None and done.attempts == 1
    assert client.wait(done) is done  # already final: no request
    assert client.get_job(job.id).status == "completed"
    gated = client.wait(client.submit(dark_jpeg(), skip_on=["dark"]), timeout=60)
    assert (gated.status, gated.reason, gated.is_final) == ("skipped", "dark", True)


def test_idempotency_key_returns_the_same_job(client: Client, photo: bytes) -> None:
    key = f"order-{uuid.uuid4()}"
    first = client.submit(photo, idempotency_key=key)
    second = client.submit(photo, idempotency_key=key)
    assert first.id == second.id
    other = client.submit(photo, idempotency_key=f"order-{uuid.uuid4()}")
    assert other.id != first.id


def test_list_jobs_pages_through_everything(client: Client, photo: bytes) -> None:
    submitted = [client.submit(photo, ["metadata"]) for _ in range(5)]
    for job in submitted:
        client.wait(job, timeout=60)
    listed = [j.id for j in client.list_jobs(limit=2)]  # three pages
    assert sorted(listed) == sorted(j.id for j in submitted)  # each job exactly once
    assert listed == sorted(listed, reverse=True)  # newest first (ids are time-ordered)
    page = client.list_jobs_page(limit=2)
    assert len(page.jobs) == 2 and page.next_cursor
    assert len(list(client.list_jobs(status="completed", limit=3))) == 5
    assert list(client.list_jobs(status="failed")) == []
    with pytest.raises(ValidationError):
        list(client.list_jobs(status="bogus"))


def test_cancel_and_retry_of_a_finished_job_conflict(client: Client, photo: bytes) -> None:
    job = client.wait(client.submit(photo, ["metadata"]), timeout=60)
    with pytest.raises(ConflictError) as err:
        client.cancel(job)
    assert err.value.status_code == 409 and err.value.slug == "conflict"
    assert "only pending" in err.value.detail
    with pytest.raises(ConflictError):
        client.retry(job.id)


def test_failed_job_carries_its_problem_and_can_be_retried(client: Client, site: _Site) -> None:
    job = client.wait(client.submit(site_url(site, "/missing.jpg")), timeout=60)
    assert job.status == "failed" and not job.succeeded
    assert job.error is not None and job.error.slug == "url_fetch_failed"
    assert isinstance(error_for(job.error), UrlFetchError)
    again = client.retry(job)
    assert again.id == job.id and again.status in ("pending", "processing", "failed")
    assert client.wait(again, timeout=60).status == "failed"


def test_unknown_job_and_batch_are_not_found(client: Client) -> None:
    with pytest.raises(NotFoundError) as err:
        client.get_job("job_doesnotexist")
    assert err.value.status_code == 404 and err.value.slug == "not_found"
    assert err.value.problem.instance == "/v1/jobs/job_doesnotexist"
    with pytest.raises(NotFoundError):
        client.get_batch("bat_nope")
    with pytest.raises(NotFoundError):
        list(client.batch_results("bat_nope"))


def test_pending_jobs_cancel_and_wait_timeout(tmp_path: Path, photo: bytes) -> None:
    server = ServerProcess(tmp_path / "idle", workers=0).start()  # nothing runs jobs
    try:
        key = create_key(server.data_dir, "idle")
        with Client(server.url, key["key"]) as c:
            job = c.submit(photo)
            started = time.monotonic()
            with pytest.raises(JobTimeout) as err:
                c.wait(job, timeout=0.6, poll_interval=0.05)
            assert 0.5 <= time.monotonic() - started < 5
            assert isinstance(err.value, TimeoutError)
            assert err.value.job.id == job.id and err.value.job.status == "pending"
            cancelled = c.cancel(job)
            assert cancelled.status == "cancelled" and cancelled.is_final
            with pytest.raises(ConflictError):
                c.cancel(job)
            assert c.wait(job.id).status == "cancelled"
    finally:
        server.stop()


# ------------------------------------------------------------------ batches


def test_batch_and_streamed_results(client: Client, site: _Site, photo_path: Path) -> None:
    stored = client.upload_image(photo_bytes(seed=7))
    sources: list[Any] = [
        site_url(site, "/photo.jpg"),
        photo_path,
        photo_bytes(seed=3),
        {"image_id": stored.id},
        stored,
    ]
    batch = client.batch(sources, ["quality"])
    assert isinstance(batch, BatchInfo)
    assert batch.total == 5 and batch.features == ["quality"]
    done = client.wait_batch(batch, timeout=120)
    assert done.done and done.counts == {"completed": 5}
    assert done.created_at is not None
    jobs = list(client.batch_results(batch.id))
    assert [j.batch_index for j in jobs] == [0, 1, 2, 3, 4]
    assert {j.batch_id for j in jobs} == {batch.id}
    assert all(j.status == "completed" and j.result and "quality" in j.result for j in jobs)
    assert jobs[0].source == {"url": sources[0]}
    assert jobs[3].source == jobs[4].source == {"image_id": stored.id}


def test_batch_validation(client: Client, photo: bytes) -> None:
    with pytest.raises(ValidationError):
        client.batch([])
    with pytest.raises(UnsupportedMediaTypeError) as err:
        client.batch([photo, b"not an image"])
    assert err.value.detail.startswith("source 1:")


def test_tenants_are_isolated(
    client: Client, shared_server: ServerProcess, photo: bytes, photo_path: Path
) -> None:
    job = client.submit(photo, ["metadata"])
    image = client.upload_image(photo_path)
    batch = client.batch([photo], ["metadata"])
    other_key = create_key(shared_server.data_dir, "other", tenant=f"other-{uuid.uuid4()}")
    with Client(shared_server.url, other_key["key"]) as other:
        with pytest.raises(NotFoundError):
            other.get_job(job.id)
        with pytest.raises(NotFoundError):
            other.cancel(job.id)
        with pytest.raises(NotFoundError):
            other.get_image(image.id)
        with pytest.raises(NotFoundError):
            other.download_image(image.id)
        with pytest.raises(NotFoundError):
            other.get_batch(batch.id)
        with pytest.raises(NotFoundError):
            other.analyze(image_id=image.id)
        assert list(other.list_jobs()) == []
    client.wait(job, timeout=60)
    client.wait_batch(batch, timeout=60)


# ------------------------------------------------------------------- images


def test_image_upload_get_download_delete(client: Client, photo: bytes, photo_path: Path) -> None:
    info = client.upload_image(photo_path)
    assert isinstance(info, ImageInfo)
    assert info.id.startswith("img_") and info.bytes == len(photo)
    assert (info.width, info.height, info.format) == (640, 480, "jpeg")
    assert client.upload_image(photo).id == info.id  # content-addressed
    with pytest.raises(UnsupportedMediaTypeError):
        client.upload_image(b"not an image")
    assert client.get_image(info.id).sha256 == info.sha256
    assert client.download_image(info) == photo
    client.delete_image(info.id)
    with pytest.raises(NotFoundError):
        client.get_image(info.id)
    with pytest.raises(NotFoundError):
        client.delete_image(info.id)


# ------------------------------------------------------------- auth & about


def test_bad_or_missing_key(
    shared_server: ServerProcess, tenant: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    with Client(shared_server.url, "osk_not_a_real_key") as c:
        with pytest.raises(AuthenticationError) as err:
            c.analyzers()
        assert err.value.status_code == 401 and err.value.slug == "unauthorized"
        assert c.health() == {"status": "ok"}  # no auth needed
    monkeypatch.delenv("OPENSIGHT_API_KEY", raising=False)
    with Client(shared_server.url) as c, pytest.raises(AuthenticationError):
        c.get_job("job_x")
    monkeypatch.setenv("OPENSIGHT_API_KEY", tenant["key"])
    monkeypatch.setenv("OPENSIGHT_BASE_URL", shared_server.url)
    with Client() as c:
        assert c.base_url == shared_server.url
        assert c.analyzers()


def test_analyzers_health_ready(client: Client) -> None:
    analyzers = {a.name: a for a in client.analyzers()}
    assert {"quality", "metadata"} <= set(analyzers)
    assert analyzers["quality"].ready and analyzers["quality"].default
    assert analyzers["quality"].version
    assert client.health()["status"] == "ok"
    ready = client.ready()
    assert ready["status"] == "ok" and ready["checks"]


# ------------------------------------------------------------- rate limits


def test_rate_limit_error_and_retry(tmp_path: Path, photo: bytes) -> None:
    env = {"OPENSIGHT_RATE_LIMIT_PER_SECOND": "2", "OPENSIGHT_RATE_LIMIT_BURST": "2"}
    server = ServerProcess(tmp_path / "limited", env=env).start()
    try:
        key = create_key(server.data_dir, "limited")["key"]
        with Client(server.url, key, max_retries=0) as c:
            with pytest.raises(RateLimitError) as err:
                for _ in range(10):
                    c.analyzers()
            assert err.value.status_code == 429 and err.value.slug == "rate_limited"
            assert err.value.retry_after is not None and err.value.retry_after > 0
        # the bucket is empty now: a retrying client waits it out and succeeds
        with Client(server.url, key, max_retries=3) as c:
            for _ in range(3):
                c.analyzers()
            # a job submit without an Idempotency-Key is retried on 429 too (nothing
            # happened on the server), and it creates exactly one job
            for _ in range(3):
                c.submit(photo, ["metadata"])
            assert len(list(c.list_jobs())) == 3
    finally:
        server.stop()


# ------------------------------------------------------- retry policy (mock)


def _mock_client(handler: Any, **kw: Any) -> Client:
    return Client("http://api.test", "k", transport=httpx.MockTransport(handler), **kw)


def _problem(status: int, slug: str, **headers: str) -> httpx.Response:
    body = {
        "type": f"https://opensight.dev/problems/{slug}",
        "slug": slug,
        "title": slug,
        "status": status,
        "detail": f"a {slug}",
    }
    return httpx.Response(status, json=body, headers=headers)


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_base, "BACKOFF_BASE", 0.001)


def test_retry_policy_statuses(fast_backoff: None) -> None:
    calls: list[str] = []

    def flaky(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        if len(calls) < 3:
            return _problem(503, "service_unavailable")
        return httpx.Response(200, json={"status": "ok"})

    with _mock_client(flaky) as c:
        assert c.health() == {"status": "ok"}
    assert len(calls) == 3

    calls.clear()
    with _mock_client(flaky, max_retries=1) as c, pytest.raises(ServerError) as err:
        c.health()
    assert err.value.status_code == 503 and len(calls) == 2

    def no_model(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        return _problem(503, "model_unavailable")

    calls.clear()
    with _mock_client(no_model) as c, pytest.raises(ModelUnavailableError):
        c.analyze(b"x")
    assert len(calls) == 1  # a missing model does not come back by retrying

    calls.clear()
    started = time.monotonic()
    responses = [_problem(429, "rate_limited", **{"Retry-After": "1"})]

    def limited(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        return responses.pop() if responses else httpx.Response(200, json={"status": "ok"})

    with _mock_client(limited) as c:
        assert c.health() == {"status": "ok"}
    assert len(calls) == 2 and time.monotonic() - started >= 1.0  # honoured Retry-After


def test_retry_policy_broken_connections(fast_backoff: None) -> None:
    calls: list[tuple[str, str | None]] = []

    def broken(request: httpx.Request) -> httpx.Response:
        calls.append((request.method, request.headers.get("Idempotency-Key")))
        raise httpx.ReadError("connection reset", request=request)

    with _mock_client(broken) as c:
        with pytest.raises(SDKConnectionError) as err:
            c.get_job("job_1")
        assert isinstance(err.value, ConnectionError) and isinstance(err.value, OpenSightError)
        assert len(calls) == 4  # GET: 1 + 3 retries
        calls.clear()
        with pytest.raises(SDKConnectionError):
            c.submit(b"img")
        assert len(calls) == 1  # an async submit without a key is never resent
        calls.clear()
        with pytest.raises(SDKConnectionError):
            c.submit(b"img", idempotency_key="k1")
        assert calls == [("POST", "k1")] * 4  # with a key it is safe
        calls.clear()
        with pytest.raises(SDKConnectionError):
            c.batch(["http://x/a.jpg"])
        assert len(calls) == 1

    def slow(request: httpx.Request) -> httpx.Response:
        calls.append((request.method, request.url.path))
        raise httpx.ReadTimeout("timed out", request=request)

    calls.clear()
    with _mock_client(slow) as c:
        with pytest.raises(RequestTimeoutError):
            c.analyze(b"img")
        assert len(calls) == 1  # a sync analysis that timed out is not run again
        with pytest.raises(RequestTimeoutError):
            c.get_image("img_1")
        assert len(calls) == 1 + 4

    def refused(request: httpx.Request) -> httpx.Response:
        calls.append((request.method, None))
        raise httpx.ConnectError("refused", request=request)

    calls.clear()
    with _mock_client(refused, max_retries=2) as c, pytest.raises(SDKConnectionError):
        c.submit(b"img")
    assert len(calls) == 3  # never connected: nothing reached the server


def test_real_connection_refused_is_a_connection_error(fast_backoff: None) -> None:
    with (
        Client(f"http://127.0.0.1:{free_port()}", "k", max_retries=1) as c,
        pytest.raises(SDKConnectionError),
    ):
        c.health()


# --------------------------------------------------------------- errors & models


def test_error_mapping_slug_first_then_status() -> None:
    assert type(error_for({"slug": "invalid_image", "status": 422})) is InvalidImageError
    assert type(error_for({"slug": "validation_error", "status": 422})) is ValidationError
    assert type(error_for({"slug": "something_new", "status": 409})) is ConflictError
    assert type(error_for({"slug": "something_new", "status": 502})) is ServerError
    assert type(error_for({"slug": "something_new", "status": 418})) is OpenSightError
    assert type(error_for({"type": "model_unavailable", "status": 503})) is ModelUnavailableError
    limited = error_for({"slug": "rate_limited"}, 429, retry_after=2.0)
    assert isinstance(limited, RateLimitError) and limited.retry_after == 2.0


def test_non_json_error_page_becomes_server_error() -> None:
    def gateway(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="<html>Bad Gateway</html>")

    with _mock_client(gateway, max_retries=0) as c, pytest.raises(ServerError) as err:
        c.get_job("job_1")
    assert err.value.status_code == 502 and err.value.slug == "http_502"
    assert "Bad Gateway" in err.value.detail


def test_models_keep_unknown_fields() -> None:
    job = Job.model_validate(
        {
            "id": "job_1",
            "status": "paused_by_future_server",
            "shiny": {"x": 1},
            "error": {"type": "https://opensight.dev/problems/url_fetch_failed", "detail": "d"},
        }
    )
    assert job.model_extra == {"shiny": {"x": 1}}
    assert not job.is_final
    assert job.error is not None and job.error.slug == "url_fetch_failed"
    assert Problem(type="https://opensight.dev/problems/not_found").slug == "not_found"


# ------------------------------------------------------------------ webhooks


def _signed(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {"X-OpenSight-Timestamp": ts, "X-OpenSight-Signature": sign(secret, ts, body)}


def test_verify_webhook_matches_the_server() -> None:
    secret = "oss_test_secret"
    body = json.dumps({"id": "job_1", "status": "completed", "features": ["quality"]}).encode()
    headers = _signed(secret, body)
    assert verify_webhook(body, headers, secret)
    assert verify_webhook(body.decode(), {k.lower(): v for k, v in headers.items()}, secret)
    assert not verify_webhook(body.replace(b"completed", b"failed"), headers, secret)
    assert not verify_webhook(body, headers, "another_secret")
    assert not verify_webhook(body, _signed(secret, body, int(time.time()) - 3600), secret)
    assert verify_webhook(body, _signed(secret, body, int(time.time()) - 3600), secret, 7200)
    assert not verify_webhook(
        body, {"X-OpenSight-Timestamp": headers["X-OpenSight-Timestamp"]}, secret
    )
    assert not verify_webhook(body, {**headers, "X-OpenSight-Timestamp": "soon"}, secret)

    event = construct_event(body, headers, secret)
    assert event.id == "job_1" and event.status == "completed"
    with pytest.raises(WebhookVerificationError, match="signature"):
        construct_event(body + b" ", headers, secret)
    with pytest.raises(WebhookVerificationError, match="tolerance"):
        construct_event(body, _signed(secret, body, 0), secret)
    not_a_job = b'{"hello": 1}'
    with pytest.raises(WebhookVerificationError, match="not a job"):
        construct_event(not_a_job, _signed(secret, not_a_job), secret)

    # same algorithm as the server, both ways
    for ts, payload in (("1700000000", b""), ("1", b"\x00\xff{}"), ("99", body)):
        assert compute_signature(secret, ts, payload) == sign(secret, ts, payload)
    ts = headers["X-OpenSight-Timestamp"]
    assert verify_signature(secret, ts, body, compute_signature(secret, ts, body))


def test_webhook_delivered_by_the_server_verifies(
    client: Client, tenant: dict[str, Any], site: _Site, photo: bytes
) -> None:
    job = client.submit(photo, ["quality"], webhook_url=site_url(site, "/hook"))
    assert job.webhook is not None and job.webhook.url.endswith("/hook")
    deadline = time.monotonic() + 30
    delivery = None
    while delivery is None and time.monotonic() < deadline:
        delivery = next(
            ((h, b) for h, b in list(site.hooks) if h.get("X-OpenSight-Job") == job.id), None
        )
        time.sleep(0.05)
    assert delivery is not None, "no webhook delivery arrived"
    headers, body = delivery
    assert verify_webhook(body, headers, tenant["secret"])
    event = construct_event(body, headers, tenant["secret"])
    assert event.id == job.id and event.status == "completed"
    assert event.result is not None and "quality" in event.result
    assert not verify_webhook(body, headers, "oss_wrong")


# --------------------------------------------------------------------- async


def test_async_client_main_paths(
    shared_server: ServerProcess,
    tenant: dict[str, Any],
    photo: bytes,
    photo_path: Path,
    site: _Site,
) -> None:
    async def main() -> None:
        async with AsyncClient(shared_server.url, tenant["key"]) as c:
            results = await asyncio.gather(
                c.analyze(photo_path),
                c.analyze(photo, ["quality"]),
                c.analyze(site_url(site, "/photo.jpg")),
            )
            assert_completed(results[0])
            assert_completed(results[1], ("quality",))
            assert_completed(results[2])
            with photo_path.open("rb") as fh:
                assert_completed(await c.analyze(fh))

            job = await c.submit(photo, ["metadata"], idempotency_key=f"a-{uuid.uuid4()}")
            done = await c.wait(job, timeout=60)
            assert done.status == "completed" and done.result and "metadata" in done.result
            ids = [j.id async for j in c.list_jobs(limit=1)]
            assert ids == [job.id]

            key = f"same-{uuid.uuid4()}"
            racing = await asyncio.gather(
                *(c.submit(photo, ["metadata"], idempotency_key=key) for _ in range(6))
            )
            assert len({j.id for j in racing}) == 1  # concurrent repeats: still one job
            await c.wait(racing[0], timeout=60)

            batch = await c.batch([photo_path, site_url(site, "/photo.jpg")], "quality")
            assert (await c.wait_batch(batch, timeout=120)).counts == {"completed": 2}
            jobs = [j async for j in c.batch_results(batch)]
            assert [j.batch_index for j in jobs] == [0, 1]

            info = await c.upload_image(photo)
            assert (await c.get_image(info.id)).sha256 == info.sha256
            assert await c.download_image(info.id) == photo
            assert_completed(await c.analyze(image_id=info.id))
            await c.delete_image(info)

            with pytest.raises(NotFoundError):
                await c.get_job("job_nope")
            with pytest.raises(ConflictError):
                await c.cancel(done)
            with pytest.raises(UnsupportedMediaTypeError):
                await c.analyze(b"not an image")
            with pytest.raises(InvalidImageError):
                await c.analyze(photo[:2000])
            assert any(a.name == "quality" for a in await c.analyzers())
            assert (await c.health())["status"] == "ok"
            assert (await c.ready())["status"] == "ok"

        async with AsyncClient(shared_server.url, "osk_bad") as bad:
            with pytest.raises(AuthenticationError):
                await bad.analyzers()

    asyncio.run(main())


def test_async_rate_limit_retry(fast_backoff: None) -> None:
    calls: list[int] = []

    def limited(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) == 1:
            return _problem(429, "rate_limited", **{"Retry-After": "0"})
        return httpx.Response(200, json={"id": "job_1", "status": "pending"})

    async def main() -> None:
        transport = httpx.MockTransport(limited)
        async with AsyncClient("http://api.test", "k", transport=transport) as c:
            job = await c.submit(b"img")
            assert job.id == "job_1" and len(calls) == 2
        calls.clear()
        async with AsyncClient("http://api.test", "k", transport=transport, max_retries=0) as c:
            with pytest.raises(RateLimitError) as err:
                await c.submit(b"img")
            assert err.value.retry_after == 0

    asyncio.run(main())
