"""Collections through a real server process over HTTP."""

from __future__ import annotations

import base64
import io
import json
from functools import cache
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
from PIL import Image

from tests.httpstub import Stub
from tests.server import ServerProcess, cli, create_key

PROBLEM = "application/problem+json"


def client_for(server: ServerProcess, key: dict[str, Any] | str) -> httpx.Client:
    token = key["key"] if isinstance(key, dict) else key
    return httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=120
    )


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["slug"] == slug and body["status"] == status and body["detail"]
    return dict(body)


@cache
def picture(name: str) -> np.ndarray:
    from skimage import data

    arr = getattr(data, name)()
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    arr = np.ascontiguousarray(arr[..., :3])
    h, w = arr.shape[:2]
    scale = 360 / max(h, w)
    return cv2.resize(arr, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)


def jpeg(arr: np.ndarray, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(arr).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def png(arr: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(arr).save(buffer, "PNG")
    return buffer.getvalue()


def edited(name: str) -> bytes:
    """A cropped, rotated, re-compressed copy: a near-duplicate."""
    arr = picture(name)
    h, w = arr.shape[:2]
    arr = np.ascontiguousarray(arr[h // 10 : h - h // 8, w // 8 : w - w // 10])
    h, w = arr.shape[:2]
    arr = cv2.warpAffine(arr, cv2.getRotationMatrix2D((w / 2, h / 2), 4, 1), (w, h))
    return jpeg(arr, 35)


def add(http: httpx.Client, collection: str, data: bytes, **fields: Any) -> httpx.Response:
    form = {k: json.dumps(v) if k == "metadata" else str(v) for k, v in fields.items()}
    return http.post(
        f"/v1/collections/{collection}/images", files={"image": ("x.jpg", data)}, data=form
    )


@pytest.fixture
def http(shared_server: ServerProcess, tenant: dict[str, Any]) -> httpx.Client:
    return client_for(shared_server, tenant)


# -------------------------------------------------------------- collections
def test_collections_create_list_get_delete(http: httpx.Client) -> None:
    made = http.post("/v1/collections", json={"name": "photos", "metadata_schema": {"k": "string"}})
    assert made.status_code == 201, made.text
    assert made.headers["location"] == "/v1/collections/photos"
    assert made.json() | {"created_at": None} == {
        "name": "photos",
        "metadata_schema": {"k": "string"},
        "embedder": "classic-v1",
        "dim": 392,
        "images": 0,
        "created_at": None,
    }
    assert_problem(http.post("/v1/collections", json={"name": "photos"}), 409, "conflict")
    assert http.post("/v1/collections", json={"name": "b.2-x_"}).status_code == 201
    names = [c["name"] for c in http.get("/v1/collections").json()["collections"]]
    assert names == ["b.2-x_", "photos"]
    assert http.get("/v1/collections/photos").json()["images"] == 0
    assert http.delete("/v1/collections/photos").status_code == 204
    assert_problem(http.get("/v1/collections/photos"), 404, "not_found")
    assert_problem(http.delete("/v1/collections/photos"), 404, "not_found")
    assert [c["name"] for c in http.get("/v1/collections").json()["collections"]] == ["b.2-x_"]
    # the name can be used again, and starts empty
    assert http.post("/v1/collections", json={"name": "photos"}).json()["images"] == 0


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": ""},
        {"name": "a/b"},
        {"name": "x" * 101},
        {"name": "-lead"},
        {"name": 5},
        {"name": "ok", "extra": 1},
        {"name": "ok", "metadata_schema": {"k": "date"}},
        {"name": "ok", "metadata_schema": []},
    ],
)
def test_collection_bad_input(http: httpx.Client, body: dict[str, Any]) -> None:
    assert_problem(http.post("/v1/collections", json=body), 422, "validation_error")


# ------------------------------------------------------------------- images
def test_add_get_put_list_delete_images(http: httpx.Client, shared_server: ServerProcess) -> None:
    http.post("/v1/collections", json={"name": "c"}).raise_for_status()
    first = add(http, "c", jpeg(picture("astronaut")), id="astro", metadata={"who": "eileen"})
    assert first.status_code == 201, first.text
    info = first.json()
    assert info["id"] == "astro" and info["metadata"] == {"who": "eileen"}
    assert (info["width"], info["height"]) == (360, 360)
    assert len(info["hashes"]["phash"]) == 16 and info["image_id"].startswith("img_")
    # the bytes are the tenant's stored image
    assert http.get(f"/v1/images/{info['image_id']}").status_code == 200
    assert_problem(add(http, "c", jpeg(picture("coffee")), id="astro"), 409, "conflict")
    # generated ids; JSON base64; a stored image; a URL
    generated = add(http, "c", jpeg(picture("coffee")))
    assert generated.status_code == 201 and len(generated.json()["id"]) == 32
    b64 = base64.b64encode(jpeg(picture("rocket"))).decode()
    assert http.post("/v1/collections/c/images", json={"base64": b64, "id": "r"}).status_code == 201
    stored = http.post("/v1/images", files={"image": ("h.jpg", jpeg(picture("chelsea")))}).json()
    by_ref = http.post("/v1/collections/c/images", json={"image_id": stored["id"], "id": "cat"})
    assert by_ref.status_code == 201 and by_ref.json()["image_id"] == stored["id"]
    with Stub(routes={"/m.jpg": (200, {"Content-Type": "image/jpeg"}, jpeg(picture("moon")))}) as s:
        by_url = http.post("/v1/collections/c/images", json={"url": s.url + "/m.jpg", "id": "moon"})
    assert by_url.status_code == 201, by_url.text
    assert http.get("/v1/collections/c").json()["images"] == 5

    # PUT: create (201), then replace (200) -- the old picture is gone from search
    put = http.put("/v1/collections/c/images/p1", files={"image": ("a", jpeg(picture("camera")))})
    assert put.status_code == 201 and put.headers["location"] == "/v1/collections/c/images/p1"
    replaced = http.put(
        "/v1/collections/c/images/p1",
        files={"image": ("a", jpeg(picture("coins")))},
        data={"metadata": '{"v": 2}'},
    )
    assert replaced.status_code == 200 and replaced.json()["metadata"] == {"v": 2}
    hits = http.post(
        "/v1/collections/c/search",
        files={"image": ("q", edited("camera"))},
        data={"match": "near_duplicate"},
    ).json()["results"]
    assert all(h["id"] != "p1" for h in hits)
    hits = http.post("/v1/collections/c/search", files={"image": ("q", edited("coins"))}).json()
    assert hits["results"][0]["id"] == "p1" and hits["results"][0]["match"] == "near_duplicate"
    assert http.get("/v1/collections/c").json()["images"] == 6

    # list: newest first (the replaced p1 is newest), cursor pages
    seen, cursor = [], None
    while True:
        page = http.get(
            "/v1/collections/c/images",
            params={"limit": 4, **({"cursor": cursor} if cursor else {})},
        ).json()
        seen += [i["id"] for i in page["images"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen[:5] == ["p1", "moon", "cat", "r", generated.json()["id"]] and seen[5] == "astro"
    assert len(seen) == 6
    assert_problem(
        http.get("/v1/collections/c/images", params={"cursor": "zz"}), 422, "validation_error"
    )

    assert http.get("/v1/collections/c/images/astro").json()["metadata"] == {"who": "eileen"}
    assert http.delete("/v1/collections/c/images/astro").status_code == 204
    assert_problem(http.get("/v1/collections/c/images/astro"), 404, "not_found")
    assert_problem(http.delete("/v1/collections/c/images/astro"), 404, "not_found")
    hits = http.post("/v1/collections/c/search", files={"image": ("q", jpeg(picture("astronaut")))})
    assert all(h["id"] != "astro" for h in hits.json()["results"])
    assert_problem(add(http, "nope", jpeg(picture("astronaut"))), 404, "not_found")


# ------------------------------------------------------------------- search
def test_search_by_image_and_by_id_with_filters(http: httpx.Client) -> None:
    http.post(
        "/v1/collections", json={"name": "s", "metadata_schema": {"kind": "string", "n": "integer"}}
    ).raise_for_status()
    for i, name in enumerate(["astronaut", "coffee", "chelsea", "rocket", "camera"]):
        kind = "person" if name in ("astronaut", "camera") else "thing"
        add(
            http, "s", jpeg(picture(name)), id=name, metadata={"kind": kind, "n": i}
        ).raise_for_status()
    add(http, "s", png(picture("astronaut")), id="astro-png").raise_for_status()  # same pixels
    add(http, "s", edited("astronaut"), id="astro-edit").raise_for_status()

    found = http.post("/v1/collections/s/search", files={"image": ("q", png(picture("astronaut")))})
    results = found.json()["results"]
    assert results[0] == {"id": "astro-png", "score": 1.0, "match": "exact"}
    assert {r["id"] for r in results[:3]} == {"astro-png", "astronaut", "astro-edit"}
    assert [r["match"] for r in results[1:3]] == ["near_duplicate", "near_duplicate"]
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True) and all(0.5 <= s <= 1 for s in scores)
    assert 0.9 <= results[2]["score"] <= results[1]["score"] < 1.0
    astronaut = next(r for r in results if r["id"] == "astronaut")
    assert astronaut["metadata"] == {"kind": "person", "n": 0}

    # a near-duplicate query, JSON base64, limit and match filters
    b64 = base64.b64encode(edited("coffee")).decode()
    res = http.post("/v1/collections/s/search", json={"base64": b64, "limit": 1}).json()["results"]
    assert len(res) == 1 and res[0]["id"] == "coffee" and res[0]["match"] == "near_duplicate"
    assert 0.9 <= res[0]["score"] < 1.0
    only_exact = http.post(
        "/v1/collections/s/search", json={"base64": b64, "match": ["exact"]}
    ).json()["results"]
    assert only_exact == []
    strict = http.post("/v1/collections/s/search", json={"base64": b64, "min_score": 0.999}).json()[
        "results"
    ]
    assert strict == []

    # by id: itself excluded; metadata equality filter
    by_id = http.post("/v1/collections/s/search", json={"id": "astronaut"}).json()["results"]
    assert by_id[0]["id"] in ("astro-png", "astro-edit") and "astronaut" not in [
        r["id"] for r in by_id
    ]
    filtered = http.post(
        "/v1/collections/s/search",
        json={"id": "astro-png", "metadata": {"kind": "person", "n": 0}},
    ).json()["results"]
    assert [r["id"] for r in filtered] == ["astronaut"]
    multipart = http.post(
        "/v1/collections/s/search",
        files={"image": ("q", edited("chelsea"))},
        data={"metadata": '{"kind": "thing"}', "match": "near_duplicate,exact", "limit": "3"},
    ).json()["results"]
    assert [r["id"] for r in multipart] == ["chelsea"]
    assert_problem(http.post("/v1/collections/s/search", json={"id": "nope"}), 404, "not_found")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"id": "a", "url": "http://x/y.jpg"},
        {"id": "a", "limit": 0},
        {"id": "a", "limit": 101},
        {"id": "a", "min_score": 1.5},
        {"id": "a", "match": "identical"},
        {"id": "a", "match": []},
        {"id": "a", "metadata": [1]},
        {"id": "a", "bogus": 1},
        {"base64": "not base64!!"},
    ],
)
def test_search_bad_input(http: httpx.Client, body: dict[str, Any]) -> None:
    http.post("/v1/collections", json={"name": "bad"}).raise_for_status()
    assert_problem(http.post("/v1/collections/bad/search", json=body), 422, "validation_error")


