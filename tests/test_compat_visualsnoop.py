"""VisualSnoop /api/v1 against a real server, driven by the unchanged ``visualsnoop==0.2``
client (only ``base64.encodestring`` is aliased: it was removed in Python 3.9)."""

from __future__ import annotations

import base64
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from wsgiref.handlers import format_date_time

import numpy as np
import pytest
import requests
from PIL import Image

if not hasattr(base64, "encodestring"):  # the client's only Python 3.9+ incompatibility
    base64.encodestring = base64.encodebytes  # type: ignore[attr-defined]

from visualsnoop.auth import VisualSnoopHMACAuth
from visualsnoop.exceptions import VisualSnoopError
from visualsnoop.models import Collection

from tests.conftest import photo_bytes
from tests.server import ServerProcess, cli

LIMIT = 400_000  # the server's max_upload_bytes in these tests


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(
        tmp_path_factory.mktemp("visualsnoop"),
        workers=1,
        env={"OPENSIGHT_MAX_UPLOAD_BYTES": str(LIMIT)},
    ).start()
    yield proc
    proc.stop()


def make_key(
    server: ServerProcess, name: str, tenant: str, collection: str | None = None
) -> dict[str, Any]:
    args = ["keys", "create", name, "--json", "--tenant", tenant]
    if collection:
        args += ["--collection", collection]
    out = cli(server.data_dir, *args).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def connect(server: ServerProcess, key: dict[str, Any], endpoint: str = "/api/v1") -> Collection:
    return Collection(key["key"], key["secret"], endpoint=server.url + endpoint)


def call(
    server: ServerProcess,
    key: dict[str, Any] | None,
    method: str,
    path: str,
    date: str | None = None,
    **kwargs: Any,
) -> requests.Response:
    """A request signed by the client's own VSHMAC code (with our Date, when given)."""
    headers = dict(kwargs.pop("headers", {}))
    if date is not None:
        headers["Date"] = date
    signer = VisualSnoopHMACAuth(key["key"], key["secret"]) if key else None
    return requests.request(
        method, server.url + path, auth=signer, headers=headers, timeout=60, **kwargs
    )


def assert_error(reply: requests.Response | dict[str, Any], status: int) -> str:
    """VisualSnoop's error shape, with the HTTP status repeated in the body."""
    if isinstance(reply, requests.Response):
        assert reply.status_code == status, reply.text
        assert reply.headers["content-type"].startswith("application/json"), reply.headers
        body = reply.json()
    else:
        body = reply
    assert set(body) == {"status", "message"}, body
    assert body["status"] == status, body
    assert isinstance(body["message"], str) and body["message"]
    return str(body["message"])


def http_date(offset_seconds: float = 0.0) -> str:
    return format_date_time(time.time() + offset_seconds)


