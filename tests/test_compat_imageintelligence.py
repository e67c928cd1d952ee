"""Image Intelligence (/v2) against the real server process: OAuth2 client-credential
tokens, detect requests (one native job per image), per-image error statuses, search,
the completion webhook on a real receiver, bad input in the API's own error shape, and
the human-in-the-loop review queue."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from opensight.compat.imageintelligence import tokens
from opensight.compat.imageintelligence.render import render_job
from opensight.compat.imageintelligence.schemas import DetectRequestBody, parse
from opensight.compat.imageintelligence.webhook import render as render_webhook
from opensight.config import Settings
from opensight.errors import ModelUnavailable, NotFound
from opensight.jobs.model import JobStatus, new_id
from opensight.jobs.store import NewJob
from opensight.jobs.webhooks import verify_signature
from opensight.jobs.worker import JobOutcome
from opensight.services.container import Container
from tests.conftest import photo_bytes
from tests.httpstub import Stub
from tests.server import ServerProcess, cli, create_key

FINAL = {"COMPLETED_SUCCESSFULLY", "COMPLETED_PARTIAL_ERROR", "COMPLETED_ALL_ERROR"}


@pytest.fixture(scope="module")
def stub() -> Iterator[Stub]:
    with Stub() as s:
        s.routes["/photo.jpg"] = (200, {"Content-Type": "image/jpeg"}, photo_bytes())
        s.routes["/other.jpg"] = (200, {"Content-Type": "image/jpeg"}, photo_bytes(seed=7))
        s.routes["/text.txt"] = (200, {"Content-Type": "text/plain"}, b"not an image at all")
        yield s


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp("ii-server")
    srv = ServerProcess(
        data, workers=2, env={"OPENSIGHT_MODEL_DIR": str(data / "no-models")}
    ).start()
    yield srv
    srv.stop()


@pytest.fixture
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def shared_key(server: ServerProcess) -> dict[str, Any]:
    """One tenant for the tests that create nothing (a key costs a CLI start)."""
    return create_key(server.data_dir, "ii-shared", tenant="ii-shared")


@pytest.fixture
def key(server: ServerProcess, request: pytest.FixtureRequest) -> dict[str, Any]:
    """A fresh tenant: for tests that create requests or revoke the key."""
    name = request.node.name[:40].replace("[", "-").replace("]", "")
    return create_key(server.data_dir, name, tenant=f"ii-{name}-{id(request)}")


def access(client: httpx.Client, key: dict[str, Any]) -> dict[str, str]:
    reply = client.post(
        "/v2/oauth/token", json={"clientId": key["key"], "clientSecret": key["secret"]}
    )
    assert reply.status_code == 200, reply.text
    return {"Authorization": f"Bearer {reply.json()['accessToken']}"}


def assert_error(reply: httpx.Response, status: int, contains: str = "") -> dict[str, Any]:
    """The API's own error shape, never problem+json, never a 500."""
    assert reply.status_code == status, reply.text
    body = reply.json()
    assert set(body) == {"statusCode", "error", "message"}, body
    assert body["statusCode"] == status and isinstance(body["error"], str)
    assert contains.lower() in body["message"].lower(), body
    assert not reply.headers["content-type"].startswith("application/problem+json")
    return body


