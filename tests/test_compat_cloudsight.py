"""CloudSight compatibility: the real `cloudsight==0.9.2` client against a real server process.

The client is used unchanged; only its module-level URL constants point at the test
server. Bad input is sent with httpx, signed by the client's own OAuth code where a
signature is needed.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cloudsight
import cloudsight.api as cs_api
import cloudsight.auth as cs_auth
import httpx
import numpy as np
import pytest
from PIL import Image, ImageFilter

from opensight.compat.cloudsight.render import UNSURE_BELOW
from tests.conftest import photo_bytes
from tests.httpstub import Stub
from tests.server import ServerProcess, cli, create_key

pytestmark = pytest.mark.timeout(300)


# ---------------------------------------------------------------- helpers
def encoded(array: np.ndarray, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, fmt)
    return buffer.getvalue()


def black_png() -> bytes:
    return encoded(np.zeros((240, 320, 3), np.uint8))


def white_png() -> bytes:
    return encoded(np.full((240, 320, 3), 255, np.uint8))


def blurry_jpeg() -> bytes:
    image = Image.open(io.BytesIO(photo_bytes())).filter(ImageFilter.GaussianBlur(12))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def point_client_at(monkeypatch: pytest.MonkeyPatch, base: str) -> None:
    monkeypatch.setattr(cs_api, "BASE_URL", base)
    monkeypatch.setattr(cs_api, "REQUESTS_URL", base + "/image_requests")
    monkeypatch.setattr(cs_api, "RESPONSES_URL", base + "/image_responses/")


def poll(api: cloudsight.API, token: str, timeout: float = 60.0) -> dict[str, Any]:
    """Like ``api.wait`` without its fixed 4 s first sleep (``wait`` is used once below)."""
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = api.image_response(token)
        if body["status"] != cloudsight.STATUS_NOT_COMPLETED or time.monotonic() > deadline:
            return body
        time.sleep(0.1)


def native_job(server: ServerProcess, key: str, token: str) -> dict[str, Any]:
    reply = httpx.get(
        f"{server.url}/v1/jobs/{token}", headers={"Authorization": f"Bearer {key}"}, timeout=10
    )
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def caption_registered() -> bool:
    from opensight.analyzers import registry

    return "caption" in registry.all_analyzers()


@pytest.fixture
def server(shared_server: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> ServerProcess:
    point_client_at(monkeypatch, shared_server.url)
    return shared_server


@pytest.fixture
def oauth_api(server: ServerProcess, tenant: dict[str, Any]) -> cloudsight.API:
    return cloudsight.API(cloudsight.OAuth(tenant["key"], tenant["secret"]))


@pytest.fixture
def simple_api(server: ServerProcess, tenant: dict[str, Any]) -> cloudsight.API:
    return cloudsight.API(cloudsight.SimpleAuth(tenant["key"]))


# ------------------------------------------------------------- the gates
def test_dark_upload_is_skipped_offline_over_oauth(
    oauth_api: cloudsight.API, server: ServerProcess
) -> None:
    """OAuth-signed file upload; the quality gate stops the job before any model runs."""
    data = black_png()
    first = oauth_api.image_request(
        io.BytesIO(data), "black.png", {"image_request[locale]": "en-US"}
    )
    assert first["status"] == cloudsight.STATUS_NOT_COMPLETED
    assert set(first) >= {"token", "url", "ttl", "status"}
    assert isinstance(first["ttl"], float)
    final = oauth_api.wait(first["token"], timeout=60)  # the client's own polling loop
    assert final["status"] == cloudsight.STATUS_SKIPPED
    assert final["reason"] == cloudsight.REASON_DARK
    assert final["token"] == first["token"]
    # `url` serves the stored image, without credentials, while its signature is valid
    image = httpx.get(final["url"], timeout=10)
    assert image.status_code == 200
    assert image.content == data
    assert image.headers["content-type"] == "image/png"


def test_bright_remote_url_is_skipped_with_simple_auth(simple_api: cloudsight.API) -> None:
    with Stub() as stub:
        stub.routes["/white.png"] = (200, {"Content-Type": "image/png"}, white_png())
        first = simple_api.remote_image_request(
            stub.url + "/white.png", {"image_request[locale]": "de-DE"}
        )
        final = poll(simple_api, first["token"])
    assert final["status"] == cloudsight.STATUS_SKIPPED
    assert final["reason"] == cloudsight.REASON_BRIGHT
    assert httpx.get(final["url"], timeout=10).content == white_png()


def brick_png() -> bytes:
    """scikit-image's brick wall: a texture filling the frame, CloudSight's "too close"."""
    from skimage import data

    grey = np.asarray(Image.fromarray(data.brick()).resize((640, 480)))
    return encoded(np.stack([grey] * 3, axis=-1))


@pytest.mark.parametrize(
    ("make", "reason"),
    [(blurry_jpeg, cloudsight.REASON_BLURRY), (brick_png, cloudsight.REASON_CLOSE)],
)
def test_blurry_and_close_images_are_skipped(
    oauth_api: cloudsight.API, make: Callable[[], bytes], reason: str
) -> None:
    first = oauth_api.image_request(io.BytesIO(make()), "image")
    final = poll(oauth_api, first["token"])
    assert final["status"] == cloudsight.STATUS_SKIPPED
    assert final["reason"] == reason


def wheel_png() -> bytes:
    """scikit-image's colour wheel on a white card: the quality gate passes it and the
    moderation detector reads it as suggestive (exposed buttocks, ~0.7), never explicit."""
    from skimage import data

    card = Image.new("RGB", (640, 480), (255, 255, 255))
    card.paste(Image.fromarray(data.colorwheel()[..., :3]).resize((336, 336)), (152, 72))
    buffer = io.BytesIO()
    card.save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def strict_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server whose operator counts suggestive images as offensive."""
    options = json.dumps({"moderation": {"offensive": "suggestive"}})
    server = ServerProcess(tmp_path, workers=1, env={"OPENSIGHT_ANALYZER_OPTIONS": options})
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_offensive_gate_follows_the_operators_moderation_options(
    server: ServerProcess,
    tenant: dict[str, Any],
    oauth_api: cloudsight.API,
    strict_server: ServerProcess,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """CloudSight requests carry no analyzer options: what counts as offensive is the
    operator's ``OPENSIGHT_ANALYZER_OPTIONS``. With the defaults (explicit only) the image
    passes both gates; where the operator counts suggestive images, it is skipped there."""
    image = wheel_png()
    token = oauth_api.image_request(io.BytesIO(image), "wheel.png")["token"]
    with contextlib.suppress(cloudsight.APIError):  # the caption's model is not installed
        poll(oauth_api, token)
    job = native_job(server, tenant["key"], token)
    if caption_registered():  # past both gates, it stopped at the caption's missing model
        assert job["status"] == "failed", job
        assert job["error"]["slug"] == "model_unavailable"
    else:
        assert job["status"] == "completed", job
        assert job["result"]["moderation"]["category"] == "suggestive"
        assert job["result"]["moderation"]["offensive"] is False

    point_client_at(monkeypatch, strict_server.url)
    key = create_key(strict_server.data_dir, "strict")
    strict = cloudsight.API(cloudsight.OAuth(key["key"], key["secret"]))
    final = poll(strict, strict.image_request(io.BytesIO(image), "wheel.png")["token"])
    assert final["status"] == cloudsight.STATUS_SKIPPED
    assert final["reason"] == "offensive"


def test_unknown_analyzer_in_the_operators_options_stops_the_start() -> None:
    from opensight.api.app import create_app
    from opensight.config import Settings
    from opensight.errors import UnknownFeature, ValidationFailed

    with pytest.raises(UnknownFeature, match="moderaton"):
        create_app(Settings(analyzer_options={"moderaton": {"offensive": "suggestive"}}))
    with pytest.raises(ValidationFailed, match="must be an object"):
        create_app(Settings.model_construct(analyzer_options={"moderation": 1}))


def test_sharp_photo_passes_the_gates_and_reaches_the_caption(
    oauth_api: cloudsight.API, server: ServerProcess, tenant: dict[str, Any]
) -> None:
    """Quality and moderation pass, so the caption runs: without its model the request fails
    with CloudSight's error body naming the pull command, never a made-up name."""
    first = oauth_api.image_request(
        io.BytesIO(photo_bytes()),
        "astronaut.jpg",
        {"image_request[locale]": "fr-FR", "focus[x]": "320", "focus[y]": "120"},
    )
    with pytest.raises(cloudsight.APIError) as failure:
        poll(oauth_api, first["token"])
    job = native_job(server, tenant["key"], first["token"])
    if caption_registered():
        assert job["status"] == "failed"
        assert job["error"]["slug"] == "model_unavailable"
        assert f"opensight models pull {job['error']['model']}" in str(failure.value)
    else:
        assert "no caption analyzer" in str(failure.value)
        assert job["status"] == "completed"
        assert job["result"]["moderation"]["offensive"] is False
        assert job["result"]["quality"]["issues"] == []
    # the gates ran first, in order, and the request's fields were kept
    assert job["features"][:2] == ["quality", "moderation"]
    kept = native_job_options(server, tenant, first["token"])
    assert kept["api"] == "cloudsight"
    assert kept["api_data"]["locale"] == "fr-FR"
    assert kept["api_data"]["focus"] == {"x": 320.0, "y": 120.0}


def native_job_options(server: ServerProcess, tenant: dict[str, Any], token: str) -> dict[str, Any]:
    """The job row's options as stored (the native job view does not show them)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(f"sqlite:///{server.data_dir / 'opensight.db'}")
    try:
        with engine.connect() as connection:
            row = connection.execute(
                text("SELECT options, tenant_id FROM jobs WHERE id = :id"), {"id": token}
            ).one()
    finally:
        engine.dispose()
    import json

    options = json.loads(row[0]) if isinstance(row[0], str) else row[0]
    assert row[1] == tenant["tenant"]
    return dict(options)


# ------------------------------------------------------- tokens, ttl, repost
def test_unknown_and_foreign_tokens_are_not_found(
    oauth_api: cloudsight.API, server: ServerProcess
) -> None:
    assert oauth_api.image_response("job_doesnotexist") == {"status": "not found"}
    other = create_key(server.data_dir, "cs-other", tenant="cs-other-tenant")
    mine = oauth_api.image_request(io.BytesIO(black_png()), "black.png")
    theirs = cloudsight.API(cloudsight.SimpleAuth(other["key"]))
    assert theirs.image_response(mine["token"]) == {"status": "not found"}
    with pytest.raises(cloudsight.APIError):
        theirs.repost(mine["token"])


def test_ttl_passed_times_out_and_repost_requeues(
    oauth_api: cloudsight.API, server: ServerProcess, tenant: dict[str, Any]
) -> None:
    first = oauth_api.image_request(
        io.BytesIO(black_png()), "black.png", {"image_request[ttl]": "0.001"}
    )
    assert first["ttl"] == pytest.approx(0.001)
    final = poll(oauth_api, first["token"])
    assert final["status"] == cloudsight.STATUS_TIMEOUT
    before = native_job(server, tenant["key"], first["token"])
    # repost answers 200 with an empty body (the client returns None)
    assert oauth_api.repost(first["token"]) is None
    after = poll(oauth_api, first["token"])
    assert after["status"] == cloudsight.STATUS_TIMEOUT  # the same 1 ms ttl passed again
    again = native_job(server, tenant["key"], first["token"])
    assert again["finished_at"] > before["finished_at"]
    # raw: status and body of a repost
    header = cloudsight.OAuth(tenant["key"], tenant["secret"]).authorize(
        "POST", f"{server.url}/image_requests/{first['token']}/repost"
    )
    raw = httpx.post(
        f"{server.url}/image_requests/{first['token']}/repost",
        headers={"Authorization": header},
        timeout=10,
    )
    assert (raw.status_code, raw.content) == (200, b"")


def test_repost_of_a_job_that_did_not_time_out_is_refused(oauth_api: cloudsight.API) -> None:
    first = oauth_api.image_request(io.BytesIO(black_png()), "black.png")
    assert poll(oauth_api, first["token"])["status"] == cloudsight.STATUS_SKIPPED
    with pytest.raises(cloudsight.APIError, match="timed-out"):
        oauth_api.repost(first["token"])


def test_ttl_max_is_the_longest_the_server_allows(oauth_api: cloudsight.API) -> None:
    first = oauth_api.image_request(io.BytesIO(black_png()), "b.png", {"image_request[ttl]": "max"})
    assert first["ttl"] == 30 * 86400.0
    seconds = oauth_api.image_request(
        io.BytesIO(black_png()), "b.png", {"image_request[ttl]": "90"}
    )
    assert seconds["ttl"] == 90.0


# ------------------------------------------------------------- bad input
def post_form(
    server: ServerProcess,
    key: str,
    data: dict[str, str],
    files: dict[str, Any] | None = None,
    auth: str | None = None,
) -> httpx.Response:
    return httpx.post(
        f"{server.url}/image_requests",
        headers={"Authorization": auth or f"CloudSight {key}"},
        data=data,
        files=files,
        timeout=30,
    )


def image_part(data: bytes | None = None) -> dict[str, Any]:
    return {"image_request[image]": ("b.png", data if data is not None else black_png())}


@pytest.mark.parametrize(
    ("data", "files", "errors"),
    [
        ({}, "image", {"locale": ["can't be blank"]}),
        ({"image_request[locale]": "en-US"}, None, {"image"}),
        (
            {"image_request[locale]": "en-US", "image_request[remote_image_url]": "http://x/a.jpg"},
            "image",
            {"image"},
        ),
        (
            {"image_request[locale]": "en-US", "image_request[colour]": "red"},
            "image",
            {"image_request[colour]"},
        ),
        (
            {"image_request[locale]": "en-US", "image_request[ttl]": "soon"},
            "image",
            {"ttl": ["is not a number"]},
        ),
        ({"image_request[locale]": "en-US", "image_request[ttl]": "-5"}, "image", {"ttl"}),
        ({"image_request[locale]": "en-US", "image_request[ttl]": "99999999"}, "image", {"ttl"}),
        (
            {"image_request[locale]": "en-US", "image_request[latitude]": "north"},
            "image",
            {"latitude"},
        ),
        (
            {"image_request[locale]": "en-US", "image_request[longitude]": "200"},
            "image",
            {"longitude"},
        ),
        ({"image_request[locale]": "en US!"}, "image", {"locale"}),
        ({"image_request[locale]": "en-US", "focus[x]": "10"}, "image", {"focus"}),
        (
            {"image_request[locale]": "en-US", "focus[x]": "5000", "focus[y]": "10"},
            "image",
            {"focus"},
        ),
        ({"image_request[locale]": "en-US", "image_request[image]": "text"}, None, {"image"}),
    ],
)
def test_bad_fields_get_422_field_errors(
    server: ServerProcess,
    tenant: dict[str, Any],
    data: dict[str, str],
    files: str | None,
    errors: Any,
) -> None:
    reply = post_form(server, tenant["key"], data, image_part() if files else None)
    assert reply.status_code == 422, reply.text
    body = reply.json()
    assert isinstance(body["error"], dict)
    if isinstance(errors, dict):
        assert body["error"] == errors
    else:
        assert set(body["error"]) == errors


def test_not_an_image_and_wrong_content_type(server: ServerProcess, tenant: dict[str, Any]) -> None:
    reply = post_form(
        server, tenant["key"], {"image_request[locale]": "en-US"}, image_part(b"nope")
    )
    assert reply.status_code == 422
    assert list(reply.json()["error"]) == ["image"]
    raw = httpx.post(
        f"{server.url}/image_requests",
        headers={"Authorization": f"CloudSight {tenant['key']}", "Content-Type": "text/plain"},
        content=b"hello",
        timeout=10,
    )
    assert raw.status_code == 415
    assert "error" in raw.json()
    bad_url = post_form(
        server,
        tenant["key"],
        {
            "image_request[locale]": "en-US",
            "image_request[remote_image_url]": "ftp://example.com/a",
        },
    )
    assert bad_url.status_code == 400
    assert list(bad_url.json()["error"]) == ["remote_image_url"]


def test_wrong_methods_get_405_with_error(server: ServerProcess, tenant: dict[str, Any]) -> None:
    headers = {"Authorization": f"CloudSight {tenant['key']}"}
    for method, path in (
        ("GET", "/image_requests"),
        ("DELETE", "/image_responses/job_x"),
        ("GET", "/image_requests/job_x/repost"),
    ):
        reply = httpx.request(method, server.url + path, headers=headers, timeout=10)
        assert reply.status_code == 405, path
        assert "error" in reply.json()


def test_json_body_is_accepted_like_the_form(server: ServerProcess, tenant: dict[str, Any]) -> None:
    with Stub() as stub:
        stub.routes["/b.png"] = (200, {"Content-Type": "image/png"}, black_png())
        reply = httpx.post(
            f"{server.url}/image_requests",
            headers={"Authorization": f"CloudSight {tenant['key']}"},
            json={"image_request": {"remote_image_url": stub.url + "/b.png", "locale": "en-US"}},
            timeout=30,
        )
    assert reply.status_code == 200, reply.text
    assert reply.json()["status"] == "not completed"
    bad = httpx.post(
        f"{server.url}/image_requests",
        headers={"Authorization": f"CloudSight {tenant['key']}"},
        json={"image_request": {"locale": ["en"]}},
        timeout=10,
    )
    assert bad.status_code == 422
    assert bad.json() == {"error": {"locale": ["must be a string or a number"]}}


def test_wrong_credentials_get_401_with_error(
    server: ServerProcess, tenant: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"{server.url}/image_responses/job_x"
    cases = {
        "none": {},
        "bearer": {"Authorization": f"Bearer {tenant['key']}"},
        "unknown key": {"Authorization": "CloudSight osk_nope"},
        "wrong secret": {
            "Authorization": cloudsight.OAuth(tenant["key"], "wrong").authorize("GET", url)
        },
        "wrong url": {
            "Authorization": cloudsight.OAuth(tenant["key"], tenant["secret"]).authorize(
                "GET", url + "y"
            )
        },
        "bad header": {"Authorization": 'OAuth oauth_consumer_key="x"'},
    }
    for name, headers in cases.items():
        reply = httpx.get(url, headers=headers, timeout=10)
        assert reply.status_code == 401, name
        assert isinstance(reply.json()["error"], str), name
    # the client itself raises on the refusal
    with pytest.raises(cloudsight.APIError):
        cloudsight.API(cloudsight.OAuth(tenant["key"], "wrong")).image_response("job_x")


def test_replayed_nonce_and_skewed_clock_are_refused(
    server: ServerProcess, tenant: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"{server.url}/image_responses/job_x"
    header = cloudsight.OAuth(tenant["key"], tenant["secret"]).authorize("GET", url)
    first = httpx.get(url, headers={"Authorization": header}, timeout=10)
    assert (first.status_code, first.json()) == (200, {"status": "not found"})
    replay = httpx.get(url, headers={"Authorization": header}, timeout=10)
    assert replay.status_code == 401
    assert "nonce" in replay.json()["error"]
    # a client whose clock is an hour off signs a correct but stale request
    real = time.time
    monkeypatch.setattr(cs_auth, "time", types.SimpleNamespace(time=lambda: real() - 3600))
    stale = cloudsight.OAuth(tenant["key"], tenant["secret"]).authorize("GET", url)
    monkeypatch.undo()
    reply = httpx.get(url, headers={"Authorization": stale}, timeout=10)
    assert reply.status_code == 401
    assert "timestamp" in reply.json()["error"]


def test_revoked_key_is_refused(server: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    point_client_at(monkeypatch, server.url)
    key = create_key(server.data_dir, "cs-revoked", tenant="cs-revoked")
    api = cloudsight.API(cloudsight.SimpleAuth(key["key"]))
    assert api.image_response("job_x") == {"status": "not found"}
    cli(server.data_dir, "keys", "revoke", key["id"])
    time.sleep(1.2)  # the server trusts a verified key for auth_cache_seconds (1 s)
    for auth in (cloudsight.SimpleAuth(key["key"]), cloudsight.OAuth(key["key"], key["secret"])):
        with pytest.raises(cloudsight.APIError, match="revoked"):
            cloudsight.API(auth).image_response("job_x")


def test_signed_image_url_refuses_tampering(
    oauth_api: cloudsight.API, server: ServerProcess
) -> None:
    first = oauth_api.image_request(io.BytesIO(black_png()), "black.png")
    url = first["url"]
    assert httpx.get(url, timeout=10).status_code == 200
    for bad in (
        url.replace("signature=", "signature=0"),
        url.split("?")[0],
        url.replace("expires=", "expires=1"),
        url.replace(first["token"], "job_0660bfb4852f6ee7baef7e90"),
    ):
        reply = httpx.get(bad, timeout=10)
        assert reply.status_code == 403, bad
        assert "error" in reply.json()


# ------------------------------------------- scale-out: two API processes, one DB
@pytest.fixture
def two_servers(
    tmp_path: Path, pg_url: str
) -> Iterator[tuple[ServerProcess, ServerProcess, dict[str, Any], str]]:
    signing_key = "test-signing-key-0123456789abcdef"
    env = {
        "OPENSIGHT_DATABASE_URL": pg_url,
        "OPENSIGHT_MAX_UPLOAD_BYTES": "200000",
        "OPENSIGHT_URL_SIGNING_KEY": signing_key,
    }
    a = ServerProcess(tmp_path / "a", workers=1, env=env).start()
    b = ServerProcess(tmp_path / "b", workers=0, env=env)
    try:
        b.start()
        key = create_key(tmp_path / "a", "cs-scale", env={"OPENSIGHT_DATABASE_URL": pg_url})
        yield a, b, key, signing_key
    finally:
        b.stop()
        a.stop()


def test_scale_out_replay_size_limit_and_expired_url(
    two_servers: tuple[ServerProcess, ServerProcess, dict[str, Any], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b, key, signing_key = two_servers
    url = f"{a.url}/image_responses/job_x"
    header = cloudsight.OAuth(key["key"], key["secret"]).authorize("GET", url)
    host = url.split("/")[2]
    assert httpx.get(url, headers={"Authorization": header}, timeout=10).status_code == 200
    # the same signed request sent to the other process (same Host) is a replay there too
    replay = httpx.get(
        f"{b.url}/image_responses/job_x",
        headers={"Authorization": header, "Host": host},
        timeout=10,
    )
    assert replay.status_code == 401
    assert "nonce" in replay.json()["error"]
    # a fresh signature for the URL as the client saw it works on either process
    point_client_at(monkeypatch, a.url)
    api = cloudsight.API(cloudsight.OAuth(key["key"], key["secret"]))
    first = api.image_request(io.BytesIO(black_png()), "black.png")
    assert poll(api, first["token"])["reason"] == "dark"
    behind_proxy = cloudsight.OAuth(key["key"], key["secret"]).authorize(
        "GET", f"https://images.example.com/image_responses/{first['token']}"
    )
    proxied = httpx.get(
        f"{b.url}/image_responses/{first['token']}",
        headers={
            "Authorization": behind_proxy,
            "Host": "images.example.com",
            "X-Forwarded-Proto": "https",
        },
        timeout=10,
    )
    assert proxied.status_code == 200, proxied.text
    assert proxied.json()["status"] == "skipped"
    assert proxied.json()["url"].startswith("https://images.example.com/cloudsight/images/")
    # the signing key from the setting is shared: a URL made by one process works on the other
    # (served by the process whose data dir holds the bytes: file blobs are per machine)
    image_path = proxied.json()["url"].split("images.example.com", 1)[1]
    assert httpx.get(a.url + image_path, timeout=10).content == black_png()
    # an expired but genuinely signed URL is refused
    from opensight.services.signed_urls import UrlSigner

    signer = UrlSigner(signing_key.encode())
    past = int(time.time()) - 10
    expired = (
        f"{b.url}/cloudsight/images/{first['token']}?expires={past}"
        f"&signature={signer.signature('cloudsight-image:' + first['token'], past)}"
    )
    reply = httpx.get(expired, timeout=10)
    assert reply.status_code == 403
    assert "expired" in reply.json()["error"]
    # a body over the limit
    big = np.random.default_rng(0).integers(0, 255, (400, 400, 3), dtype=np.uint8)
    too_big = httpx.post(
        f"{a.url}/image_requests",
        headers={"Authorization": f"CloudSight {key['key']}"},
        data={"image_request[locale]": "en-US"},
        files={"image_request[image]": ("big.png", encoded(big))},
        timeout=30,
    )
    assert too_big.status_code == 413
    assert list(too_big.json()["error"]) == ["image"]


# ------------------------------------------------ with the caption model installed
def tiny_caption_model() -> tuple[Callable[[str, Path], None], str] | None:
    try:
        from tests.tinymodels import install_tiny  # type: ignore[import-not-found]
    except ImportError:
        return None
    from opensight.analyzers import registry

    analyzer = registry.all_analyzers().get("caption")
    if analyzer is None or analyzer.model is None:
        return None
    return install_tiny, analyzer.model


def registry_model(analyzer_name: str) -> str | None:
    from opensight.analyzers import registry

    analyzer = registry.all_analyzers().get(analyzer_name)
    return analyzer.model if analyzer is not None else None


def test_completed_with_the_caption_as_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = tiny_caption_model()
    if found is None:
        pytest.skip("no caption analyzer or tests/tinymodels.py in this tree yet")
    install_tiny, model_id = found
    model_dir = tmp_path / "models"
    install_tiny(model_id, model_dir)
    tags_model = registry_model("tags")
    if tags_model is not None:  # categories come from the tags analyzer when it is installed
        install_tiny(tags_model, model_dir)
    server = ServerProcess(
        tmp_path / "data", workers=1, env={"OPENSIGHT_MODEL_DIR": str(model_dir)}
    ).start()
    try:
        key = create_key(server.data_dir, "cs-caption")
        point_client_at(monkeypatch, server.url)
        api = cloudsight.API(cloudsight.OAuth(key["key"], key["secret"]))
        photo = photo_bytes()
        first = api.image_request(io.BytesIO(photo), "astronaut.jpg")
        final = poll(api, first["token"], timeout=120)
        native = httpx.post(
            f"{server.url}/v1/analyze",
            headers={"Authorization": f"Bearer {key['key']}"},
            files={"image": ("a.jpg", photo)},
            data={
                "features": "caption,tags" if tags_model else "caption",
                "options": '{"caption": {"locale": "en-US"}}',
            },
            timeout=120,
        ).json()
        caption = native["result"]["caption"]
        text = str(caption["caption"]).strip()
        # the documented "unsure" rule: nothing but punctuation, or a confidence under 0.1
        if any(ch.isalnum() for ch in text) and caption["confidence"] >= UNSURE_BELOW:
            assert final["status"] == cloudsight.STATUS_COMPLETED, final
            assert final["name"] == text
            if tags_model is not None:
                from opensight.compat.cloudsight.render import categories

                expected = categories(native["result"]["tags"])
                assert final.get("categories", []) == expected
        else:  # a random tiny model may say nothing sensible: that is "unsure"
            assert (final["status"], final["reason"]) == ("skipped", "unsure")
        # focus (pixels here) crops around the point before captioning; locale reaches the model
        focused = api.image_request(
            io.BytesIO(photo),
            "astronaut.jpg",
            {"image_request[locale]": "fr-FR", "focus[x]": "320", "focus[y]": "120"},
        )
        assert poll(api, focused["token"], timeout=120)["status"] != "not completed"
        job = native_job(server, key["key"], focused["token"])
        assert job["result"]["caption"]["focus"] == {"x": 0.5, "y": 0.25, "box": [200, 0, 440, 240]}
        assert job["result"]["caption"]["locale"] == "fr-FR"
    finally:
        server.stop()


# ------------------------------------------------------ the pure parts, in process
def _oauth_header(key: str, secret: str, method: str, url: str, params: Any = None) -> Any:
    from opensight.compat.cloudsight import oauth

    value = cloudsight.OAuth(key, secret).authorize(method, url, params)
    return oauth.parse_header(value, time.time())


def test_oauth_accepts_each_parameter_set_the_client_signs() -> None:
    from opensight.compat.cloudsight import oauth
    from opensight.compat.cloudsight.errors import CloudSightError

    url = "http://127.0.0.1:9/image_requests"
    form = [
        ("image_request[locale]", "en-US"),
        ("image_request[ttl]", "60"),
        ("image_request[remote_image_url]", "http://a/b c.jpg"),
    ]
    signed_sets = {
        "all fields (URL request)": dict(form),
        "without the default locale (upload)": dict(form[1:]),
        "none (upload without params)": None,
    }
    for params in signed_sets.values():
        header = _oauth_header("k", "s3cr~t", "POST", url, params)
        oauth.verify(header, "s3cr~t", "POST", [url], form, [])  # no exception: accepted
        with pytest.raises(CloudSightError):
            oauth.verify(header, "other", "POST", [url], form, [])
        if params is not None:  # a signed field changed after signing is refused
            changed = [*form[:1], ("image_request[ttl]", "61"), *form[2:]]
            with pytest.raises(CloudSightError):
                oauth.verify(header, "s3cr~t", "POST", [url], changed, [])


def test_oauth_header_checks() -> None:
    from opensight.compat.cloudsight import oauth
    from opensight.compat.cloudsight.errors import CloudSightError

    good = cloudsight.OAuth("k", "s").authorize("GET", "http://h/x")
    now = time.time()
    assert oauth.parse_header(good, now).consumer_key == "k"
    for bad in (
        good.replace("HMAC-SHA1", "PLAINTEXT"),
        good.replace('oauth_version="1.0"', 'oauth_version="2.0"'),
        good.replace("oauth_nonce", "oauth_nonse"),
        "Basic abc",
        good + ', oauth_token="t"',
    ):
        with pytest.raises(CloudSightError) as refused:
            oauth.parse_header(bad, now)
        assert refused.value.status == 401
    with pytest.raises(CloudSightError, match="timestamp"):
        oauth.parse_header(good, now + 301)


def test_relative_focus() -> None:
    from opensight.compat.cloudsight.errors import CloudSightError
    from opensight.compat.cloudsight.request import relative_focus

    assert relative_focus((0.25, 1.0), 640, 480) == (0.25, 1.0)
    assert relative_focus((320, 120), 640, 480) == (0.5, 0.25)
    with pytest.raises(CloudSightError):
        relative_focus((641, 10), 640, 480)


def test_render_unsure_and_categories() -> None:
    from opensight.compat.cloudsight.render import categories, is_unsure

    assert is_unsure({"caption": "", "confidence": 0.9})
    assert is_unsure({"caption": " . , ", "confidence": 0.9})
    assert is_unsure({"caption": "a cat", "confidence": 0.05})
    assert not is_unsure({"caption": "a cat", "confidence": 0.5})
    assert not is_unsure({"caption": "un chat"})
    tags = {"tags": [{"name": "cat", "score": 0.9}, {"label": "pet"}, "animal", {"name": "cat"}]}
    assert categories(tags) == ["cat", "pet", "animal"]
    assert categories(None) == []


def test_nonce_store_and_signing_key(tmp_path: Path) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    from opensight.config import Settings
    from opensight.jobs.model import utcnow
    from opensight.services.nonces import NonceStore
    from opensight.services.signed_urls import UrlSigner, signing_key
    from opensight.storage.db import Database
    from opensight.storage.tables import OAuthNonce

    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    db.upgrade()
    try:
        store = NonceStore(db, keep_seconds=60)
        assert store.use("key1", "n1")
        assert not store.use("key1", "n1")
        assert store.use("key2", "n1")  # nonces are per key
        assert not store.use("key1", "x" * 200)
        with db.engine.begin() as connection:
            connection.execute(update(OAuthNonce).values(created_at=utcnow() - timedelta(hours=1)))
        assert store.cleanup() == 2
        # the database key is made once and then shared; the setting overrides it
        settings = Settings(data_dir=tmp_path)
        first = signing_key(settings, db)
        assert signing_key(settings, db) == first and len(first) == 64
        assert signing_key(Settings(data_dir=tmp_path, url_signing_key="k" * 20), db) == b"k" * 20
        signer = UrlSigner(first)
        query = signer.sign("r", 3600, now=1000.0)
        assert signer.verify("r", query["expires"], query["signature"], now=1000.0)
        assert not signer.verify("r", query["expires"], query["signature"], now=1e9)
        assert not signer.verify("other", query["expires"], query["signature"], now=1000.0)
        assert not signer.verify("r", "12x", query["signature"], now=1000.0)
    finally:
        db.dispose()


def test_url_variants_cover_default_ports_and_case() -> None:
    from opensight.compat.cloudsight.oauth import url_variants

    assert url_variants("http", "h:80", "/x") == ["http://h:80/x", "http://h/x"]
    assert url_variants("HTTP", "H", "/x") == ["http://H/x", "http://H:80/x", "http://h/x"]
    assert url_variants("https", "h:8443", "/x") == ["https://h:8443/x"]
    assert url_variants("https", "[::1]", "/x") == ["https://[::1]/x", "https://[::1]:443/x"]
