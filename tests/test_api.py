"""The native API through a real server process over HTTP."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from opensight.jobs.webhooks import verify_signature
from tests.conftest import photo_bytes
from tests.httpstub import Stub
from tests.server import ServerProcess, cli, create_key

PROBLEM = "application/problem+json"


def client_for(server: ServerProcess, key: dict[str, Any] | str | None) -> httpx.Client:
    token = key["key"] if isinstance(key, dict) else key
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=server.url, headers=headers, timeout=60)


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["slug"] == slug and body["status"] == status and body["detail"]
    assert body["type"].endswith("/" + slug)
    return dict(body)


def wait_job(http: httpx.Client, job_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = http.get(f"/v1/jobs/{job_id}").json()
        if job["status"] not in ("pending", "processing"):
            return dict(job)
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish: {job}")


# ------------------------------------------------------------------- basics
def test_health_ready_metrics_and_docs(shared_server: ServerProcess) -> None:
    assert httpx.get(shared_server.url + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(shared_server.url + "/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {
        "database": True,
        "workers": True,
    }
    metrics = httpx.get(shared_server.url + "/metrics").text
    assert "opensight_http_requests_total" in metrics and "opensight_queue_depth" in metrics
    assert 'opensight_jobs{status="pending"}' in metrics
    spec = httpx.get(shared_server.url + "/openapi.json").json()
    assert "/v1/analyze" in spec["paths"] and "/v1/batch/{batch_id}/results" in spec["paths"]


def test_auth_missing_wrong_and_revoked(
    shared_server: ServerProcess, tenant: dict[str, Any]
) -> None:
    assert_problem(client_for(shared_server, None).get("/v1/jobs"), 401, "unauthorized")
    assert_problem(client_for(shared_server, "osk_nope").get("/v1/jobs"), 401, "unauthorized")
    http = client_for(shared_server, tenant)
    assert http.get("/v1/jobs").status_code == 200
    cli(shared_server.data_dir, "keys", "revoke", tenant["key"])
    deadline = time.monotonic() + 5  # verified keys are trusted for 1 s (auth cache)
    while (response := http.get("/v1/jobs")).status_code == 200:
        assert time.monotonic() < deadline, "a revoked key still works"
        time.sleep(0.1)
    assert_problem(response, 403, "forbidden")


def test_tenants_see_only_their_own(shared_server: ServerProcess, photo: bytes) -> None:
    a = client_for(shared_server, create_key(shared_server.data_dir, "iso-a", tenant="iso-a"))
    b = client_for(shared_server, create_key(shared_server.data_dir, "iso-b", tenant="iso-b"))
    image = a.post("/v1/images", files={"image": ("p.jpg", photo)}).json()
    job = a.post("/v1/analyze", files={"image": ("p.jpg", photo)}, data={"async": "true"}).json()
    batch = a.post("/v1/batch", json={"sources": [{"image_id": image["id"]}]}).json()
    for path in (
        f"/v1/images/{image['id']}",
        f"/v1/images/{image['id']}/content",
        f"/v1/jobs/{job['id']}",
        f"/v1/batch/{batch['id']}",
        f"/v1/batch/{batch['id']}/results",
    ):
        assert_problem(b.get(path), 404, "not_found")
        assert a.get(path).status_code == 200
    assert_problem(b.delete(f"/v1/images/{image['id']}"), 404, "not_found")
    assert_problem(b.delete(f"/v1/jobs/{job['id']}"), 404, "not_found")
    assert_problem(b.post("/v1/analyze", json={"image_id": image["id"]}), 404, "not_found")
    assert all(j["id"] != job["id"] for j in b.get("/v1/jobs").json()["jobs"])
    # the same bytes in tenant B get B's own image (same id, separate row)
    assert b.post("/v1/images", files={"image": ("p.jpg", photo)}).status_code == 201


# ------------------------------------------------------------------- images
def test_images_roundtrip(
    shared_server: ServerProcess, tenant: dict[str, Any], photo: bytes
) -> None:
    http = client_for(shared_server, tenant)
    first = http.post("/v1/images", files={"image": ("p.jpg", photo)})
    again = http.post("/v1/images", files={"image": ("other-name.jpg", photo)})
    assert first.status_code == 201 and again.status_code == 200
    info = first.json()
    assert info["id"] == again.json()["id"]
    assert (info["width"], info["height"], info["format"], info["bytes"]) == (
        640,
        480,
        "jpeg",
        len(photo),
    )
    content = http.get(f"/v1/images/{info['id']}/content")
    assert content.content == photo and content.headers["content-type"] == "image/jpeg"
    assert http.delete(f"/v1/images/{info['id']}").status_code == 204
    assert_problem(http.get(f"/v1/images/{info['id']}"), 404, "not_found")
    assert_problem(http.post("/v1/images", data={"x": "1"}), 422, "validation_error")


# ------------------------------------------------------------------ analyze
def test_analyze_sync_every_source(
    shared_server: ServerProcess, tenant: dict[str, Any], photo: bytes
) -> None:
    http = client_for(shared_server, tenant)
    by_upload = http.post(
        "/v1/analyze", files={"image": ("p.jpg", photo)}, data={"features": "quality,metadata"}
    )
    assert by_upload.status_code == 200, by_upload.text
    body = by_upload.json()
    assert body["status"] == "completed" and set(body["result"]) == {"quality", "metadata"}
    assert body["result"]["metadata"]["width"] == 640
    assert body["result"]["quality"]["label"] in ("low", "medium", "high")

    b64 = http.post(
        "/v1/analyze", json={"base64": base64.b64encode(photo).decode(), "features": ["metadata"]}
    )
    assert b64.status_code == 200 and set(b64.json()["result"]) == {"metadata"}

    raw = http.post(
        "/v1/analyze",
        content=photo,
        params={"features": "quality"},
        headers={"content-type": "image/jpeg"},
    )
    assert raw.status_code == 200 and raw.json()["result"]["quality"] == body["result"]["quality"]

    image_id = http.post("/v1/images", files={"image": ("p.jpg", photo)}).json()["id"]
    by_id = http.post("/v1/analyze", json={"image_id": image_id, "features": ["quality"]})
    assert by_id.json()["result"]["quality"] == body["result"]["quality"]

    with Stub(routes={"/p.jpg": (200, {"Content-Type": "image/jpeg"}, photo)}) as stub:
        by_url = http.post("/v1/analyze", json={"url": stub.url + "/p.jpg"})
        assert (
            by_url.status_code == 200
            and by_url.json()["image"]["sha256"] == body["image"]["sha256"]
        )
        missing = http.post("/v1/analyze", json={"url": stub.url + "/nope.jpg"})
        assert_problem(missing, 422, "url_fetch_failed")


def test_analyze_bad_requests(
    shared_server: ServerProcess, tenant: dict[str, Any], photo: bytes
) -> None:
    http = client_for(shared_server, tenant)
    assert_problem(http.post("/v1/analyze", json={}), 422, "validation_error")
    assert_problem(
        http.post("/v1/analyze", json={"url": "http://x/a.jpg", "image_id": "i"}),
        422,
        "validation_error",
    )
    assert_problem(http.post("/v1/analyze", json={"base64": "%%%"}), 422, "validation_error")
    assert_problem(
        http.post("/v1/analyze", json={"image_id": "img_x", "features": ["nope"]}),
        422,
        "validation_error",
    )
    assert_problem(
        http.post("/v1/analyze", json={"image_id": "img_x", "bogus": 1}), 422, "validation_error"
    )
    assert_problem(
        http.post("/v1/analyze", json={"image_id": "img_x", "ttl": -1}), 422, "validation_error"
    )
    assert_problem(
        http.post(
            "/v1/analyze", content=b"{not json", headers={"content-type": "application/json"}
        ),
        422,
        "validation_error",
    )
    assert_problem(
        http.post("/v1/analyze", content=b"abc", headers={"content-type": "text/plain"}),
        415,
        "unsupported_media_type",
    )
    assert_problem(
        http.post("/v1/analyze", json={"url": "ftp://example.com/a.jpg"}), 400, "url_not_allowed"
    )
    assert_problem(
        http.post("/v1/analyze", files={"image": ("p.jpg", photo)}, data={"image_id": "img_x"}),
        422,
        "validation_error",
    )


def test_bad_file_corpus_gets_precise_answers(
    shared_server: ServerProcess, tenant: dict[str, Any], tmp_path: Path
) -> None:
    from tests.images_corpus import EXPECTED, build_corpus

    http = client_for(shared_server, tenant)
    corpus = build_corpus(tmp_path)
    for name, path in corpus.items():
        response = http.post(
            "/v1/analyze",
            files={"image": (path.name, path.read_bytes())},
            data={"features": "quality,metadata"},
        )
        expected = EXPECTED[name]
        if expected[0] != "ok":
            assert_problem(response, expected[1], expected[0])
        else:
            assert response.status_code == 200, (name, response.text)
            body = response.json()
            assert body["status"] == "completed"
            assert (body["image"]["width"], body["image"]["height"]) == expected[1], name
            assert body["image"]["format"] == expected[2]
        assert httpx.get(shared_server.url + "/healthz").status_code == 200


def test_upload_over_the_byte_limit_is_413(tmp_path: Path) -> None:
    server = ServerProcess(
        tmp_path / "d", workers=0, env={"OPENSIGHT_MAX_UPLOAD_BYTES": "50000"}
    ).start()
    try:
        http = client_for(server, create_key(server.data_dir, "k"))
        big = photo_bytes((1600, 1200))
        assert len(big) > 50000
        assert_problem(
            http.post("/v1/analyze", files={"image": ("b.jpg", big)}), 413, "image_too_large"
        )
        assert_problem(
            http.post("/v1/images", files={"image": ("b.jpg", big)}), 413, "image_too_large"
        )
    finally:
        server.stop()


# --------------------------------------------------------------------- jobs
def test_async_job_lifecycle_and_idempotency(
    shared_server: ServerProcess, tenant: dict[str, Any], photo: bytes
) -> None:
    http = client_for(shared_server, tenant)
    submitted = http.post(
        "/v1/analyze",
        files={"image": ("p.jpg", photo)},
        data={"async": "true", "features": "quality"},
        headers={"Idempotency-Key": "k-1"},
    )
    assert submitted.status_code == 202
    job = submitted.json()
    assert job["status"] in ("pending", "processing", "completed")
    assert submitted.headers["location"] == f"/v1/jobs/{job['id']}"
    repeat = http.post(
        "/v1/analyze",
        files={"image": ("p.jpg", photo)},
        data={"async": "true", "features": "quality"},
        headers={"Idempotency-Key": "k-1"},
    )
    assert repeat.status_code == 200 and repeat.json()["id"] == job["id"]
    done = wait_job(http, job["id"])
    assert done["status"] == "completed" and "quality" in done["result"]
    assert done["finished_at"] and done["created_at"]
    listed = http.get("/v1/jobs", params={"status": "completed"}).json()
    assert [j["id"] for j in listed["jobs"]] == [job["id"]]
    assert_problem(http.get("/v1/jobs", params={"status": "weird"}), 422, "validation_error")
    assert_problem(http.delete(f"/v1/jobs/{job['id']}"), 409, "conflict")
    assert_problem(http.post(f"/v1/jobs/{job['id']}/retry"), 409, "conflict")
    assert_problem(http.get("/v1/jobs/job_unknown"), 404, "not_found")


def test_skip_gate_gives_skipped_with_reason(
    shared_server: ServerProcess, tenant: dict[str, Any]
) -> None:
    import io

    from PIL import Image, ImageFilter

    http = client_for(shared_server, tenant)
    blurred = Image.open(io.BytesIO(photo_bytes())).filter(ImageFilter.GaussianBlur(8))
    buf = io.BytesIO()
    blurred.save(buf, "JPEG")
    body = http.post(
        "/v1/analyze",
        files={"image": ("b.jpg", buf.getvalue())},
        data={"skip_on": "blurry,dark", "features": "quality"},
    ).json()
    assert body["status"] == "skipped" and body["reason"] == "blurry"


def test_ttl_timeout_then_retry_and_cancel(tmp_path: Path, photo: bytes) -> None:
    server = ServerProcess(tmp_path / "d", workers=0).start()  # nothing runs jobs yet
    try:
        http = client_for(server, create_key(server.data_dir, "k"))
        short = http.post(
            "/v1/analyze", files={"image": ("p.jpg", photo)}, data={"async": "true", "ttl": "1"}
        ).json()
        other = http.post(
            "/v1/analyze", files={"image": ("p.jpg", photo)}, data={"async": "true"}
        ).json()
        cancelled = http.delete(f"/v1/jobs/{other['id']}")
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        time.sleep(1.2)
    finally:
        server.stop()
    server = ServerProcess(tmp_path / "d", workers=1).start()
    try:
        http = client_for(server, create_key(server.data_dir, "k2", tenant="k"))
        assert wait_job(http, short["id"])["status"] == "timeout"
        retried = http.post(f"/v1/jobs/{short['id']}/retry")
        assert retried.status_code == 202 and retried.json()["status"] == "pending"
        assert wait_job(http, short["id"])["status"] == "completed"
        assert http.get(f"/v1/jobs/{other['id']}").json()["status"] == "cancelled"
    finally:
        server.stop()


def test_sigkill_with_jobs_in_flight_loses_nothing(tmp_path: Path) -> None:
    """Kill -9 the server while 20 async jobs are queued or running; restart; 20/20 complete."""
    # 12 MP images, made before the server starts: slow enough to still be in flight at the kill
    images = [photo_bytes((4000, 3000), seed=n) for n in range(1, 5)]
    server = ServerProcess(tmp_path / "d", workers=1).start()
    key = create_key(server.data_dir, "crash")
    http = client_for(server, key)
    ids = []
    for n in range(20):
        data = images[n % len(images)]
        response = http.post(
            "/v1/analyze",
            files={"image": ("big.jpg", data)},
            data={"async": "true", "features": "quality,metadata"},
        )
        assert response.status_code == 202
        ids.append(response.json()["id"])
    statuses = {j["status"] for j in (http.get(f"/v1/jobs/{i}").json() for i in ids)}
    server.kill()
    assert "pending" in statuses, "jobs finished before the kill; the test proves nothing"

    server.start()
    http = client_for(server, key)
    try:
        finals = [wait_job(http, i, timeout=180) for i in ids]
    finally:
        server.stop()
    assert [j["status"] for j in finals] == ["completed"] * 20
    assert all("quality" in j["result"] for j in finals)
    if "processing" in statuses:  # the job held at the kill was handed out again
        assert max(j["attempts"] for j in finals) == 2


# ------------------------------------------------------------------ batches
def test_batch_counts_and_ndjson_results(
    shared_server: ServerProcess, tenant: dict[str, Any], photo: bytes
) -> None:
    http = client_for(shared_server, tenant)
    image_id = http.post("/v1/images", files={"image": ("p.jpg", photo)}).json()["id"]
    with Stub(routes={"/p.jpg": (200, {}, photo), "/bad.jpg": (200, {}, b"not an image")}) as stub:
        sources = [
            {"image_id": image_id},
            stub.url + "/p.jpg",
            stub.url + "/bad.jpg",
            {"base64": base64.b64encode(photo).decode()},
        ]
        created = http.post("/v1/batch", json={"sources": sources, "features": ["metadata"]})
        assert created.status_code == 202, created.text
        batch = created.json()
        assert batch["total"] == 4
        deadline = time.monotonic() + 60
        while not (status := http.get(f"/v1/batch/{batch['id']}").json())["done"]:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    assert status["counts"] == {"completed": 3, "failed": 1}
    lines = http.get(f"/v1/batch/{batch['id']}/results").text.strip().splitlines()
    jobs = [json.loads(line) for line in lines]
    assert [j["batch_index"] for j in jobs] == [0, 1, 2, 3]
    assert jobs[2]["status"] == "failed" and jobs[2]["error"]["slug"] == "unsupported_media_type"
    assert jobs[0]["result"]["metadata"]["width"] == 640
    assert_problem(http.post("/v1/batch", json={"sources": []}), 422, "validation_error")
    assert_problem(
        http.post("/v1/batch", json={"sources": ["http://x/a.jpg"] * 1001}), 422, "validation_error"
    )
    assert_problem(
        http.post("/v1/batch", json={"sources": [{"image_id": "img_missing"}]}), 404, "not_found"
    )


def test_analyzers_listing(shared_server: ServerProcess, tenant: dict[str, Any]) -> None:
    body = client_for(shared_server, tenant).get("/v1/analyzers").json()
    by_name = {a["name"]: a for a in body["analyzers"]}
    assert by_name["quality"]["ready"] and by_name["quality"]["version"]
    assert by_name["metadata"]["missing"] == []


# ---------------------------------------------------------- limits & guards
def test_rate_limit_429_with_retry_after(tmp_path: Path) -> None:
    server = ServerProcess(
        tmp_path / "d",
        workers=0,
        env={"OPENSIGHT_RATE_LIMIT_PER_SECOND": "1", "OPENSIGHT_RATE_LIMIT_BURST": "3"},
    ).start()
    try:
        http = client_for(server, create_key(server.data_dir, "k"))
        codes = [http.get("/v1/jobs").status_code for _ in range(4)]
        assert codes[:3] == [200, 200, 200]
        limited = http.get("/v1/jobs")
        body = assert_problem(limited, 429, "rate_limited")
        assert int(limited.headers["retry-after"]) >= 1 and body["detail"]
        other = client_for(server, create_key(server.data_dir, "k2"))
        assert other.get("/v1/jobs").status_code == 200  # buckets are per key
    finally:
        server.stop()


def test_ssrf_guard_refuses_private_targets(tmp_path: Path, photo: bytes) -> None:
    server = ServerProcess(
        tmp_path / "d", workers=0, env={"OPENSIGHT_ALLOW_PRIVATE_URLS": "false"}
    ).start()
    try:
        http = client_for(server, create_key(server.data_dir, "k"))
        with Stub(routes={"/p.jpg": (200, {}, photo)}) as stub:
            for url in (
                stub.url + "/p.jpg",
                "http://169.254.169.254/latest/meta-data/",
                "http://[::1]/x.jpg",
                "http://10.0.0.1/x.jpg",
                "http://metadata.google.internal/x",
            ):
                assert_problem(http.post("/v1/analyze", json={"url": url}), 400, "url_not_allowed")
            assert_problem(
                http.post(
                    "/v1/analyze",
                    files={"image": ("p.jpg", photo)},
                    data={"async": "true", "webhook_url": stub.url + "/h"},
                ),
                400,
                "url_not_allowed",
            )
    finally:
        server.stop()


# ----------------------------------------------------------------- webhooks
def test_webhook_signed_and_retried(tmp_path: Path, photo: bytes) -> None:
    server = ServerProcess(
        tmp_path / "d", workers=1, env={"OPENSIGHT_WEBHOOK_BACKOFF_SECONDS": "0.2"}
    ).start()
    try:
        key = create_key(server.data_dir, "hooks")
        http = client_for(server, key)
        with Stub(post_status=lambda n: 500 if n <= 2 else 204) as stub:
            job = http.post(
                "/v1/analyze",
                files={"image": ("p.jpg", photo)},
                data={"async": "true", "webhook_url": stub.url + "/hook", "features": "metadata"},
            ).json()
            deadline = time.monotonic() + 30
            while len(stub.received) < 3:
                assert time.monotonic() < deadline, stub.received
                time.sleep(0.05)
            time.sleep(0.3)
            final = http.get(f"/v1/jobs/{job['id']}").json()
        assert len(stub.received) == 3
        last = stub.received[-1]
        headers = {k.lower(): v for k, v in last.headers.items()}
        assert verify_signature(
            key["secret"],
            headers["x-opensight-timestamp"],
            last.body,
            headers["x-opensight-signature"],
        )
        assert not verify_signature(
            "wrong", headers["x-opensight-timestamp"], last.body, headers["x-opensight-signature"]
        )
        delivered = json.loads(last.body)
        assert delivered["id"] == job["id"] and delivered["status"] == "completed"
        assert final["webhook"]["status"] == "delivered"
        attempts = final["webhook"]["attempts"]
        assert [a.get("status_code") for a in attempts] == [500, 500, 204]
    finally:
        server.stop()


@pytest.mark.postgres
def test_server_on_postgresql(tmp_path: Path, pg_url: str, photo: bytes) -> None:
    """The same code on PostgreSQL: OPENSIGHT_DATABASE_URL is all it takes."""
    env = {"OPENSIGHT_DATABASE_URL": pg_url.replace("postgresql+psycopg", "postgresql")}
    server = ServerProcess(tmp_path / "d", workers=2, env=env).start()
    try:
        key = create_key(server.data_dir, "pg", tenant="pg", env=env)
        assert cli(server.data_dir, "keys", "list", "--json", env=env).stdout.count('"pg"') == 2
        http = client_for(server, key)
        ids = [
            http.post(
                "/v1/analyze",
                files={"image": ("p.jpg", photo)},
                data={"async": "true", "features": "metadata"},
            ).json()["id"]
            for _ in range(5)
        ]
        assert [wait_job(http, i)["status"] for i in ids] == ["completed"] * 5
    finally:
        server.stop()
    assert not (tmp_path / "d" / "opensight.db").exists()


def test_async_corrupt_image_fails_the_job_precisely(
    shared_server: ServerProcess, tenant: dict[str, Any], photo: bytes
) -> None:
    """Async submission checks the header; the worker's single decode finds the truncation."""
    http = client_for(shared_server, tenant)
    truncated = photo[: len(photo) * 6 // 10]
    job = http.post("/v1/analyze", files={"image": ("t.jpg", truncated)}, data={"async": "true"})
    assert job.status_code == 202
    done = wait_job(http, job.json()["id"])
    assert done["status"] == "failed" and done["error"]["slug"] == "invalid_image"
    assert_problem(
        http.post("/v1/analyze", files={"image": ("x.jpg", b"text")}, data={"async": "true"}),
        415,
        "unsupported_media_type",
    )
    assert_problem(
        http.post("/v1/images", files={"image": ("t.jpg", truncated)}), 422, "invalid_image"
    )
