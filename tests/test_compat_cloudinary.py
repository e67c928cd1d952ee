"""Cloudinary's Analyze API, driven by the real ``cloudinary-analysis==0.1.0`` SDK, unchanged,
against a real ``opensight serve`` process. The SDK's pydantic models judge every reply."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import numpy as np
import pytest
from cloudinary_analysis import CloudinaryAnalysis, models
from PIL import Image

from opensight.config import Settings
from opensight.services.container import Container
from tests.conftest import photo_bytes
from tests.httpstub import Stub
from tests.server import ServerProcess, cli, create_key

CLOUD = "demo-cloud"

ERROR_STATUSES = {"user_error", "auth_error", "server_error", "rate_limit_error"}

#: Cloudinary analyzers whose native feature needs a model, with the SDK arguments each needs.
MODEL_ANALYZERS: dict[str, tuple[str, dict[str, Any]]] = {
    "captioning": ("caption", {}),
    "ai_vision_general": ("ask", {"prompts": ["What is in the image?"]}),
    "ai_vision_moderation": ("ask", {"rejection_questions": ["Is there violence?"]}),
    "ai_vision_tagging": (
        "tags",
        {"tag_definitions": [{"name": "astronaut", "description": "a person in a space suit"}]},
    ),
    "google_tagging": ("tags", {}),
    "coco": ("objects", {}),
    "lvis": ("objects", {}),
    "unidet": ("objects", {}),
    "cld_fashion": ("tags", {}),
    "shop_classifier": ("tags", {}),
}


@pytest.fixture(autouse=True)
def _no_cloudinary_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK's hook reads CLOUDINARY_URL; the tests configure it explicitly."""
    for name in ("CLOUDINARY_URL", "CLOUDINARY_CLOUD_NAME", "CLOUDINARY_API_KEY"):
        monkeypatch.delenv(name, raising=False)