def test_add_bad_input(http: httpx.Client) -> None:
    http.post("/v1/collections", json={"name": "v", "metadata_schema": {"n": "integer"}})
    photo = jpeg(picture("coins"))
    assert_problem(add(http, "v", photo, id="x" * 101), 422, "validation_error")
    assert_problem(add(http, "v", photo, metadata={"n": "five"}), 422, "validation_error")
    assert_problem(add(http, "v", photo, metadata={"other": 1}), 422, "validation_error")
    assert_problem(
        http.post(
            "/v1/collections/v/images", files={"image": ("a", photo)}, data={"metadata": "{"}
        ),
        422,
        "validation_error",
    )
    assert_problem(add(http, "v", b"definitely not an image"), 415, "unsupported_media_type")
    assert_problem(add(http, "v", photo[: len(photo) // 3]), 422, "invalid_image")
    assert_problem(http.post("/v1/collections/v/images", json={}), 422, "validation_error")
    assert_problem(
        http.post("/v1/collections/v/images", json={"image_id": "img_missing"}), 404, "not_found"
    )
    assert_problem(
        http.post("/v1/collections/v/images", content=b"x", headers={"content-type": "text/plain"}),
        415,
        "unsupported_media_type",
    )
    assert_problem(
        http.put("/v1/collections/v/images/a", json={"id": "b", "base64": "AAAA"}),
        422,
        "validation_error",
    )
    assert http.get("/v1/collections/v").json()["images"] == 0


# --------------------------------------------------------------- duplicates
def test_duplicate_groups_ndjson_and_json(http: httpx.Client) -> None:
    http.post("/v1/collections", json={"name": "d"}).raise_for_status()
    add(http, "d", jpeg(picture("astronaut")), id="a1").raise_for_status()
    add(http, "d", jpeg(picture("coffee")), id="c1").raise_for_status()
    add(http, "d", jpeg(picture("rocket")), id="r1").raise_for_status()
    add(http, "d", jpeg(picture("astronaut")), id="a2").raise_for_status()  # same bytes
    add(http, "d", edited("astronaut"), id="a3").raise_for_status()
    add(http, "d", edited("coffee"), id="c2").raise_for_status()
    response = http.get("/v1/collections/d/duplicates")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    groups = [json.loads(line) for line in response.text.splitlines()]
    as_sets = sorted(sorted(i["id"] for i in g["images"]) for g in groups)
    assert as_sets == [["a1", "a2", "a3"], ["c1", "c2"]]
    astro = next(g for g in groups if len(g["images"]) == 3)
    assert astro["match"] == "near_duplicate"
    pairs = {(p["a"], p["b"]): p for p in astro["pairs"]}
    assert pairs[("a1", "a2")]["match"] == "exact" and pairs[("a1", "a2")]["score"] == 1.0
    as_json = http.get("/v1/collections/d/duplicates", params={"format": "json"}).json()
    assert as_json == groups
    # deleting one member keeps the rest exact; deleting the others dissolves the group
    http.delete("/v1/collections/d/images/a3").raise_for_status()
    groups = http.get("/v1/collections/d/duplicates", params={"format": "json"}).json()
    assert {tuple(sorted(i["id"] for i in g["images"])): g["match"] for g in groups} == {
        ("a1", "a2"): "exact",
        ("c1", "c2"): "near_duplicate",
    }
    http.delete("/v1/collections/d/images/c1").raise_for_status()
    assert len(http.get("/v1/collections/d/duplicates", params={"format": "json"}).json()) == 1
    assert_problem(http.get("/v1/collections/d/duplicates", params={"format": "xml"}), 422,
                   "validation_error")  # fmt: skip


# ------------------------------------------------------------------ tenants
def test_tenant_isolation_and_bound_keys(shared_server: ServerProcess) -> None:
    a = client_for(shared_server, create_key(shared_server.data_dir, "col-a", tenant="col-a"))
    b = client_for(shared_server, create_key(shared_server.data_dir, "col-b", tenant="col-b"))
    a.post("/v1/collections", json={"name": "mine"}).raise_for_status()
    a.post("/v1/collections", json={"name": "other"}).raise_for_status()
    add(a, "mine", jpeg(picture("astronaut")), id="x").raise_for_status()
    for method, path in [
        ("GET", "/v1/collections/mine"),
        ("GET", "/v1/collections/mine/images/x"),
        ("GET", "/v1/collections/mine/images"),
        ("GET", "/v1/collections/mine/duplicates"),
        ("DELETE", "/v1/collections/mine/images/x"),
        ("DELETE", "/v1/collections/mine"),
    ]:
        assert_problem(b.request(method, path), 404, "not_found")
    assert_problem(b.post("/v1/collections/mine/search", json={"id": "x"}), 404, "not_found")
    assert b.get("/v1/collections").json()["collections"] == []
    # B may use the same name for its own collection; it does not see A's image
    b.post("/v1/collections", json={"name": "mine"}).raise_for_status()
    assert_problem(b.get("/v1/collections/mine/images/x"), 404, "not_found")
    hits = b.post("/v1/collections/mine/search", files={"image": ("q", jpeg(picture("astronaut")))})
    assert hits.json() == {"results": []}

    # a key bound to "mine" (tenant col-a) can use only that collection
    made = cli(
        shared_server.data_dir,
        "keys", "create", "col-a-bound", "--tenant", "col-a", "--collection", "mine", "--json",
    )  # fmt: skip
    bound = client_for(shared_server, json.loads(made.stdout.strip().splitlines()[-1]))
    assert [c["name"] for c in bound.get("/v1/collections").json()["collections"]] == ["mine"]
    assert bound.get("/v1/collections/mine/images/x").status_code == 200
    assert bound.post("/v1/collections/mine/search", json={"id": "x"}).status_code == 200
    for method, path in [
        ("GET", "/v1/collections/other"),
        ("GET", "/v1/collections/other/images"),
        ("DELETE", "/v1/collections/other"),
        ("GET", "/v1/collections/other/duplicates"),
    ]:
        assert_problem(bound.request(method, path), 403, "forbidden")
    assert_problem(bound.post("/v1/collections", json={"name": "third"}), 403, "forbidden")
    assert_problem(add(bound, "other", jpeg(picture("coins"))), 403, "forbidden")
    assert_problem(bound.post("/v1/collections/other/search", json={"id": "x"}), 403, "forbidden")
    assert a.get("/v1/collections/other").status_code == 200


# ------------------------------------------------------------------- crash
def test_sigkill_loses_no_acknowledged_image(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "srv", workers=1).start()
    try:
        key = create_key(server.data_dir, "crash")
        http = client_for(server, key)
        http.post("/v1/collections", json={"name": "k"}).raise_for_status()
        names = ["astronaut", "coffee", "chelsea", "rocket", "camera", "coins", "moon"]
        for name in names:
            add(http, "k", jpeg(picture(name)), id=name).raise_for_status()
        server.kill()  # no shutdown code: the index file was never written
        index_dir = tmp_path / "srv" / "index"
        assert not any(index_dir.rglob("*.usearch"))
        http = client_for(server.start(), key)  # a new port
        for name in names:
            hits = http.post("/v1/collections/k/search", files={"image": ("q", edited(name))})
            assert hits.json()["results"][0]["id"] == name, (name, hits.text)
        # a corrupt index file is rebuilt from the database
        server.stop()  # graceful: the index is saved
        files = list(index_dir.rglob("vectors.usearch"))
        assert files
        files[0].write_bytes(b"garbage")
        http = client_for(server.start(), key)
        hits = http.post("/v1/collections/k/search", json={"id": "coffee", "match": "similar"})
        assert hits.status_code == 200
        hits = http.post("/v1/collections/k/search", files={"image": ("q", edited("moon"))})
        assert hits.json()["results"][0]["id"] == "moon"
    finally:
        server.stop()


def test_ids_with_slashes_and_spaces(http: httpx.Client) -> None:
    http.post("/v1/collections", json={"name": "paths"}).raise_for_status()
    put = http.put(
        "/v1/collections/paths/images/dir%2Fsub%2Fa%20b.jpg",
        files={"image": ("a", jpeg(picture("coffee")))},
    )
    assert put.status_code == 201, put.text
    assert put.json()["id"] == "dir/sub/a b.jpg"
    assert (
        http.get("/v1/collections/paths/images/dir/sub/a b.jpg").json()["id"] == "dir/sub/a b.jpg"
    )
    posted = add(http, "paths", jpeg(picture("rocket")), id="x/y")
    assert posted.json()["id"] == "x/y"
    assert http.delete("/v1/collections/paths/images/x%2Fy").status_code == 204
    assert [i["id"] for i in http.get("/v1/collections/paths/images").json()["images"]] == [
        "dir/sub/a b.jpg"
    ]