def wait_final(
    client: httpx.Client, headers: dict[str, str], detect_id: str, timeout: float = 60
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(f"/v2/detect/{detect_id}", headers=headers).json()
        if body["status"] in FINAL or time.monotonic() > deadline:
            return body
        time.sleep(0.2)


# --------------------------------------------------------------------- tokens
def test_token_for_client_credentials(client: httpx.Client, shared_key: dict[str, Any]) -> None:
    before = int(time.time() * 1000)
    first = client.post(
        "/v2/oauth/token",
        json={"clientId": shared_key["key"], "clientSecret": shared_key["secret"]},
    )
    assert first.status_code == 200, first.text
    body = first.json()
    assert set(body) == {"accessToken", "expiresAt", "issuedAt", "orgName", "appName", "scope"}
    assert before - 5 <= body["issuedAt"] <= int(time.time() * 1000) + 5
    assert body["expiresAt"] - body["issuedAt"] == 24 * 3600 * 1000
    assert body["orgName"] == shared_key["tenant"] and body["appName"] == shared_key["name"]
    assert "detect:create" in body["scope"].split()
    # JSON whatever the Content-Type; every request issues a new token
    second = client.post(
        "/v2/oauth/token",
        content=json.dumps({"clientId": shared_key["key"], "clientSecret": shared_key["secret"]}),
        headers={"Content-Type": "text/plain"},
    )
    assert second.status_code == 200 and second.json()["accessToken"] != body["accessToken"]
    for token in (body["accessToken"], second.json()["accessToken"]):
        reply = client.get("/v2/detect", headers={"Authorization": f"Bearer {token}"})
        assert reply.status_code == 200 and reply.json() == []


@pytest.mark.parametrize(
    ("payload", "status", "contains"),
    [
        ({"clientId": "osk_nope", "clientSecret": "x"}, 401, "invalid client credentials"),
        ("WRONG_SECRET", 401, "invalid client credentials"),
        ({"clientId": "KEY"}, 400, "clientSecret"),
        ({"clientSecret": "x"}, 400, "clientId"),
        ({"clientId": "KEY", "clientSecret": "SECRET", "grant": 1}, 400, "grant"),
        ({"clientId": 5, "clientSecret": "SECRET"}, 400, "clientId"),
        ({"clientId": "KEY", "clientSecret": ["SECRET"]}, 400, "clientSecret"),
        (b"{not json", 400, "not valid JSON"),
        (b"[1, 2]", 400, "JSON object"),
        (b"", 400, "JSON object"),
        (b'{"clientId": "' + b"a" * 20000 + b'"}', 413, "limit"),
    ],
)
def test_token_bad_input(
    client: httpx.Client, shared_key: dict[str, Any], payload: Any, status: int, contains: str
) -> None:
    if payload == "WRONG_SECRET":
        payload = {"clientId": shared_key["key"], "clientSecret": shared_key["secret"] + "x"}
    if isinstance(payload, dict):
        payload = {
            k: (shared_key["key"] if v == "KEY" else shared_key["secret"] if v == "SECRET" else v)
            for k, v in payload.items()
        }
        reply = client.post("/v2/oauth/token", json=payload)
    else:
        reply = client.post("/v2/oauth/token", content=payload)
    body = assert_error(reply, status, contains)
    if status == 401:
        assert "WWW-Authenticate" in reply.headers and shared_key["secret"] not in body["message"]


def test_access_token_rejections(
    server: ServerProcess, client: httpx.Client, key: dict[str, Any]
) -> None:
    good = access(client, key)
    assert client.get("/v2/detect", headers=good).status_code == 200
    assert_error(client.get("/v2/detect"), 401, "Bearer")
    assert_error(client.get("/v2/detect", headers={"Authorization": "Basic abc"}), 401)
    assert_error(client.get("/v2/detect", headers={"Authorization": "Bearer garbage"}), 401)
    # the native key is not an access token here
    assert_error(client.get("/v2/detect", headers={"Authorization": f"Bearer {key['key']}"}), 401)
    token = good["Authorization"].split()[1]
    prefix, payload, mac = token.split(".")
    claims = json.loads(tokens._unb64(payload))
    forged = tokens._b64(json.dumps({**claims, "exp": claims["exp"] + 10**9}).encode())
    for bad in (f"{prefix}.{forged}.{mac}", f"{prefix}.{payload}.{mac[:-2]}AA", token + "x"):
        assert_error(client.get("/v2/detect", headers={"Authorization": f"Bearer {bad}"}), 401)
    # signed with the right secret but expired
    old = tokens.issue(key["id"], key["secret"], at_ms=int(time.time() * 1000) - 25 * 3600 * 1000)
    assert_error(
        client.get("/v2/detect", headers={"Authorization": f"Bearer {old.token}"}), 401, "expired"
    )
    # signed with another key's secret
    other = create_key(server.data_dir, "other-signer")
    foreign = tokens.issue(key["id"], other["secret"])
    assert_error(
        client.get("/v2/detect", headers={"Authorization": f"Bearer {foreign.token}"}), 401
    )
    # revoking the key kills its live tokens at once and refuses new ones
    cli(server.data_dir, "keys", "revoke", key["key"])
    assert_error(client.get("/v2/detect", headers=good), 401, "revoked")
    assert_error(
        client.post(
            "/v2/oauth/token", json={"clientId": key["key"], "clientSecret": key["secret"]}
        ),
        401,
    )


# --------------------------------------------------------------- bad detect input
IMAGE = {"url": "http://127.0.0.1:1/a.jpg"}
CLASSES = [{"class": "person"}]


@pytest.mark.parametrize(
    ("body", "contains"),
    [
        ({"classes": CLASSES}, "images"),
        ({"images": [IMAGE]}, "classes"),
        ({"images": [], "classes": CLASSES}, "images"),
        ({"images": [IMAGE] * 65, "classes": CLASSES}, "images"),
        ({"images": [IMAGE], "classes": []}, "classes"),
        ({"images": [IMAGE], "classes": CLASSES, "colour": "red"}, "colour"),
        ({"images": [{"url": "http://x/a.jpg", "size": 3}], "classes": CLASSES}, "images.0.size"),
        ({"images": [{"customId": "a"}], "classes": CLASSES}, "images.0.url"),
        ({"images": [{"url": 42}], "classes": CLASSES}, "images.0.url"),
        ({"images": "http://x/a.jpg", "classes": CLASSES}, "images"),
        ({"images": [IMAGE], "classes": [{"class": "person", "hitl": "SOMETIMES"}]}, "hitl"),
        ({"images": [IMAGE], "classes": [{"class": 1}]}, "class"),
        ({"images": [IMAGE], "classes": [{"name": "person"}]}, "class"),
        ({"images": [IMAGE], "classes": [{"class": "cat"}, {"class": "Cat"}]}, "once"),
        (
            {"images": [IMAGE], "classes": [{"class": "cat", "hitl": "AUTO", "verify": "NEVER"}]},
            "hitl",
        ),
        ({"images": [IMAGE], "classes": CLASSES, "customId": "x" * 65}, "customId"),
        ({"images": [IMAGE], "classes": CLASSES, "feedId": 7}, "feedId"),
        ({"images": [IMAGE], "classes": CLASSES, "webhookUrl": "ftp://x/hook"}, "webhookUrl"),
        ({"images": [{"url": "ftp://example.com/a.jpg"}], "classes": CLASSES}, "images.0.url"),
        ({"images": [IMAGE, {"url": "file:///etc/passwd"}], "classes": CLASSES}, "images.1.url"),
        # checked by the SSRF guard when queued: the whole request is refused, nothing queued
        (
            {"images": [IMAGE, {"url": "http://nonexistent.invalid/a.jpg"}], "classes": CLASSES},
            "images.1.url: cannot resolve host",
        ),
        ({"images": [IMAGE], "classes": CLASSES, "webhookUrl": "http://x.invalid/h"}, "webhookUrl"),
    ],
)
def test_detect_bad_input(
    client: httpx.Client, shared_key: dict[str, Any], body: dict[str, Any], contains: str
) -> None:
    headers = access(client, shared_key)
    assert_error(client.post("/v2/detect", headers=headers, json=body), 400, contains)
    assert client.get("/v2/detect", headers=headers).json() == []  # nothing was queued


def test_detect_body_limits_and_auth_first(
    client: httpx.Client, shared_key: dict[str, Any]
) -> None:
    headers = access(client, shared_key)
    huge = b'{"images": [{"url": "http://x/' + b"a" * 600_000 + b'"}], "classes": []}'
    assert_error(client.post("/v2/detect", headers=headers, content=huge), 413)
    assert_error(client.post("/v2/detect", headers=headers, content=b"{oops"), 400, "JSON")
    assert_error(client.post("/v2/detect", headers=headers, content=b"null"), 400, "object")
    # credentials are checked before the body is read
    assert_error(client.post("/v2/detect", json={"images": [IMAGE], "classes": CLASSES}), 401)


def test_unknown_ids_and_search_parameters(
    client: httpx.Client, shared_key: dict[str, Any]
) -> None:
    headers = access(client, shared_key)
    assert_error(client.get("/v2/detect/det_nope", headers=headers), 404, "det_nope")
    assert_error(client.get("/v2/detect/" + "x" * 300, headers=headers), 404)
    for params, contains in (
        ({"page": "0"}, "page"),
        ({"page": "1.5"}, "page"),
        ({"page": "two"}, "page"),
        ({"before": "yesterday"}, "before"),
        ({"after": "nan"}, "after"),
        ({"after": "1e300"}, "out of range"),
        ({"feedId": "f" * 65}, "feedId"),
    ):
        assert_error(client.get("/v2/detect", headers=headers, params=params), 400, contains)
    assert client.get("/v2/detect", headers=headers, params={"page": "3"}).json() == []
    # the native API keeps its own error shape
    native = client.get("/v1/jobs/nope", headers={"Authorization": f"Bearer {shared_key['key']}"})
    assert native.headers["content-type"].startswith("application/problem+json")


# -------------------------------------------------------- detect with the real pipeline
def test_detect_errors_per_image_and_one_webhook(
    server: ServerProcess, client: httpx.Client, key: dict[str, Any], stub: Stub
) -> None:
    """No model installed: a decodable image ends DETECTION_ENGINE_ERROR naming the pull
    command; a 404 URL IMAGE_DOWNLOAD_ERROR; a text file INVALID_IMAGE_FORMAT_ERROR. The
    request ends COMPLETED_ALL_ERROR and its webhook fires once, signed, as GET renders it."""
    headers = access(client, key)
    hook = f"{stub.url}/hook-{key['id']}"
    reply = client.post(
        "/v2/detect",
        headers=headers,
        json={
            "images": [
                {"url": f"{stub.url}/photo.jpg", "customId": "good"},
                {"url": f"{stub.url}/missing.jpg", "customId": "gone"},
                {"url": f"{stub.url}/text.txt"},
            ],
            "classes": [{"class": "person", "hitl": "ALWAYS"}, {"class": "dog"}],
            "webhookUrl": hook,
            "customId": "req-1",
            "feedId": "cam-1",
        },
    )
    assert reply.status_code == 200, reply.text
    created = reply.json()
    assert created["status"] == "IN_PROGRESS" or created["status"] in FINAL
    assert created["customId"] == "req-1" and created["feedId"] == "cam-1"
    assert created["webhookUrl"] == hook and isinstance(created["createdAt"], int)
    assert [i["customId"] for i in created["imageResults"]] == ["good", "gone", None]
    final = wait_final(client, headers, created["id"])
    assert final["status"] == "COMPLETED_ALL_ERROR", final
    statuses = [i["status"] for i in final["imageResults"]]
    assert statuses == [
        "DETECTION_ENGINE_ERROR",
        "IMAGE_DOWNLOAD_ERROR",
        "INVALID_IMAGE_FORMAT_ERROR",
    ]
    engine = final["imageResults"][0]["error"]
    assert engine["type"] == "model_unavailable" and "opensight models pull" in engine["message"]
    assert all(i["objects"] == [] for i in final["imageResults"])
    assert final["jobResults"] == [
        {"class": "person", "hitl": False},
        {"class": "dog", "hitl": False},
    ]
    # each image is a native job of the caller's tenant
    native = {"Authorization": f"Bearer {key['key']}"}
    job = client.get(f"/v1/jobs/{final['imageResults'][0]['id']}", headers=native).json()
    assert job["status"] == "failed" and job["error"]["slug"] == "model_unavailable"
    # exactly one webhook for the three jobs, signed with the key's secret
    deadline = time.monotonic() + 20
    while (
        not [r for r in stub.received if r.path == f"/hook-{key['id']}"]
        and time.monotonic() < deadline
    ):
        time.sleep(0.1)
    time.sleep(1.5)
    hooks = [r for r in stub.received if r.path == f"/hook-{key['id']}"]
    assert len(hooks) == 1, hooks
    sent = hooks[0]
    assert verify_signature(
        key["secret"],
        sent.headers["X-OpenSight-Timestamp"],
        sent.body,
        sent.headers["X-OpenSight-Signature"],
    )
    assert (
        json.loads(sent.body) == client.get(f"/v2/detect/{created['id']}", headers=headers).json()
    )


def hooks_at(stub: Stub, path: str, count: int, timeout: float = 20) -> list[Any]:
    """The webhooks received at ``path`` once ``count`` arrived (or the timeout passed)."""
    deadline = time.monotonic() + timeout
    while len([r for r in stub.received if r.path == path]) < count:
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    return [r for r in stub.received if r.path == path]


def test_native_retry_reopens_the_request_and_sends_a_fresh_webhook(
    server: ServerProcess, client: httpx.Client, key: dict[str, Any], stub: Stub
) -> None:
    """Retrying a failed image through /v1/jobs/{id}/retry opens its detect request again;
    when it ends, the one new webhook carries the new outcome, never the stored old one."""
    headers = access(client, key)
    later = f"/later-{key['id']}.jpg"  # 404 now, an image once retried
    hook = f"/hook-retry-{key['id']}"
    reply = client.post(
        "/v2/detect",
        headers=headers,
        json={
            "images": [{"url": f"{stub.url}{later}"}, {"url": f"{stub.url}/photo.jpg"}],
            "classes": CLASSES,
            "webhookUrl": f"{stub.url}{hook}",
        },
    )
    assert reply.status_code == 200, reply.text
    detect_id = reply.json()["id"]
    first = wait_final(client, headers, detect_id)
    statuses = [i["status"] for i in first["imageResults"]]
    assert statuses == ["IMAGE_DOWNLOAD_ERROR", "DETECTION_ENGINE_ERROR"], first
    assert len(hooks_at(stub, hook, 1)) == 1
    stub.routes[later] = (200, {"Content-Type": "image/jpeg"}, photo_bytes(seed=11))
    native = {"Authorization": f"Bearer {key['key']}"}
    job_id = first["imageResults"][0]["id"]
    retried = client.post(f"/v1/jobs/{job_id}/retry", headers=native)
    assert retried.status_code == 202, retried.text
    deadline = time.monotonic() + 60
    while True:  # final again once the image ran anew: now a model error, not a download one
        body = client.get(f"/v2/detect/{detect_id}", headers=headers).json()
        if body["imageResults"][0]["status"] == "DETECTION_ENGINE_ERROR" and body["status"] in (
            FINAL
        ):
            break
        assert time.monotonic() < deadline, body
        time.sleep(0.2)
    hooks = hooks_at(stub, hook, 2)
    time.sleep(1.0)  # nothing more may follow
    hooks = [r for r in stub.received if r.path == hook]
    assert len(hooks) == 2, hooks
    sent = json.loads(hooks[1].body)
    assert [i["status"] for i in sent["imageResults"]] == [
        "DETECTION_ENGINE_ERROR",
        "DETECTION_ENGINE_ERROR",
    ]
    assert sent == client.get(f"/v2/detect/{detect_id}", headers=headers).json()
    assert verify_signature(
        key["secret"],
        hooks[1].headers["X-OpenSight-Timestamp"],
        hooks[1].body,
        hooks[1].headers["X-OpenSight-Signature"],
    )


def test_search_filters_and_tenant_isolation(
    server: ServerProcess, client: httpx.Client, key: dict[str, Any], stub: Stub
) -> None:
    headers = access(client, key)
    made = []
    for n, (feed, custom) in enumerate((("a", "x"), ("a", "y"), ("b", "x"))):
        reply = client.post(
            "/v2/detect",
            headers=headers,
            json={
                "images": [{"url": f"{stub.url}/missing-{n}.jpg"}],
                "classes": CLASSES,
                "feedId": feed,
                "customId": custom,
            },
        )
        assert reply.status_code == 200, reply.text
        made.append(reply.json())
        time.sleep(0.01)

    def ids(**params: Any) -> list[str]:
        reply = client.get("/v2/detect", headers=headers, params=params)
        assert reply.status_code == 200, reply.text
        return [job["id"] for job in reply.json()]

    newest_first = [m["id"] for m in reversed(made)]
    assert ids() == newest_first
    assert ids(feedId="a") == newest_first[1:]
    assert ids(customId="x") == [made[2]["id"], made[0]["id"]]
    assert ids(feedId="a", customId="y") == [made[1]["id"]]
    assert ids(feedId="zzz") == []
    assert ids(after=made[0]["createdAt"]) == newest_first[:2]
    assert ids(before=made[2]["createdAt"]) == newest_first[1:]
    assert ids(after=made[0]["createdAt"], before=made[2]["createdAt"]) == [made[1]["id"]]
    assert ids(page=1) == newest_first and ids(page=2) == []
    for job in client.get("/v2/detect", headers=headers).json():
        assert job["status"] in FINAL | {"IN_PROGRESS"} and job["imageResults"]
    # another tenant sees none of it
    other = create_key(server.data_dir, "ii-other", tenant=f"ii-other-{key['id']}")
    other_headers = access(client, other)
    assert client.get("/v2/detect", headers=other_headers).json() == []
    assert_error(client.get(f"/v2/detect/{made[0]['id']}", headers=other_headers), 404)


# ------------------------------------------------- settling and HITL, service level
# Results are constructed through the public job-store API (claim + finish, as a worker
# does) so every verdict and threshold case is exercised with known confidences.
def _service_request(container: Any, body: dict[str, Any]) -> tuple[Any, Any, str, list[Any]]:

    created = container.keys.create("svc", tenant="svc-tenant")
    principal = container.keys.authenticate(created.key)
    parsed = parse(DetectRequestBody, json.dumps(body).encode())
    detect_id = new_id("det")
    specs = [
        NewJob(
            tenant_id=principal.tenant_id,
            key_id=principal.key_id,
            features=["detect"],
            source={"url": image["url"]},
            options={
                "analyzers": {"detect": {"classes": [c["class"] for c in body["classes"]]}},
                "skip_on": [],
                "api": "imageintelligence",
                "api_data": {"detect_id": detect_id},
            },
        )
        for image in body["images"]
    ]
    batch = container.jobs.create_batch(principal.tenant_id, ["detect"], specs)
    service = container.imageintelligence
    snapshot = service.record(principal, parsed, detect_id, batch)
    return principal, created, snapshot, list(container.jobs.iter_batch(batch.id))


def _finish(container: Any, job_id: str, objects: list[dict[str, Any]] | None) -> None:
    """Claim and finish one job as a worker does, then run the worker's finish hook."""

    while True:  # jobs are claimed oldest first: finish exactly the one asked for
        job = container.jobs.claim(f"w-{job_id}", 60)
        assert job is not None
        if job.id == job_id:
            break
        container.jobs.release(job.id, f"w-{job_id}")
        pytest.fail("jobs were claimed out of order")
    if objects is None:
        outcome = JobOutcome(JobStatus.FAILED, error=ModelUnavailable("tiny-detector").problem())
    else:
        result = {"detect": {"objects": objects, "count": len(objects)}}
        outcome = JobOutcome(JobStatus.COMPLETED, result=result)
    assert container.jobs.finish(
        job.id, f"w-{job_id}", outcome.status, result=outcome.result, error=outcome.error
    )
    container._job_finished(job, outcome)  # the hook the worker pool calls


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_hitl_review_settle_and_webhook_at_service_level(
    tmp_path: Path, stub: Stub, backend: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("pg_url") if backend == "postgresql" else None
    settings = Settings(
        data_dir=tmp_path / "data",
        allow_private_urls=True,
        database_url=url,
        hitl_auto_threshold=0.8,
    )
    container = Container(settings)
    try:
        body = {
            "images": [
                {"url": "http://127.0.0.1:9/a.jpg", "customId": "a"},
                {"url": "http://127.0.0.1:9/b.jpg"},
                {"url": "http://127.0.0.1:9/c.jpg"},
            ],
            "classes": [
                {"class": "person", "hitl": "ALWAYS"},
                {"class": "car", "verify": "AUTO"},
                {"class": "dog"},
                {"class": "cat", "hitl": "AUTO"},
            ],
            "webhookUrl": f"{stub.url}/svc-hook-{backend}",
            "feedId": "cam",
        }
        principal, created, snapshot, jobs = _service_request(container, body)
        service = container.imageintelligence
        assert snapshot["status"] == "IN_PROGRESS"
        objects = [
            {"label": "person", "confidence": 0.95, "box": [10, 20, 30, 40]},
            {"label": "car", "confidence": 0.9, "box": [0, 0, 5, 5]},
            {"label": "car", "confidence": 0.5, "box": [1, 1, 2, 2]},
            {"label": "dog", "confidence": 0.3, "box": [3, 3, 3, 3]},
        ]
        _finish(container, jobs[0].id, objects)
        # reviews are queued as soon as the image is done, before the others end
        queued, _ = container.reviews.list(principal.tenant_id)
        assert [(r.label, r.object_index, r.box) for r in queued] == [
            ("person", 0, [10.0, 20.0, 40.0, 60.0]),
            ("car", 2, [1.0, 1.0, 3.0, 3.0]),
        ]
        _finish(container, jobs[1].id, [])
        _finish(container, jobs[2].id, None)  # the model is missing for this one
        live = render_job(service.get(principal, snapshot["id"]))
        assert live["status"] == "IN_PROGRESS"  # all images ended; two reviews pending
        first = live["imageResults"][0]
        assert [(o["class"], o["verdict"]) for o in first["objects"]] == [
            ("person", False),
            ("car", True),
            ("car", False),
            ("dog", True),
        ]
        assert first["objects"][0]["boundingBox"] == {
            "xMin": 10,
            "yMin": 20,
            "xMax": 40,
            "yMax": 60,
        }
        assert [i["status"] for i in live["imageResults"]] == [
            "COMPLETED_SUCCESSFULLY",
            "COMPLETED_SUCCESSFULLY",
            "DETECTION_ENGINE_ERROR",
        ]
        assert "opensight models pull tiny-detector" in live["imageResults"][2]["error"]["message"]
        assert live["jobResults"][0] == {"class": "person", "hitl": False}
        assert live["jobResults"][1]["image"]["confidence"] == 0.9
        carrier = container.jobs.get(jobs[0].id)
        assert carrier.webhook_status is None  # not armed before the request settles

        person, car = queued
        container.reviews.decide(person.id, principal.tenant_id, "confirm", reviewer="op")
        assert render_job(service.get(principal, snapshot["id"]))["status"] == "IN_PROGRESS"
        container.reviews.decide(car.id, principal.tenant_id, "reject", reviewer="op")
        final = render_job(service.get(principal, snapshot["id"]))
        assert final["status"] == "COMPLETED_PARTIAL_ERROR"
        verdicts = [o["verdict"] for o in final["imageResults"][0]["objects"]]
        assert verdicts == [True, True, False, True]
        assert final["jobResults"] == [
            {
                "class": "person",
                "image": {
                    "id": jobs[0].id,
                    "url": body["images"][0]["url"],
                    "customId": "a",
                    "confidence": 0.95,
                },
                "hitl": True,
            },
            {
                "class": "car",
                "image": {
                    "id": jobs[0].id,
                    "url": body["images"][0]["url"],
                    "customId": "a",
                    "confidence": 0.9,
                },
                "hitl": True,
            },
            {
                "class": "dog",
                "image": {
                    "id": jobs[0].id,
                    "url": body["images"][0]["url"],
                    "customId": "a",
                    "confidence": 0.3,
                },
                "hitl": False,
            },
            {"class": "cat", "hitl": False},
        ]
        # the webhook is armed once, on the first job, with what GET renders
        carrier = container.jobs.get(jobs[0].id)
        assert carrier.webhook_status == "pending" and carrier.webhook_url == body["webhookUrl"]
        assert render_webhook(carrier) == final
        assert all(container.jobs.get(j.id).webhook_status is None for j in jobs[1:])
        # the native dispatcher delivers it to a real receiver, signed with the key's secret
        container.start_webhooks()
        deadline = time.monotonic() + 15
        while not [r for r in stub.received if r.path == f"/svc-hook-{backend}"]:
            assert time.monotonic() < deadline, "no webhook delivered"
            time.sleep(0.05)
        (sent,) = [r for r in stub.received if r.path == f"/svc-hook-{backend}"]
        assert json.loads(sent.body) == final
        assert verify_signature(
            created.secret,
            sent.headers["X-OpenSight-Timestamp"],
            sent.body,
            sent.headers["X-OpenSight-Signature"],
        )
        deadline = time.monotonic() + 10
        while container.jobs.get(jobs[0].id).webhook_status != "delivered":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        finished_at = service.settle(snapshot["id"]).finished_at
        assert service.settle(snapshot["id"]).finished_at == finished_at  # idempotent
        # listing and tenant isolation at the service level
        assert [s["id"] for s in service.search(principal, feed_id="cam")] == [snapshot["id"]]
        other = container.keys.authenticate(container.keys.create("x", tenant="other").key)

        with pytest.raises(NotFound):
            service.get(other, snapshot["id"])
        assert service.search(other) == []
    finally:
        container.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_all_ok_without_reviews_settles_on_the_last_job(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("pg_url") if backend == "postgresql" else None
    container = Container(Settings(data_dir=tmp_path / "data", database_url=url))
    try:
        body = {
            "images": [{"url": "http://127.0.0.1:9/a.jpg"}, {"url": "http://127.0.0.1:9/b.jpg"}],
            "classes": [{"class": "person", "hitl": "AUTO"}, {"class": "car", "hitl": "NEVER"}],
        }
        principal, _, snapshot, jobs = _service_request(container, body)
        _finish(
            container, jobs[0].id, [{"label": "person", "confidence": 0.85, "box": [0, 0, 1, 1]}]
        )
        assert (
            render_job(container.imageintelligence.get(principal, snapshot["id"]))["status"]
            == "IN_PROGRESS"
        )
        _finish(container, jobs[1].id, [{"label": "car", "confidence": 0.1, "box": [0, 0, 1, 1]}])
        final = render_job(container.imageintelligence.get(principal, snapshot["id"]))
        assert final["status"] == "COMPLETED_SUCCESSFULLY"
        assert container.reviews.list(principal.tenant_id, status=None)[0] == []
        assert [o["verdict"] for i in final["imageResults"] for o in i["objects"]] == [True, True]
        assert container.jobs.get(jobs[0].id).webhook_status is None  # no webhookUrl given
    finally:
        container.close()


# ------------------------------------------- the full path with a tiny real detector
OWL = "owlv2-base-patch16-ensemble"


@pytest.fixture(scope="module")
def model_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server whose model dir holds a tiny random-weight OWLv2 in the installed layout."""
    from tests.tinymodels import install_tiny

    data = tmp_path_factory.mktemp("ii-model-server")
    install_tiny(OWL, data / "models")
    env = {"OPENSIGHT_MODEL_DIR": str(data / "models"), "OPENSIGHT_HITL_AUTO_THRESHOLD": "0.8"}
    srv = ServerProcess(data, workers=2, env=env)
    yield srv.start(timeout=60)
    srv.stop()


def test_completed_with_objects_and_hitl_reviews(model_server: ServerProcess, stub: Stub) -> None:
    """Objects from the real pipeline; ALWAYS and AUTO (< 0.8) objects wait in the review
    queue with verdict false; an operator's CLI rejection and API confirmations decide
    them; the request then completes and its one webhook carries the decided verdicts."""
    key = create_key(model_server.data_dir, "ii-hitl", tenant="ii-hitl")
    native = {"Authorization": f"Bearer {key['key']}"}
    hook = "/hitl-hook"
    with httpx.Client(base_url=model_server.url, timeout=60) as client:
        headers = access(client, key)
        reply = client.post(
            "/v2/detect",
            headers=headers,
            json={
                "images": [
                    {"url": f"{stub.url}/photo.jpg", "customId": "p1"},
                    {"url": f"{stub.url}/other.jpg", "customId": "p2"},
                ],
                "classes": [
                    {"class": "person", "hitl": "AUTO"},
                    {"class": "car", "hitl": "ALWAYS"},
                ],
                "webhookUrl": stub.url + hook,
            },
        )
        assert reply.status_code == 200, reply.text
        detect_id = reply.json()["id"]
        deadline = time.monotonic() + 120
        while True:
            job = client.get(f"/v2/detect/{detect_id}", headers=headers).json()
            if all(i["status"] != "IN_PROGRESS" for i in job["imageResults"]):
                break
            assert time.monotonic() < deadline, job
            time.sleep(0.2)
        assert [i["status"] for i in job["imageResults"]] == ["COMPLETED_SUCCESSFULLY"] * 2
        # the rendered objects are the native results, boxes converted to corners
        expected_reviews = set()
        for image in job["imageResults"]:
            result = client.get(f"/v1/jobs/{image['id']}", headers=native).json()["result"]
            natives = result["detect"]["objects"]
            assert len(image["objects"]) == len(natives)
            for index, (obj, nat) in enumerate(zip(image["objects"], natives, strict=True)):
                box = nat["box"]
                assert obj["class"] == nat["label"] and obj["confidence"] == nat["confidence"]
                assert obj["boundingBox"] == {
                    "xMin": round(box["x"]),
                    "yMin": round(box["y"]),
                    "xMax": round(box["x"] + box["width"]),
                    "yMax": round(box["y"] + box["height"]),
                }
                review = obj["class"] == "car" or obj["confidence"] < 0.8
                assert obj["verdict"] is (not review)
                if review:
                    expected_reviews.add((image["id"], index, obj["class"], obj["confidence"]))
        assert sum(len(i["objects"]) for i in job["imageResults"]) > 0
        assert expected_reviews, "the tiny model gave nothing to review"
        queued = client.get("/v1/reviews", headers=native).json()["reviews"]
        got = {(r["job_id"], r["object_index"], r["label"], r["confidence"]) for r in queued}
        assert got == expected_reviews
        assert len(queued) == len(expected_reviews)
        assert job["status"] == "IN_PROGRESS"  # waiting for people
        assert not [r for r in stub.received if r.path == hook]

        rejected, *confirmed = queued
        cli(model_server.data_dir, "reviews", "reject", rejected["id"], "--note", "shadow")
        for review in confirmed:
            ok = client.post(
                f"/v1/reviews/{review['id']}", headers=native, json={"decision": "confirm"}
            )
            assert ok.status_code == 200, ok.text
        final = wait_final(client, headers, detect_id)
        assert final["status"] == "COMPLETED_SUCCESSFULLY"
        by_cli = client.get(f"/v1/reviews/{rejected['id']}", headers=native).json()
        assert by_cli["status"] == "rejected" and by_cli["note"] == "shadow"
        assert by_cli["reviewer"].startswith("cli")
        decided = {
            (r["job_id"], r["object_index"]): r["id"] in {c["id"] for c in confirmed}
            for r in queued
        }
        for image in final["imageResults"]:
            result = client.get(f"/v1/jobs/{image['id']}", headers=native).json()["result"]
            for index, obj in enumerate(image["objects"]):
                assert result["detect"]["objects"][index]["label"] == obj["class"]
                if (image["id"], index) in decided:
                    assert obj["verdict"] is decided[(image["id"], index)]
                else:
                    assert obj["verdict"] is True
        # a class a person decided says so; its finds are the confirmed objects only
        cars = [r for r in final["jobResults"] if r["class"] == "car"]
        confirmed_cars = {(r["job_id"], r["confidence"]) for r in confirmed if r["label"] == "car"}
        for entry in cars:
            if "image" in entry:
                assert entry["hitl"] is True
                best = max(c for j, c in confirmed_cars if j == entry["image"]["id"])
                assert entry["image"]["confidence"] == best
        assert {e["image"]["id"] for e in cars if "image" in e} == {j for j, _ in confirmed_cars}
        deadline = time.monotonic() + 20
        while not [r for r in stub.received if r.path == hook]:
            assert time.monotonic() < deadline, "no webhook"
            time.sleep(0.1)
        time.sleep(1.0)
        (sent,) = [r for r in stub.received if r.path == hook]
        assert json.loads(sent.body) == final
        assert verify_signature(
            key["secret"],
            sent.headers["X-OpenSight-Timestamp"],
            sent.body,
            sent.headers["X-OpenSight-Signature"],
        )