class _UnusedAsyncClient:
    """The SDK's async HTTP client, which these tests never use.

    The SDK closes its clients from a garbage-collection finalizer with ``asyncio.run``;
    with a real ``httpx.AsyncClient`` one SDK's close can fire inside another's (a loop is
    running, so it closes in a helper thread) while the main thread holds an import lock
    that the helper thread then needs, and the test hangs (seen once in CI, at
    ``test_credentials``). Closing this one imports and awaits nothing."""

    async def send(self, request: Any, **kwargs: Any) -> Any:
        raise RuntimeError("these tests use the SDK's sync client")

    def build_request(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("these tests use the SDK's sync client")

    async def aclose(self) -> None:
        return None


def sdk(
    server: ServerProcess,
    key: dict[str, Any],
    *,
    secret: str | None = None,
    cloud: str = CLOUD,
) -> CloudinaryAnalysis:
    auth = models.SchemeCloudinaryAuth(api_key=key["key"], api_secret=secret or key["secret"])
    return CloudinaryAnalysis(
        async_client=cast(Any, _UnusedAsyncClient()),
        security=models.Security(cloudinary_auth=auth),
        server_url=f"{server.url}/v2/analysis/{cloud}",
    )


def basic(key: dict[str, Any], secret: str | None = None) -> dict[str, str]:
    token = base64.b64encode(f"{key['key']}:{secret or key['secret']}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def bearer(key: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {key['key']}"}


def native(
    server: ServerProcess,
    key: dict[str, Any],
    url: str,
    feature: str,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The native /v1/analyze result of ``feature``: what the translation must carry over."""
    reply = httpx.post(
        f"{server.url}/v1/analyze",
        json={"url": url, "features": [feature], "options": {feature: options or {}}},
        headers=bearer(key),
        timeout=120,
    )
    assert reply.status_code == 200, reply.text
    return dict(reply.json()["result"][feature])


def encode(rgb: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "PNG")
    return buffer.getvalue()


def text_image() -> bytes:
    from tests.test_ocr import render as render_text

    return encode(render_text(["OPEN DAILY", "Fresh bread 2026"], size=32))


def text_mark_image() -> bytes:
    """The astronaut with a translucent line of text stamped on it (the watermark set's seed 2)."""
    from bench import watermark_set as ws
    from skimage import data

    base = ws.resize_long(ws._rgb(data.astronaut()), 640)
    marked, _, _ = ws.add_text(base, np.random.default_rng(2), opacity=0.5)
    return encode(marked)


@pytest.fixture
def files(photo: bytes) -> Iterator[Stub]:
    """A real HTTP server with images to analyze by ``uri``, recording webhook deliveries."""
    with Stub() as stub:
        stub.routes["/photo.jpg"] = (200, {"Content-Type": "image/jpeg"}, photo)
        stub.routes["/text.png"] = (200, {"Content-Type": "image/png"}, text_image())
        stub.routes["/mark.png"] = (200, {"Content-Type": "image/png"}, text_mark_image())
        yield stub


def expect_error(exc: pytest.ExceptionInfo[models.ErrorResponse], category: str) -> Any:
    error = exc.value.data.error
    assert error is not None
    assert error.category == category
    assert error.message and error.code and error.request_id
    return error


def raw_error(reply: httpx.Response, status: int, category: str, code: str | None = None) -> Any:
    """A reply the SDK would parse as ErrorResponse: status, JSON, and the error object."""
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith("application/json")
    data = models.ErrorResponseData.model_validate(reply.json())
    assert data.error is not None and data.error.category == category, reply.text
    if code is not None:
        assert data.error.code == code, reply.text
    assert data.error.message and data.error.request_id
    return data.error


def boxes(items: list[dict[str, Any]], label_key: str) -> dict[str, list[dict[str, Any]]]:
    """The ``tags`` object expected for native detections (label -> boxes, best first)."""
    tags: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        entry: dict[str, Any] = {"confidence": round(item["confidence"], 4)}
        box = item.get("box")
        if isinstance(box, dict):
            box = [box["x"], box["y"], box["width"], box["height"]]
        if box is not None:
            entry["bounding-box"] = list(box)
        tags.setdefault(item[label_key], []).append(entry)
    for entries in tags.values():
        entries.sort(key=lambda e: -e["confidence"])
    return tags


def check_limits(limits: Any, kind: str) -> None:
    assert limits is not None and limits.items
    item = limits.items[0]
    assert item.type == kind
    assert item.limit == Settings().rate_limit_burst
    assert 0 <= item.remaining <= item.limit
    assert item.used_by_request == 1
    assert item.reset_time is not None


# ------------------------------------------------------------------ offline analyzers
def test_image_quality_matches_the_native_quality_analyzer(
    shared_server: ServerProcess, tenant: dict[str, Any], files: Stub
) -> None:
    uri = files.url + "/photo.jpg"
    client = sdk(shared_server, tenant)
    reply = client.analyze.image_quality(source={"uri": uri})
    assert isinstance(reply, models.AnalyzeImageQualityResponse)
    expected = native(shared_server, tenant, uri, "quality")
    assert reply.data is not None and reply.data.entity == uri
    analysis = reply.data.analysis
    assert analysis is not None
    assert analysis.quality == expected["label"] and analysis.quality in ("low", "medium", "high")
    assert analysis.score == expected["score"]
    assert analysis.model_version == int(expected["version"].split(".")[0])
    assert reply.request_id and len(reply.request_id) == 32
    check_limits(reply.limits, "object_detection")


def test_cld_text_reads_the_lines_as_tags(
    shared_server: ServerProcess, tenant: dict[str, Any], files: Stub
) -> None:
    uri = files.url + "/text.png"
    client = sdk(shared_server, tenant)
    reply = client.analyze.cld_text(source={"uri": uri})
    assert isinstance(reply, models.AnalyzeCldTextResponse)
    expected = native(shared_server, tenant, uri, "ocr")
    assert len(expected["lines"]) == 2
    # the SDK's model of `tags` has no fields (Cloudinary does not publish them), so pydantic
    # drops its content: read it from the same reply on the wire
    raw = _post(shared_server, tenant, "cld_text", {"source": {"uri": uri}}).json()
    models.AnalyzeCldTextResponse.model_validate(raw)
    tags = raw["data"]["analysis"]["tags"]
    assert tags == boxes(expected["lines"], "text")
    assert "".join(tags).replace(" ", "").upper().startswith("OPENDAILY")


def test_human_anatomy_gives_the_native_parts(
    shared_server: ServerProcess, tenant: dict[str, Any], files: Stub
) -> None:
    uri = files.url + "/photo.jpg"
    client = sdk(shared_server, tenant)
    reply = client.analyze.human_anatomy(source={"uri": uri})
    assert isinstance(reply, models.AnalyzeHumanAnatomyResponse)
    expected = native(shared_server, tenant, uri, "anatomy")
    assert expected["parts"], "the astronaut's face is a part"
    raw = _post(shared_server, tenant, "human_anatomy", {"source": {"uri": uri}}).json()
    models.AnalyzeHumanAnatomyResponse.model_validate(raw)
    assert raw["data"]["analysis"]["tags"] == boxes(expected["parts"], "label")


def test_watermark_and_logo_detection_report_the_stamped_mark(
    shared_server: ServerProcess, tenant: dict[str, Any], files: Stub
) -> None:
    client = sdk(shared_server, tenant)
    uri = files.url + "/mark.png"
    expected = native(shared_server, tenant, uri, "watermark")["detections"]
    assert [d["name"] for d in expected] == ["text"]

    marks = client.analyze.watermark_detection(source={"uri": uri})
    assert isinstance(marks, models.AnalyzeWatermarkDetectionResponse)
    assert marks.data is not None and marks.data.analysis is not None
    detections = marks.data.analysis.detections or []
    assert [(d.name, d.confidence) for d in detections] == [
        (d["name"], d["confidence"]) for d in expected
    ]

    logos = client.analyze.google_logo_detection(source={"uri": uri})
    assert isinstance(logos, models.AnalyzeGoogleLogoDetectionResponse)
    assert logos.data is not None and logos.data.analysis is not None
    (logo,) = logos.data.analysis.logo_annotations
    x, y, w, h = expected[0]["box"]
    assert logo.description == "text" and logo.score == expected[0]["confidence"]
    corners = [(v.x, v.y) for v in logo.bounding_poly.vertices or []]
    assert corners == [(x, y), (x + w, y), (x + w, y + h), (x, y + h)]
    check_limits(logos.limits, "google_tagging")

    clean = client.analyze.google_logo_detection(source={"uri": files.url + "/photo.jpg"})
    assert isinstance(clean, models.AnalyzeGoogleLogoDetectionResponse)
    assert clean.data is not None and clean.data.analysis is not None
    assert clean.data.analysis.logo_annotations == []


def test_asset_id_analyzes_a_stored_image_of_the_same_tenant_only(
    shared_server: ServerProcess, tenant: dict[str, Any], photo: bytes
) -> None:
    stored = httpx.post(
        f"{shared_server.url}/v1/images",
        files={"image": ("p.jpg", photo, "image/jpeg")},
        headers=bearer(tenant),
        timeout=60,
    )
    assert stored.status_code == 201, stored.text
    asset_id = stored.json()["id"]
    client = sdk(shared_server, tenant)
    reply = client.analyze.image_quality(source={"asset_id": asset_id})
    assert isinstance(reply, models.AnalyzeImageQualityResponse)
    assert reply.data is not None and reply.data.entity == asset_id
    assert reply.data.analysis is not None and reply.data.analysis.quality in ("medium", "high")

    stranger = create_key(shared_server.data_dir, "cld-stranger", tenant="t-cld-stranger")
    client = sdk(shared_server, stranger)
    with pytest.raises(models.ErrorResponse) as exc:
        client.analyze.image_quality(source={"asset_id": asset_id})
    assert expect_error(exc, "user_error").code == "not_found"


# ------------------------------------------------------------------------ model analyzers
def _native_analyzers(server: ServerProcess, key: dict[str, Any]) -> dict[str, dict[str, Any]]:
    reply = httpx.get(f"{server.url}/v1/analyzers", headers=bearer(key), timeout=30)
    assert reply.status_code == 200
    return {a["name"]: a for a in reply.json()["analyzers"]}


@pytest.mark.parametrize("name", sorted(MODEL_ANALYZERS))
def test_model_analyzers_without_their_model_answer_the_error_object(
    shared_server: ServerProcess, tenant: dict[str, Any], files: Stub, name: str
) -> None:
    """With no model installed the SDK gets a typed ErrorResponse naming the pull command."""
    feature, kwargs = MODEL_ANALYZERS[name]
    client = sdk(shared_server, tenant)
    method = getattr(client.analyze, name)
    with pytest.raises(models.ErrorResponse) as exc:
        method(source={"uri": files.url + "/photo.jpg"}, **kwargs)
    error = expect_error(exc, "server_error")
    described = _native_analyzers(shared_server, tenant).get(feature)
    if described is None:  # the native analyzer is not part of this installation
        assert error.code == "analyzer_unavailable" and f"`{feature}`" in error.message
    elif not described["ready"]:
        assert error.code == "model_unavailable"
        assert "opensight models pull" in error.message
    else:  # pragma: no cover - a shared test server has no models installed
        pytest.fail(f"{feature} is ready without a model: {described}")


def _tiny_models() -> Any:
    try:
        from tests.tinymodels import BUILDERS, install_tiny
    except ImportError:
        return None
    from opensight.analyzers import registry

    installed = registry.all_analyzers()
    wanted = {feature for feature, _ in MODEL_ANALYZERS.values()}
    if not wanted <= set(installed):
        return None
    model_ids = {str(installed[f].model) for f in wanted}
    if not model_ids <= set(BUILDERS):
        return None
    return install_tiny, model_ids


#: Native options each Cloudinary analyzer must produce (the mapping under test).
NATIVE_OPTIONS: dict[str, dict[str, Any]] = {
    "captioning": {},
    "ai_vision_general": {"prompts": ["What is in the image?"], "mode": "answer"},
    "ai_vision_moderation": {"prompts": ["Is there violence?"], "mode": "yes_no"},
    "ai_vision_tagging": {
        "tags": [{"name": "astronaut", "description": "a person in a space suit"}]
    },
    "google_tagging": {},
    "coco": {"vocabulary": "coco"},
    "lvis": {"vocabulary": "coco"},
    "unidet": {"vocabulary": "coco"},
    "cld_fashion": {"vocabulary": "fashion"},
    "shop_classifier": {"vocabulary": "products"},
}


def test_model_analyzers_with_tiny_models_end_to_end(tmp_path: Path, files: Stub) -> None:
    """Every model-backed SDK method, against tiny random-weight models of the real ones:
    typed replies whose content is the native analyzer's result, reshaped."""
    found = _tiny_models()
    if found is None:
        pytest.skip("the model analyzers or tests/tinymodels.py are not in this tree")
    install_tiny, model_ids = found
    model_dir = tmp_path / "models"
    for model_id in sorted(model_ids):
        install_tiny(model_id, model_dir)
    server = ServerProcess(
        tmp_path / "data", workers=1, env={"OPENSIGHT_MODEL_DIR": str(model_dir)}
    ).start()
    try:
        key = create_key(server.data_dir, "cld-models")
        client = sdk(server, key)
        uri = files.url + "/photo.jpg"
        for name, (feature, kwargs) in MODEL_ANALYZERS.items():
            reply = getattr(client.analyze, name)(source={"uri": uri}, **kwargs)
            assert type(reply).__name__.startswith("Analyze"), (name, reply)
            assert reply.data is not None and reply.data.entity == uri
            analysis = reply.data.analysis
            assert analysis is not None, name
            result = native(server, key, uri, feature, NATIVE_OPTIONS[name])
            if name == "captioning":
                assert analysis.data.caption == result["caption"]
            elif name == "ai_vision_general":
                assert [r.value for r in analysis.responses] == [
                    a["answer"] for a in result["answers"]
                ]
            elif name == "ai_vision_moderation":
                assert [(r.prompt, r.value) for r in analysis.responses] == [
                    (a["prompt"], a["answer"]) for a in result["answers"]
                ]
                assert all(r.value in ("yes", "no", "unknown") for r in analysis.responses)
            elif name == "ai_vision_tagging":
                assert [t.name for t in analysis.tags] == [t["name"] for t in result["tags"]]
                assert {t.name for t in analysis.tags} <= {"astronaut"}
            elif name == "google_tagging":
                labels = analysis.label_annotations.labels or []
                assert [(x.label, x.score) for x in labels] == [
                    (t["name"], round(t["confidence"], 4)) for t in result["tags"]
                ]
            else:  # tags objects are opaque to the SDK: compare the wire body
                raw = _post(server, key, name, {"source": {"uri": uri}}).json()
                type(reply).model_validate(raw)
                items = result["objects"] if feature == "objects" else result["tags"]
                label_key = "label" if feature == "objects" else "name"
                assert raw["data"]["analysis"]["tags"] == boxes(items, label_key), name
    finally:
        server.stop()


# ------------------------------------------------------------------------------ async
def _wait_final(client: CloudinaryAnalysis, task_id: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        status = client.tasks.get_status(task_id=task_id)
        assert isinstance(status, models.GetTaskStatusResponse)
        assert status.data is not None and status.data.task_id == task_id
        if status.data.status in (models.TaskStatus.COMPLETED, models.TaskStatus.FAILED):
            return status
        assert time.monotonic() < deadline, "the task did not end"
        time.sleep(0.1)


def _wait_delivery(stub: Stub, path: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for record in stub.received:
            if record.path == path:
                return dict(json.loads(record.body))
        time.sleep(0.05)
    raise AssertionError(f"no webhook delivered to {path}")


def test_async_task_notifies_in_cloudinary_shape(
    shared_server: ServerProcess, tenant: dict[str, Any], files: Stub
) -> None:
    client = sdk(shared_server, tenant)
    uri = files.url + "/photo.jpg"
    sync = client.analyze.image_quality(source={"uri": uri})
    accepted = client.analyze.image_quality(
        source={"uri": uri}, async_=True, notification_url=files.url + "/hook"
    )
    assert isinstance(accepted, models.AsyncOperationAcceptedResponse)
    assert accepted.data is not None and accepted.data.status == models.TaskStatus.PENDING
    assert accepted.request_id and accepted.request_id != sync.request_id
    task_id = accepted.data.task_id

    final = _wait_final(client, task_id)
    assert final.data is not None and final.data.status == models.TaskStatus.COMPLETED
    assert final.request_id != accepted.request_id  # each request has its own id

    body = _wait_delivery(files, "/hook")
    assert body["operation_name"] == "analyze" and body["operation_type"] == "single"
    assert body["notification_type"] == "analyze"
    assert body["request_id"] == accepted.request_id and body["task_id"] == task_id
    assert body["http_status"] == 200 and "error" not in body
    assert body["data"]["entity"] == uri
    assert sync.data is not None and sync.data.analysis is not None
    assert body["data"]["analysis"] == {
        **sync.data.analysis.model_dump(exclude_none=True),
        "issues": body["data"]["analysis"]["issues"],
    }
    parsed = models.AnalyzeImageQualityResponse.model_validate(body)  # the sync reply's shape
    assert parsed.limits is not None and parsed.limits.items

    # the job records the API and the cloud name
    container = Container(Settings(data_dir=shared_server.data_dir))
    job = container.jobs.get(task_id)
    container.db.engine.dispose()
    assert job.options["api"] == "cloudinary"
    assert job.options["api_data"]["cloud_name"] == CLOUD
    assert job.options["api_data"]["notification_url"] == files.url + "/hook"


def test_async_failure_is_a_failed_task_and_an_error_webhook(
    shared_server: ServerProcess, tenant: dict[str, Any], files: Stub
) -> None:
    client = sdk(shared_server, tenant)
    accepted = client.analyze.cld_text(
        source={"uri": files.url + "/missing.jpg"}, async_=True, notification_url=files.url + "/f"
    )
    assert isinstance(accepted, models.AsyncOperationAcceptedResponse)
    assert accepted.data is not None
    final = _wait_final(client, accepted.data.task_id)
    assert final.data is not None and final.data.status == models.TaskStatus.FAILED
    body = _wait_delivery(files, "/f")
    assert body["http_status"] == 400 and body["task_id"] == accepted.data.task_id
    error = models.ErrorResponseData.model_validate(body).error
    assert error is not None and error.category == "user_error"
    assert error.code == "url_fetch_failed" and error.request_id == accepted.request_id


def test_tasks_of_other_tenants_and_native_jobs_are_not_found(
    shared_server: ServerProcess, tenant: dict[str, Any], files: Stub, photo: bytes
) -> None:
    client = sdk(shared_server, tenant)
    accepted = client.analyze.image_quality(source={"uri": files.url + "/photo.jpg"}, async_=True)
    assert isinstance(accepted, models.AsyncOperationAcceptedResponse) and accepted.data
    stranger = create_key(shared_server.data_dir, "cld-tasks", tenant="t-cld-tasks")
    other = sdk(shared_server, stranger)
    for task_id in (accepted.data.task_id, "job_does_not_exist", "x" * 500):
        with pytest.raises(models.ErrorResponse) as exc:
            other.tasks.get_status(task_id=task_id)
        assert expect_error(exc, "user_error").code == "not_found"
    job = httpx.post(
        f"{shared_server.url}/v1/analyze",
        files={"image": ("p.jpg", photo, "image/jpeg")},
        data={"async": "true"},
        headers=bearer(tenant),
        timeout=60,
    ).json()
    with pytest.raises(models.ErrorResponse) as exc:
        client.tasks.get_status(task_id=job["id"])
    assert expect_error(exc, "user_error").code == "not_found"


# ------------------------------------------------------------------------ credentials
def test_credentials(shared_server: ServerProcess, tenant: dict[str, Any], files: Stub) -> None:
    uri = files.url + "/photo.jpg"
    client = sdk(shared_server, tenant, secret="oss_wrong")
    with pytest.raises(models.ErrorResponse) as exc:
        client.analyze.image_quality(source={"uri": uri})
    expect_error(exc, "auth_error")
    unknown = {"key": "osk_000000000000nope", "secret": tenant["secret"]}
    client = sdk(shared_server, unknown)
    with pytest.raises(models.ErrorResponse) as exc:
        client.analyze.image_quality(source={"uri": uri})
    expect_error(exc, "auth_error")

    url = f"{shared_server.url}/v2/analysis/{CLOUD}/analyze/image_quality"
    body = {"source": {"uri": uri}}
    raw_error(httpx.post(url, json=body), 401, "auth_error", "unauthorized")
    for header in ("Basic !!!", "Basic " + base64.b64encode(b"no-colon").decode(), "Digest x"):
        raw_error(httpx.post(url, json=body, headers={"Authorization": header}), 401, "auth_error")
    # the SDK's OAuth2 scheme: the OpenSight key as the bearer token
    ok = httpx.post(url, json=body, headers=bearer(tenant), timeout=60)
    assert ok.status_code == 200
    models.AnalyzeImageQualityResponse.model_validate(ok.json())

    revoked = create_key(shared_server.data_dir, "cld-revoked", tenant="t-cld-revoked")
    cli(shared_server.data_dir, "keys", "revoke", revoked["key"])
    client = sdk(shared_server, revoked)
    with pytest.raises(models.ErrorResponse) as exc:
        client.analyze.image_quality(source={"uri": uri})
    assert expect_error(exc, "auth_error").code == "forbidden"


# -------------------------------------------------------------------------- bad input
def _post(server: ServerProcess, key: dict[str, Any], analyzer: str, body: Any) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(
        f"{server.url}/v2/analysis/{CLOUD}/analyze/{analyzer}",
        content=content,
        headers={**basic(key), "Content-Type": "application/json"},
        timeout=60,
    )


@pytest.mark.parametrize(
    ("analyzer", "body", "field"),
    [
        ("image_quality", {}, "source"),
        ("image_quality", {"source": {}}, "source"),
        ("image_quality", {"source": {"uri": "http://x/a.jpg", "asset_id": "img_1"}}, "source"),
        ("image_quality", {"source": {"uri": 5}}, "source.uri"),
        ("image_quality", {"source": {"url": "http://x/a.jpg"}}, "source.url"),
        ("image_quality", {"source": {"uri": "http://x/a.jpg"}, "async": "yes"}, "async"),
        ("image_quality", {"source": {"uri": "http://x/a.jpg"}, "colour": 1}, "colour"),
        ("coco", {"source": {"uri": "http://x/a.jpg"}, "prompts": ["hi"]}, "prompts"),
        ("ai_vision_general", {"source": {"uri": "http://x/a.jpg"}}, "prompts"),
        ("ai_vision_general", {"source": {"uri": "http://x/a.jpg"}, "prompts": []}, "prompts"),
        ("ai_vision_general", {"source": {"uri": "http://x/a.jpg"}, "prompts": "hi"}, "prompts"),
        ("ai_vision_moderation", {"source": {"uri": "http://x/a.jpg"}}, "rejection_questions"),
        ("ai_vision_tagging", {"source": {"uri": "http://x/a.jpg"}}, "tag_definitions"),
        (
            "ai_vision_tagging",
            {"source": {"uri": "http://x/a.jpg"}, "tag_definitions": [{"name": "a"}]},
            "tag_definitions.0.description",
        ),
        (
            "ai_vision_tagging",
            {
                "source": {"uri": "http://x/a.jpg"},
                "tag_definitions": [{"name": f"t{i}", "description": "d"} for i in range(11)],
            },
            "tag_definitions",
        ),
        ("image_quality", [1, 2], "body"),
        ("image_quality", b"{not json", "body"),
    ],
)
def test_invalid_bodies_are_400_user_errors(
    shared_server: ServerProcess, tenant: dict[str, Any], analyzer: str, body: Any, field: str
) -> None:
    error = raw_error(_post(shared_server, tenant, analyzer, body), 400, "user_error")
    assert error.code == "invalid_request"
    if field != "body":
        assert error.message.startswith(field), error.message


def test_other_bad_requests(shared_server: ServerProcess, tenant: dict[str, Any]) -> None:
    big = json.dumps({"source": {"uri": "http://x/" + "a" * 300_000}}).encode()
    error = raw_error(_post(shared_server, tenant, "image_quality", big), 400, "user_error")
    assert error.code == "request_too_large"

    for uri, code in (
        ("ftp://example.com/a.jpg", "url_not_allowed"),
        ("http://127.0.0.1:1/none.jpg", "url_fetch_failed"),
    ):
        reply = _post(shared_server, tenant, "image_quality", {"source": {"uri": uri}})
        raw_error(reply, 400, "user_error", code)

    reply = _post(shared_server, tenant, "image_quality", {"source": {"asset_id": "img_nope"}})
    raw_error(reply, 404, "user_error", "not_found")

    client = sdk(shared_server, tenant)
    with pytest.raises(models.ErrorResponse) as exc:  # unknown task id, through the SDK
        client.tasks.get_status(task_id="job_unknown")
    assert expect_error(exc, "user_error").code == "not_found"

    base = f"{shared_server.url}/v2/analysis"
    reply = httpx.post(f"{base}/{CLOUD}/analyze/face_swap", json={}, headers=basic(tenant))
    assert "image_quality" in raw_error(reply, 404, "user_error", "not_found").message
    reply = httpx.get(f"{base}/{CLOUD}/nothing/here", headers=basic(tenant))
    raw_error(reply, 404, "user_error", "not_found")
    reply = httpx.post(
        f"{base}/bad.cloud!/analyze/image_quality",
        json={"source": {"uri": "http://x/a.jpg"}},
        headers=basic(tenant),
    )
    raw_error(reply, 400, "user_error", "invalid_request")
    # the native API keeps its own error format
    native_reply = httpx.get(f"{shared_server.url}/v1/jobs/nope", headers=bearer(tenant))
    assert native_reply.headers["content-type"] == "application/problem+json"


def test_the_ssrf_guard_refuses_private_sources_and_notification_urls(
    tmp_path: Path, files: Stub
) -> None:
    server = ServerProcess(
        tmp_path / "srv", workers=1, env={"OPENSIGHT_ALLOW_PRIVATE_URLS": "false"}
    )
    server.start()
    try:
        key = create_key(server.data_dir, "cld-ssrf")
        for uri in (files.url + "/photo.jpg", "http://169.254.169.254/latest/meta-data"):
            reply = _post(server, key, "image_quality", {"source": {"uri": uri}})
            raw_error(reply, 400, "user_error", "url_not_allowed")
        body = {
            "source": {"uri": "https://example.com/a.jpg"},
            "async": True,
            "notification_url": files.url + "/hook",
        }
        raw_error(_post(server, key, "image_quality", body), 400, "user_error", "url_not_allowed")
        assert files.received == []
    finally:
        server.stop()


# ------------------------------------------------------------------------ rate limits
def test_rate_limit_reports_the_quota_and_answers_429(tmp_path: Path, photo: bytes) -> None:
    env = {"OPENSIGHT_RATE_LIMIT_PER_SECOND": "0.05", "OPENSIGHT_RATE_LIMIT_BURST": "3"}
    server = ServerProcess(tmp_path / "srv", workers=1, env=env).start()
    try:
        key = create_key(server.data_dir, "cld-rate", env=env)
        with Stub() as stub:
            stub.routes["/p.jpg"] = (200, {"Content-Type": "image/jpeg"}, photo_bytes((64, 48)))
            client = sdk(server, key)
            remaining = []
            for _ in range(3):
                reply = client.analyze.watermark_detection(source={"uri": stub.url + "/p.jpg"})
                assert isinstance(reply, models.AnalyzeWatermarkDetectionResponse)
                assert reply.limits is not None and reply.limits.items
                item = reply.limits.items[0]
                assert item.type == "object_detection" and item.limit == 3
                remaining.append(item.remaining)
            assert remaining == [2, 1, 0]
            with pytest.raises(models.RateLimitedResponse) as exc:
                client.analyze.watermark_detection(source={"uri": stub.url + "/p.jpg"})
            data = exc.value.data
            assert data.error is not None and data.error.category == "rate_limit_error"
            assert data.error.code == "rate_limited"
            assert data.limits is not None and data.limits.items
            assert data.limits.items[0].remaining == 0 and data.limits.items[0].limit == 3
            raw = httpx.get(f"{server.url}/v2/analysis/{CLOUD}/tasks/job_x", headers=basic(key))
            assert raw.status_code == 404  # an unknown task costs no token
    finally:
        server.stop()


# ------------------------------------------------------------- renderers, no server
def _job(status: str, **fields: Any) -> Any:
    from datetime import UTC, datetime

    from opensight.storage.tables import Job

    api_data = {
        "analyzer": "captioning",
        "request_id": "r" * 32,
        "cloud_name": CLOUD,
        "entity": "https://example.com/a.jpg",
        "params": {},
        "limits": None,
    }
    return Job(
        id="job_1",
        status=status,
        options={"api": "cloudinary", "api_data": {**api_data, **fields.pop("api_data", {})}},
        created_at=datetime.now(UTC),
        **fields,
    )


def test_a_failed_model_task_notifies_model_unavailable_as_the_error_object() -> None:
    from opensight.compat.cloudinary.webhook import render
    from opensight.errors import ModelUnavailable

    problem = ModelUnavailable("florence-2-base-ft").problem()
    body = render(_job("failed", error=problem))
    assert body["http_status"] == 500 and body["data"]["analysis"] is None
    error = models.ErrorResponseData.model_validate(body).error
    assert error is not None and error.category == "server_error"
    assert error.code == "model_unavailable" and error.request_id == "r" * 32
    assert "opensight models pull florence-2-base-ft" in (error.message or "")

    done = render(_job("completed", result={"caption": {"caption": "a cat", "version": "1.0.0"}}))
    assert done["http_status"] == 200 and "error" not in done
    parsed = models.AnalyzeCaptioningResponse.model_validate(done)
    assert parsed.data is not None and parsed.data.analysis is not None
    assert parsed.data.analysis.data.caption == "a cat"

    # a job whose api_data names no known analyzer still renders (the webhook thread must live)
    odd = render(_job("completed", result={}, api_data={"analyzer": "gone"}))
    assert odd["data"]["analysis"] is None


@pytest.mark.parametrize(
    ("native_status", "wire", "category"),
    [
        (401, 401, "auth_error"),
        (403, 403, "auth_error"),
        (404, 404, "user_error"),
        (413, 400, "user_error"),
        (415, 400, "user_error"),
        (422, 400, "user_error"),
        (429, 429, "rate_limit_error"),
        (500, 500, "server_error"),
        (503, 500, "server_error"),
    ],
)
def test_native_statuses_fold_onto_the_ones_the_sdk_types(
    native_status: int, wire: int, category: str
) -> None:
    from opensight.compat.cloudinary.errors import category_of, wire_status

    assert wire_status(native_status) == wire
    assert category_of(wire) == category