def jpeg(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def skimage_photo(name: str, size: tuple[int, int] = (512, 384)) -> bytes:
    from skimage import data

    return jpeg(Image.fromarray(getattr(data, name)()).resize(size))


def edited(original: bytes) -> bytes:
    """The same picture cropped, scaled down and re-saved at low quality."""
    image: Image.Image = Image.open(io.BytesIO(original))
    w, h = image.size
    image = image.crop((w // 10, h // 12, w - w // 10, h - h // 12)).resize((w // 2, h // 2))
    return jpeg(image, quality=40)


# ---------------------------------------------------------------- every method
def test_every_client_method(server: ServerProcess, tmp_path: Path) -> None:
    key = make_key(server, "vs-all", "t-vs-all", collection="products")
    col = connect(server, key)
    assert (col.id, col.name, col.user) == ("products", "products", "t-vs-all")

    astronaut = photo_bytes()
    added = col.add_image(io.BytesIO(astronaut), "sku-1")
    assert added["status"] == 201 and added["message"] == "Added"
    assert added["image_id"] == "sku-1" and added["collection_id"] == "products"
    assert added["image_time"].endswith("Z")

    # overwrite-safe: a POST to an existing id is refused and changes nothing
    coffee = skimage_photo("coffee")
    refused = col.add_image(io.BytesIO(coffee), "sku-1")
    assert "update_existing" in assert_error(refused, 409)
    assert col.get_image("sku-1")["image_time"] == added["image_time"]
    assert col.search_images(io.BytesIO(astronaut))["results"][0]["id"] == "sku-1"

    # PUT (update_existing=True) replaces it, and creates an absent id
    updated = col.add_image(io.BytesIO(coffee), "sku-1", update_existing=True)
    assert (updated["status"], updated["message"]) == (200, "Updated")
    assert updated["image_time"] > added["image_time"]
    assert col.search_images(io.BytesIO(astronaut))["results"] == []
    assert col.search_images(io.BytesIO(coffee))["results"][0]["id"] == "sku-1"
    created = col.add_image(io.BytesIO(astronaut), "sku-2", update_existing=True)
    assert (created["status"], created["message"]) == (201, "Added")

    # no id: one is generated; a file path works as the client documents
    path = tmp_path / "chelsea.jpg"
    path.write_bytes(skimage_photo("chelsea"))
    generated = col.add_image(str(path))
    assert generated["status"] == 201 and len(generated["image_id"]) >= 16
    # ids may hold slashes and spaces
    odd = col.add_image(io.BytesIO(photo_bytes((300, 200), seed=9)), "shoes/red pair")
    assert odd["image_id"] == "shoes/red pair"
    assert col.get_image("shoes/red pair")["image_id"] == "shoes/red pair"

    got = col.get_image("sku-2")
    assert (got["message"], got["status"], got["image_id"]) == ("OK", 200, "sku-2")
    assert got["image_time"] == created["image_time"]

    listing = col.get_images()
    assert [i["id"] for i in listing["images"]] == [
        "shoes/red pair",
        generated["image_id"],
        "sku-2",
        "sku-1",
    ]
    assert listing["next_image_id"] is None and listing["status"] == 200

    by_id = col.search_images_by_id("sku-2")
    assert by_id["image_id"] == "sku-2" and by_id["image_time"] == created["image_time"]
    assert "sku-2" not in [r["id"] for r in by_id["results"]]  # not its own match

    deleted = col.delete_image("sku-2")
    assert (deleted["message"], deleted["status"], deleted["image_id"]) == ("Deleted", 200, "sku-2")
    assert_error(col.get_image("sku-2"), 404)
    assert_error(col.delete_image("sku-2"), 404)
    assert_error(col.search_images_by_id("sku-2"), 404)
    assert "sku-2" not in [i["id"] for i in col.get_images()["images"]]


def test_listing_pages_newest_first(server: ServerProcess) -> None:
    col = connect(server, make_key(server, "vs-list", "t-vs-list", collection="pages"))
    ids = [f"img-{n}" for n in range(5)]
    for n, image_id in enumerate(ids):
        assert (
            col.add_image(io.BytesIO(photo_bytes((160, 120), seed=n + 1)), image_id)["status"]
            == 201
        )

    def walk(count: int) -> list[list[str]]:
        pages, start = [], None
        while True:
            page = col.get_images(start=start, count=count)
            assert page["status"] == 200 and page["collection_id"] == "pages"
            pages.append([i["id"] for i in page["images"]])
            start = page["next_image_id"]
            if start is None:
                return pages

    newest_first = ids[::-1]
    assert walk(2) == [newest_first[0:2], newest_first[2:4], newest_first[4:]]
    assert walk(5) == [newest_first]
    # start is included, and any id can start a page
    page = col.get_images(start="img-2", count=2)
    assert [i["id"] for i in page["images"]] == ["img-2", "img-1"]
    assert page["next_image_id"] == "img-0"
    # a replaced image is the newest
    col.add_image(io.BytesIO(photo_bytes((160, 120), seed=77)), "img-0", update_existing=True)
    assert col.get_images(count=1)["images"][0]["id"] == "img-0"
    assert_error(col.get_images(start="nope"), 404)


def test_search_returns_only_matches(server: ServerProcess) -> None:
    col = connect(server, make_key(server, "vs-search", "t-vs-search", collection="photos"))
    astronaut, coffee = photo_bytes(), skimage_photo("coffee")
    col.add_image(io.BytesIO(astronaut), "astro")
    col.add_image(io.BytesIO(coffee), "coffee")
    col.add_image(io.BytesIO(edited(astronaut)), "astro-small")

    exact = col.search_images(io.BytesIO(astronaut))
    assert exact["status"] == 200 and exact["collection_id"] == "photos"
    first = exact["results"][0]
    assert (first["id"], first["rank"], first["match"], first["score"]) == (
        "astro",
        1,
        "exact",
        1.0,
    )
    assert [r["id"] for r in exact["results"]] == ["astro", "astro-small"]
    assert [r["rank"] for r in exact["results"]] == [1, 2]

    # an edited copy finds the original; the unrelated picture is not listed
    found = col.search_images(io.BytesIO(edited(jpeg(Image.open(io.BytesIO(astronaut)), 50))))
    assert {r["id"] for r in found["results"]} == {"astro", "astro-small"}
    assert all(r["match"] in ("exact", "near_duplicate") for r in found["results"])
    assert all(0.9 <= r["score"] <= 1.0 for r in found["results"])

    # absent pictures get no results at all
    for absent in ("chelsea", "rocket", "camera"):
        assert col.search_images(io.BytesIO(skimage_photo(absent)))["results"] == []

    by_id = col.search_images_by_id("astro")
    assert [r["id"] for r in by_id["results"]] == ["astro-small"]
    assert by_id["results"][0]["match"] == "near_duplicate"
    assert col.search_images_by_id("coffee")["results"] == []


# ------------------------------------------------------------------- isolation
def test_tenant_and_collection_isolation(server: ServerProcess) -> None:
    astronaut = photo_bytes()
    alpha = connect(server, make_key(server, "alpha", "t-iso-a", collection="alpha"))
    assert alpha.add_image(io.BytesIO(astronaut), "x")["status"] == 201

    # same tenant, key bound to another collection: nothing of alpha is visible
    beta_key = make_key(server, "beta", "t-iso-a", collection="beta")
    beta = connect(server, beta_key)
    assert beta.id == "beta"
    assert_error(beta.get_image("x"), 404)
    assert beta.search_images(io.BytesIO(astronaut))["results"] == []
    assert beta.get_images()["images"] == []
    # ... and it cannot name alpha in its endpoint either
    with pytest.raises(VisualSnoopError, match="bound to collection 'beta'"):
        connect(server, beta_key, "/api/v1/collections/alpha")
    assert_error(call(server, beta_key, "GET", "/api/v1/collections/alpha/image/x"), 403)
    assert_error(call(server, beta_key, "DELETE", "/api/v1/collections/alpha/image/x"), 403)

    # another tenant with a collection of the same name sees its own, empty one
    other = connect(server, make_key(server, "other", "t-iso-b", collection="alpha"))
    assert other.id == "alpha"
    assert_error(other.get_image("x"), 404)
    assert other.get_images()["images"] == []
    assert other.search_images(io.BytesIO(astronaut))["results"] == []
    assert other.add_image(io.BytesIO(astronaut), "x")["status"] == 201  # its own "x"
    assert_error(alpha.add_image(io.BytesIO(astronaut), "x"), 409)  # alpha's is still there

    # an unbound key works on "visualsnoop", or on the collection its endpoint names
    free_key = make_key(server, "free", "t-iso-a")
    free = connect(server, free_key)
    assert free.id == "visualsnoop"
    assert_error(free.get_image("x"), 404)
    named = connect(server, free_key, "/api/v1/collections/alpha")
    assert named.id == "alpha"
    assert named.get_image("x")["image_id"] == "x"
    assert named.search_images(io.BytesIO(astronaut))["results"][0]["id"] == "x"
    assert_error(call(server, free_key, "GET", "/api/v1/collections/bad%20name!/collection"), 400)

    # it is the native collection: /v1 sees the same image
    native = requests.get(
        server.url + "/v1/collections/alpha/images/x",
        headers={"Authorization": f"Bearer {free_key['key']}"},
        timeout=30,
    )
    assert native.status_code == 200 and native.json()["id"] == "x"
    names = requests.get(
        server.url + "/v1/collections",
        headers={"Authorization": f"Bearer {free_key['key']}"},
        timeout=30,
    ).json()["collections"]
    assert {c["name"] for c in names} == {"alpha", "beta", "visualsnoop"}


# ----------------------------------------------------------------- credentials
def test_bad_credentials(server: ServerProcess) -> None:
    key = make_key(server, "creds", "t-creds", collection="c")
    assert call(server, key, "GET", "/api/v1/collection").status_code == 200

    wrong = {**key, "secret": key["secret"] + "x"}
    with pytest.raises(VisualSnoopError, match="signature does not match"):
        connect(server, wrong)
    assert_error(call(server, wrong, "GET", "/api/v1/image/a"), 401)
    unknown = {**key, "key": "osk_000000000000nothing"}
    message = assert_error(call(server, unknown, "GET", "/api/v1/image/a"), 401)
    assert message == assert_error(call(server, wrong, "GET", "/api/v1/image/b"), 401)

    # no or malformed Authorization; no or malformed Date
    assert_error(requests.get(server.url + "/api/v1/collection", timeout=30), 401)
    for header in (f"Bearer {key['key']}", "VSHMAC", f"VSHMAC {key['key']}", "VSHMAC :abc"):
        reply = requests.get(
            server.url + "/api/v1/collection",
            headers={"Authorization": header, "Date": http_date()},
            timeout=30,
        )
        assert_error(reply, 401)
    signed = call(server, key, "GET", "/api/v1/collection").request.headers["Authorization"]
    no_date = requests.get(
        server.url + "/api/v1/collection", headers={"Authorization": signed}, timeout=30
    )
    assert "Date" in assert_error(no_date, 401)
    assert "RFC 1123" in assert_error(
        call(server, key, "GET", "/api/v1/collection", date="yesterday"), 401
    )

    # a Date an hour off either way is refused; ten minutes off is within the window
    for offset in (-3600, 3600):
        reply = call(server, key, "GET", "/api/v1/collection", date=http_date(offset))
        assert "60 minutes" in assert_error(reply, 401)
    assert call(server, key, "GET", "/api/v1/collection", date=http_date(-600)).status_code == 200
    assert call(server, key, "GET", "/api/v1/collection", date=http_date(600)).status_code == 200

    # a signature is for one method and one path
    date = http_date()
    good = call(server, key, "GET", "/api/v1/images", date=date)
    assert good.status_code == 200
    for method, path in (("DELETE", "/api/v1/image/a"), ("GET", "/api/v1/collection")):
        forged = requests.request(
            method,
            server.url + path,
            headers={"Date": date, "Authorization": good.request.headers["Authorization"]},
            timeout=30,
        )
        assert_error(forged, 401)

    # a revoked key is refused (once its signature is right)
    revoked = make_key(server, "revoked", "t-creds", collection="c")
    cli(server.data_dir, "keys", "revoke", revoked["key"])
    assert "revoked" in assert_error(call(server, revoked, "GET", "/api/v1/collection"), 403)
    assert_error(call(server, {**revoked, "secret": "nope"}, "GET", "/api/v1/collection"), 401)


def test_replayed_signature_is_refused(server: ServerProcess) -> None:
    key = make_key(server, "replay", "t-replay", collection="c")
    date = http_date()
    first = call(server, key, "GET", "/api/v1/images", date=date)
    assert first.status_code == 200
    # the client signs two calls in the same second identically: both must pass
    assert call(server, key, "GET", "/api/v1/images", date=date).status_code == 200
    time.sleep(6)
    replay = requests.get(
        server.url + "/api/v1/images",
        headers={"Date": date, "Authorization": first.request.headers["Authorization"]},
        timeout=30,
    )
    assert "already used" in assert_error(replay, 401)
    assert call(server, key, "GET", "/api/v1/images").status_code == 200  # a fresh signature


# ------------------------------------------------------------------- bad input
def test_bad_input(server: ServerProcess) -> None:
    key = make_key(server, "bad", "t-bad", collection="c")
    col = connect(server, key)

    # bodies: empty, a form, JSON, not an image, over the limit
    assert "empty" in assert_error(call(server, key, "POST", "/api/v1/image", data=b""), 400)
    form = call(server, key, "POST", "/api/v1/image", files={"image": ("a.jpg", photo_bytes())})
    assert "multipart/form-data" in assert_error(form, 415)
    assert_error(call(server, key, "POST", "/api/v1/search", json={"url": "http://x/a.jpg"}), 415)
    assert "not a recognised image" in assert_error(
        col.add_image(io.BytesIO(b"definitely not an image"), "junk"), 415
    )
    truncated = photo_bytes()[:3000]
    assert_error(col.search_images(io.BytesIO(truncated)), 400)
    assert_error(col.add_image(io.BytesIO(truncated), "cut"), 400)
    too_big = np.random.default_rng(0).integers(0, 256, LIMIT + 50_000, dtype=np.uint8).tobytes()
    assert str(LIMIT) in assert_error(col.add_image(io.BytesIO(too_big), "big"), 413)
    assert_error(col.search_images(io.BytesIO(too_big)), 413)
    assert_error(call(server, key, "PUT", "/api/v1/image/big", data=too_big), 413)
    assert col.get_images()["images"] == []  # nothing was stored by any of these

    # ids: too long, control characters
    assert_error(col.add_image(io.BytesIO(photo_bytes()), "x" * 101), 400)
    assert_error(call(server, key, "PUT", "/api/v1/image/a%01b", data=photo_bytes()), 400)
    assert col.add_image(io.BytesIO(photo_bytes()), "x" * 100)["status"] == 201

    # query parameters: unknown, repeated, wrong type or range
    for path in (
        "/api/v1/images?foo=1",
        "/api/v1/images?count=abc",
        "/api/v1/images?count=0",
        "/api/v1/images?count=1001",
        "/api/v1/images?count=-3",
        "/api/v1/images?count=2&count=3",
        "/api/v1/collection?session=bogus",
        "/api/v1/image/" + "x" * 100 + "?extra=1",
        "/api/v1/search/" + "x" * 100 + "?limit=5",
    ):
        assert_error(call(server, key, "GET", path), 400)
    assert call(server, key, "GET", "/api/v1/images?count=1000").status_code == 200

    # unknown ids, endpoints and methods
    assert_error(col.get_image("missing"), 404)
    assert_error(col.delete_image("missing"), 404)
    assert_error(col.search_images_by_id("missing"), 404)
    assert_error(col.get_images(start="missing"), 404)
    assert_error(call(server, key, "GET", "/api/v1/nothing-here"), 404)
    assert_error(call(server, key, "GET", "/api/v1"), 404)
    patch = call(server, key, "PATCH", "/api/v1/image/a")
    assert_error(patch, 405)
    assert patch.headers["allow"] == "DELETE, GET, POST, PUT"
    assert_error(call(server, key, "DELETE", "/api/v1/images"), 405)
    assert_error(call(server, key, "GET", "/api/v1/search"), 405)
    # bad input never cost the server: it still answers, and logged no traceback
    assert col.get_image("x" * 100)["status"] == 200
    assert "Traceback" not in server.log()


def test_rate_limit_is_json(tmp_path: Path) -> None:
    proc = ServerProcess(
        tmp_path / "rl",
        workers=1,
        env={"OPENSIGHT_RATE_LIMIT_PER_SECOND": "1", "OPENSIGHT_RATE_LIMIT_BURST": "2"},
    ).start()
    try:
        key = make_key(proc, "rl", "t-rl", collection="c")
        replies = [call(proc, key, "GET", "/api/v1/collection") for _ in range(4)]
        assert [r.status_code for r in replies[:2]] == [200, 200]
        limited = replies[-1]
        assert_error(limited, 429)
        assert int(limited.headers["retry-after"]) >= 1
    finally:
        proc.stop()


def test_concurrent_adds_in_one_second(server: ServerProcess) -> None:
    """Uploads in the same second carry the same signature; none may be refused."""
    from concurrent.futures import ThreadPoolExecutor

    key = make_key(server, "burst", "t-burst", collection="c")
    date = http_date()

    def add(n: int) -> int:
        body = photo_bytes((120, 90), seed=n + 1)
        return call(server, key, "POST", "/api/v1/image", date=date, data=body).status_code

    with ThreadPoolExecutor(6) as pool:  # all in flight at once, within the 5 s grace
        assert list(pool.map(add, range(6))) == [201] * 6
    assert len(connect(server, key).get_images()["images"]) == 6


# ------------------------------------------------------------ pure translation
def test_signature_is_the_clients() -> None:
    from opensight.compat.visualsnoop.auth import matches, sign

    request = requests.Request("PUT", "http://h:1/api/v1/image/shoes/red pair?x=1", data=b"x")
    prepared = VisualSnoopHMACAuth("osk_k", " oss_secret\n")(request.prepare())
    header = prepared.headers["Authorization"]
    assert header.startswith("VSHMAC osk_k:")
    signature = header.split(":", 1)[1]
    path = "/api/v1/image/shoes/red%20pair"
    assert sign("oss_secret", "PUT", path, prepared.headers["Date"]) == signature
    assert matches("oss_secret", "PUT", ["/other", path], prepared.headers["Date"], signature)
    assert not matches("oss_secret", "GET", [path], prepared.headers["Date"], signature)
    assert not matches("oss_other", "PUT", [path], prepared.headers["Date"], signature)


def test_date_window() -> None:
    from opensight.compat.visualsnoop.auth import check_date
    from opensight.errors import Unauthorized

    now = 1_790_000_000.0
    check_date(format_date_time(now - 899), now)
    check_date(format_date_time(now + 899), now)
    for bad in (format_date_time(now - 901), format_date_time(now + 3600), "", "Mon, 99 Foo"):
        with pytest.raises(Unauthorized):
            check_date(bad, now)


def test_replay_guard() -> None:
    from opensight.compat.visualsnoop.replay import ReplayGuard

    clock = [0.0]
    guard = ReplayGuard(
        grace_seconds=5, lifetime_seconds=1800, max_entries=3, clock=lambda: clock[0]
    )
    assert guard.admit("k", "s1") and guard.admit("k", "s1")  # same second: the client's repeats
    assert guard.admit("other", "s1")  # another key
    clock[0] = 4.9
    assert guard.admit("k", "s1")
    clock[0] = 5.1
    assert not guard.admit("k", "s1")
    clock[0] = 2000.0  # past any Date window: forgotten, the clock check refuses it anyway
    assert guard.admit("k", "s1")
    for n in range(5):  # bounded memory: the oldest go first
        guard.admit("k", f"n{n}")
    assert len(guard._first_seen) == 3


# ------------------------------------- replay memory shared through the database
def _shared_replay_memory(url: str) -> None:
    """Two guards on one database behave as two API processes: the first sighting anywhere
    decides, repeats are answered from the cache without a query, only hashes are stored."""
    from datetime import timedelta

    from sqlalchemy import event, select, update

    from opensight.compat.visualsnoop.replay import ReplayGuard, digest
    from opensight.jobs.model import utcnow
    from opensight.services.nonces import FirstSeenStore, insert_new
    from opensight.storage.db import Database
    from opensight.storage.tables import SeenSignature

    dbs = [Database(url), Database(url), Database(url)]
    dbs[0].upgrade()
    try:
        start = time.time()
        clock = [start]
        node_a, node_b, node_c = (ReplayGuard(clock=lambda: clock[0]) for _ in range(3))
        queries = [0]
        event.listen(
            dbs[1].engine,
            "before_cursor_execute",
            lambda *a: queries.__setitem__(0, queries[0] + 1),
        )
        sig = "c2lnbmF0dXJlLW9mLWEtcmVxdWVzdA=="
        assert node_a.admit("osk_k", sig, dbs[0])
        clock[0] = start + 4.0
        assert node_b.admit("osk_k", sig, dbs[1])  # within the grace, on another node
        before = queries[0]
        assert node_b.admit("osk_k", sig, dbs[1])  # a repeat: from the cache, no query
        assert queries[0] == before
        clock[0] = start + 5.5
        assert not node_b.admit("osk_k", sig, dbs[1])  # cached, and past the grace
        assert queries[0] == before
        assert not node_c.admit("osk_k", sig, dbs[2])  # never seen here: the database says no
        assert node_c.admit("osk_other", sig, dbs[2])  # another key is another signature
        clock[0] = start + 7.0
        assert node_c.admit("osk_k", "bmV3", dbs[2]) and node_a.admit("osk_k", "bmV3", dbs[0])
        clock[0] = start + 13.0
        assert not node_b.admit("osk_k", "bmV3", dbs[1])

        with dbs[0].read() as session:
            rows = session.execute(select(SeenSignature)).scalars().all()
        assert {row.digest for row in rows} == {
            digest("osk_k", sig),
            digest("osk_other", sig),
            digest("osk_k", "bmV3"),
        }
        for row in rows:  # a hash, never the signature; kept past the ±15-minute Date window
            assert sig not in row.digest and "bmV3" not in row.digest
            assert row.expires_at - row.first_seen >= timedelta(minutes=30)

        # the insert-or-read is race-free: concurrent first sightings agree on one time
        from concurrent.futures import ThreadPoolExecutor
        from threading import Barrier

        barrier = Barrier(6)
        racers = [Database(url) for _ in range(6)]

        def first_seen(n: int) -> Any:
            barrier.wait()
            store = FirstSeenStore(racers[n], keep_seconds=2400)
            return store.first_seen("f" * 64, utcnow() + timedelta(milliseconds=n))

        try:
            with ThreadPoolExecutor(6) as pool:
                seen = list(pool.map(first_seen, range(6)))
        finally:
            for db in racers:
                db.dispose()
        assert len(set(seen)) == 1 and seen[0] is not None

        # expired rows are deleted (and a malformed key is refused before any query)
        store = FirstSeenStore(dbs[0], keep_seconds=2400)
        with dbs[0].engine.begin() as connection:
            connection.execute(
                update(SeenSignature)
                .where(SeenSignature.digest == "f" * 64)
                .values(expires_at=utcnow() - timedelta(seconds=1))
            )
        assert store.cleanup() == 1
        row = {"digest": "e" * 64, "first_seen": utcnow(), "expires_at": utcnow()}
        with dbs[1].engine.begin() as connection:  # it tells whether this call inserted
            assert insert_new(connection, SeenSignature, row)
            assert not insert_new(connection, SeenSignature, row)
        with pytest.raises(ValueError):
            store.first_seen("x" * 65)
    finally:
        for db in dbs:
            db.dispose()


def test_shared_replay_memory_sqlite(tmp_path: Path) -> None:
    _shared_replay_memory(f"sqlite:///{tmp_path / 'db.sqlite'}")


def test_shared_replay_memory_postgresql(pg_url: str) -> None:
    _shared_replay_memory(pg_url)


def test_replay_to_another_api_process_is_refused(tmp_path: Path, pg_url: str) -> None:
    """Scale-out: two API processes on one PostgreSQL share the memory of signatures."""
    env = {"OPENSIGHT_DATABASE_URL": pg_url}
    a = ServerProcess(tmp_path / "a", workers=1, env=env).start()
    b = ServerProcess(tmp_path / "b", workers=0, env=env)
    try:
        b.start()
        args = ["keys", "create", "replay-scale", "--json", "--tenant", "t-scale"]
        out = cli(a.data_dir, *args, "--collection", "c", env=env).stdout
        key = json.loads(out.strip().splitlines()[-1])
        assert call(a, key, "GET", "/api/v1/collection?session=init").status_code == 200

        def send(server: ServerProcess, signed: requests.Response) -> requests.Response:
            """The captured request, sent again as it was (to the same path)."""
            return requests.get(
                server.url + "/api/v1/images",
                headers={
                    "Date": signed.request.headers["Date"],
                    "Authorization": signed.request.headers["Authorization"],
                },
                timeout=30,
            )

        # the client's same-second repeats may land on either process: both accepted
        shared = call(a, key, "GET", "/api/v1/images", date=http_date())
        assert shared.status_code == 200, shared.text
        assert send(b, shared).status_code == 200
        # a signature only process A saw, and one Date-second older
        captured = call(a, key, "GET", "/api/v1/images", date=http_date(-1))
        assert captured.status_code == 200, captured.text
        time.sleep(6)
        # past the grace, a replay is refused by the process that never saw it ...
        assert "already used" in assert_error(send(b, captured), 401)
        # ... and by both for the signature both saw
        assert "already used" in assert_error(send(b, shared), 401)
        assert "already used" in assert_error(send(a, shared), 401)
        # the client's fresh signatures keep working on either process
        assert call(b, key, "GET", "/api/v1/images").status_code == 200
        assert call(a, key, "GET", "/api/v1/images", date=http_date(1)).status_code == 200
        assert "Traceback" not in a.log() + b.log()
    finally:
        b.stop()
        a.stop()


def test_replay_memory_unreachable_is_503_not_admitted() -> None:
    """Without its database the guard refuses (503), it never lets a request through."""
    from opensight.compat.visualsnoop.replay import ReplayGuard
    from opensight.errors import ServiceUnavailable
    from opensight.storage.db import Database

    db = Database("postgresql+psycopg://postgres@127.0.0.1:1/nowhere?connect_timeout=2")
    try:
        with pytest.raises(ServiceUnavailable):
            ReplayGuard().admit("osk_k", "c2ln", db)
    finally:
        db.dispose()
