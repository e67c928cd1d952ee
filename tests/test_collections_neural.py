"""Neural collections: a real server with the tiny random-weight SigLIP installed.

The vectors are random-weight SigLIP's, so the *similar* ranking means nothing
visually; what is tested is the plumbing and its contracts: the embedder is
chosen at creation and recorded, the stored vectors are the ``embedding``
analyzer's, exact / near-duplicate matches do not depend on the embedder, the
similar ranking follows the neural cosines with the documented calibration, and
a removed model is a 503 ``model_unavailable`` -- never another vector space.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.server import ServerProcess, cli, create_key
from tests.test_collections_api import add, assert_problem, client_for, edited, jpeg, picture, png

SIGLIP = "siglip-base-patch16-224"
TINY_DIM = 32
STORED = ["astronaut", "coffee", "chelsea", "rocket", "camera"]


def install(model_dir: Path) -> None:
    from tests.tinymodels import install_tiny

    install_tiny(SIGLIP, model_dir)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("models")
    install(directory)
    return directory


def start(data_dir: Path, model_dir: Path, **env: str) -> ServerProcess:
    return ServerProcess(
        data_dir, workers=1, env={"OPENSIGHT_MODEL_DIR": str(model_dir), **env}
    ).start(timeout=60)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Iterator[ServerProcess]:
    proc = start(tmp_path_factory.mktemp("neural-server"), model_dir)
    yield proc
    proc.stop()


@pytest.fixture
def http(server: ServerProcess, request: pytest.FixtureRequest) -> Iterator[httpx.Client]:
    name = request.node.name[:50].replace("[", "-").replace("]", "")
    key = create_key(server.data_dir, name, tenant=f"t-{name}-{id(request)}")
    with client_for(server, key) as client:
        yield client


def stored_vectors(data_dir: Path, collection: str) -> dict[str, np.ndarray | None]:
    """What the database holds in ``collection_images.embedding``, per image id."""
    with sqlite3.connect(data_dir / "opensight.db") as db:
        rows = db.execute(
            "SELECT i.id, i.embedding FROM collection_images i "
            "JOIN collections c ON c.id = i.collection_id WHERE c.name = ?",
            (collection,),
        ).fetchall()
    return {
        image_id: None if blob is None else np.frombuffer(blob, np.float16).astype(np.float32)
        for image_id, blob in rows
    }


def analyzer_vector(http: httpx.Client, data: bytes) -> np.ndarray:
    """The ``embedding`` analyzer's vector for ``data``, from the same server."""
    found = http.post(
        "/v1/analyze", files={"image": ("a.png", data)}, data={"features": "embedding"}
    )
    assert found.status_code == 200, found.text
    result = found.json()["result"]["embedding"]
    assert result["model"] == SIGLIP
    return np.asarray(result["vector"], np.float32)


def similar_score(cosine: float, threshold: float, full: float = 1.0) -> float:
    """The documented calibration (docs/collections.md), written out independently."""
    if cosine < threshold:
        return max(0.0, cosine) * 0.5 / threshold
    return min(0.5 + 0.4 * (cosine - threshold) / (full - threshold), 0.899)


def fill(http: httpx.Client, name: str) -> None:
    for image in STORED:
        add(http, name, png(picture(image)), id=image).raise_for_status()
    add(http, name, jpeg(picture("astronaut")), id="astro-jpg").raise_for_status()
    add(http, name, edited("astronaut"), id="astro-edit").raise_for_status()


def search(http: httpx.Client, name: str, **body: Any) -> httpx.Response:
    return http.post(f"/v1/collections/{name}/search", json=body)


def b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()


def assert_duplicates_found(http: httpx.Client, name: str) -> None:
    """Exact and near-duplicate matches, as in a classical collection."""
    results = search(http, name, base64=b64(png(picture("astronaut")))).json()["results"]
    assert results[0] == {"id": "astronaut", "score": 1.0, "match": "exact"}
    assert {r["id"] for r in results[1:3]} == {"astro-jpg", "astro-edit"}
    assert [r["match"] for r in results[1:3]] == ["near_duplicate", "near_duplicate"]
    near = search(http, name, base64=b64(edited("coffee")), limit=1).json()["results"]
    assert near[0]["id"] == "coffee" and near[0]["match"] == "near_duplicate"
    assert 0.9 <= near[0]["score"] < 1.0
    groups = http.get(f"/v1/collections/{name}/duplicates", params={"format": "json"}).json()
    assert [sorted(i["id"] for i in g["images"]) for g in groups] == [
        ["astro-edit", "astro-jpg", "astronaut"]
    ]


# ------------------------------------------------------------------------ tests
def test_auto_collection_is_neural_and_ranks_by_the_analyzers_vectors(
    http: httpx.Client, server: ServerProcess
) -> None:
    made = http.post("/v1/collections", json={"name": "n"})
    assert made.status_code == 201, made.text
    assert (made.json()["embedder"], made.json()["dim"]) == (SIGLIP, TINY_DIM)
    view = http.get("/v1/collections/n").json()
    assert (view["embedder"], view["dim"]) == (SIGLIP, TINY_DIM)
    fill(http, "n")

    # the stored vectors are the embedding analyzer's (float16 in the database)
    vectors = stored_vectors(server.data_dir, "n")
    assert set(vectors) == {*STORED, "astro-jpg", "astro-edit"}
    for image in STORED:
        reference = analyzer_vector(http, png(picture(image)))
        got = vectors[image]
        assert got is not None and got.shape == (TINY_DIM,)
        np.testing.assert_allclose(got, reference, atol=2e-3)

    assert_duplicates_found(http, "n")

    # a picture that is not in the collection: ranked by the neural cosine, calibrated
    query = png(picture("coins"))
    qvec = analyzer_vector(http, query)
    results = search(http, "n", base64=b64(query), min_score=0, limit=100).json()["results"]
    assert results and all(r["match"] == "similar" for r in results)
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    expected = {
        image_id: similar_score(float(vec @ qvec), 0.70)
        for image_id, vec in vectors.items()
        if vec is not None
    }
    for r in results:
        assert r["score"] == pytest.approx(expected[r["id"]], abs=0.01), r
    # results under 0.50 are never returned, whatever min_score says
    assert {i for i, s in expected.items() if s >= 0.51} <= {r["id"] for r in results}
    assert all(expected[r["id"]] >= 0.49 for r in results)
    # the default min_score keeps only what the calibration calls similar
    default = search(http, "n", base64=b64(query)).json()["results"]
    assert [r["id"] for r in default] == [r["id"] for r in results if r["score"] >= 0.5]

    # by id: the stored vector of the image (itself excluded)
    by_id = search(http, "n", id="coffee", min_score=0, limit=100).json()["results"]
    assert "coffee" not in [r["id"] for r in by_id]
    cvec = vectors["coffee"]
    assert cvec is not None
    for r in by_id:
        if r["match"] == "similar":
            ref = vectors[r["id"]]
            assert ref is not None
            assert r["score"] == pytest.approx(similar_score(float(ref @ cvec), 0.70), abs=0.01)


def test_text_search_ranks_neural_collections_and_is_422_on_classical(
    http: httpx.Client, server: ServerProcess, model_dir: Path
) -> None:
    from opensight.analyzers.embedding import embed_text
    from opensight.config import Settings
    from opensight.runtime import sessions

    http.post("/v1/collections", json={"name": "t"}).raise_for_status()
    for image in STORED:
        add(http, "t", png(picture(image)), id=image).raise_for_status()
    found = search(http, "t", text="a red car", min_score=0, limit=100)
    assert found.status_code == 200, found.text
    results = found.json()["results"]
    assert results and all(r["match"] == "similar" for r in results)
    assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)

    sessions.configure(Settings(model_dir=model_dir))
    try:
        tvec = embed_text(["a red car"], SIGLIP)[0]
    finally:
        sessions.configure(None)
    vectors = stored_vectors(server.data_dir, "t")
    for r in results:
        vec = vectors[r["id"]]
        assert vec is not None
        assert r["score"] == pytest.approx(similar_score(float(vec @ tvec), 0.10, 0.30), abs=0.01)
    expected = {
        i: similar_score(float(v @ tvec), 0.10, 0.30) for i, v in vectors.items() if v is not None
    }
    assert {i for i, s in expected.items() if s >= 0.51} <= {r["id"] for r in results}
    # the text search runs in the neural space only: exact / near-duplicate make no sense
    assert search(http, "t", text="a red car", match=["exact"]).json()["results"] == []

    for body in ({"text": ""}, {"text": "x" * 1001}, {"text": "cat", "id": "coffee"}):
        assert_problem(search(http, "t", **body), 422, "validation_error")
    multipart = http.post(
        "/v1/collections/t/search",
        files={"image": ("q", png(picture("coffee")))},
        data={"text": "a cat"},
    )
    assert_problem(multipart, 422, "validation_error")

    http.post("/v1/collections", json={"name": "c", "embedder": "classical"}).raise_for_status()
    add(http, "c", png(picture("coffee")), id="coffee").raise_for_status()
    problem = assert_problem(search(http, "c", text="a red car"), 422, "validation_error")
    assert "neural" in problem["detail"]


def test_classical_collection_on_the_same_server_is_unchanged(
    http: httpx.Client, server: ServerProcess
) -> None:
    made = http.post("/v1/collections", json={"name": "k", "embedder": "classical"})
    assert made.status_code == 201, made.text
    assert (made.json()["embedder"], made.json()["dim"]) == ("classic-v1", 392)
    fill(http, "k")
    assert set(stored_vectors(server.data_dir, "k").values()) == {None}
    assert_duplicates_found(http, "k")
    by_id = search(http, "k", id="astronaut").json()["results"]
    assert {r["id"] for r in by_id[:2]} == {"astro-jpg", "astro-edit"}
    assert all(r["match"] != "similar" or 0.5 <= r["score"] < 0.9 for r in by_id)
    # the same images give the same exact / near-duplicate answers in a neural collection
    http.post("/v1/collections", json={"name": "n2", "embedder": SIGLIP}).raise_for_status()
    fill(http, "n2")
    for query in (png(picture("rocket")), edited("chelsea"), jpeg(picture("camera"), 40)):
        dup = {"base64": b64(query), "match": ["exact", "near_duplicate"]}
        assert search(http, "k", **dup).json() == search(http, "n2", **dup).json()


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "embedder": "nope"},
        {"name": "x", "embedder": 5},
        {"name": "x", "embedder": "rtdetr-r50vd-coco"},  # a model, but not an embedding one
        {"name": "x", "embedder": "../../etc"},
    ],
)
def test_bad_embedders_are_422(http: httpx.Client, body: dict[str, Any]) -> None:
    assert_problem(http.post("/v1/collections", json=body), 422, "validation_error")
    assert_problem(http.get("/v1/collections/x"), 404, "not_found")


def test_removed_model_is_503_never_another_space(
    tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    models = tmp_path / "models"
    shutil.copytree(model_dir, models)
    server = start(tmp_path / "data", models)
    try:
        key = create_key(server.data_dir, "rm")
        with client_for(server, key) as http:
            http.post("/v1/collections", json={"name": "n"}).raise_for_status()
            http.post("/v1/collections", json={"name": "k", "embedder": "classical"})
            for name in ("n", "k"):
                add(http, name, png(picture("coffee")), id="coffee").raise_for_status()
                add(http, name, png(picture("rocket")), id="rocket").raise_for_status()

            shutil.rmtree(models / SIGLIP)
            pull = f"opensight models pull {SIGLIP}"
            for response in (
                add(http, "n", png(picture("camera")), id="camera"),
                http.put(
                    "/v1/collections/n/images/coffee",
                    files={"image": ("a", png(picture("camera")))},
                ),
                search(http, "n", base64=b64(png(picture("camera")))),
                search(http, "n", text="a cup of coffee"),
                http.post("/v1/collections", json={"name": "m", "embedder": SIGLIP}),
            ):
                problem = assert_problem(response, 503, "model_unavailable")
                assert pull in problem["detail"]
            # nothing was added; the collection still answers what needs no model
            assert http.get("/v1/collections/n").json()["images"] == 2
            exact = search(
                http, "n", base64=b64(png(picture("coffee"))), match=["exact", "near_duplicate"]
            ).json()["results"]
            assert exact == [{"id": "coffee", "score": 1.0, "match": "exact"}]
            assert search(http, "n", id="coffee", min_score=0).status_code == 200
            # auto now means classical; the classical collection works as before
            auto = http.post("/v1/collections", json={"name": "a"}).json()
            assert (auto["embedder"], auto["dim"]) == ("classic-v1", 392)
            assert add(http, "k", png(picture("camera")), id="camera").status_code == 201
            assert search(http, "k", base64=b64(png(picture("camera")))).json()["results"][0] == {
                "id": "camera",
                "score": 1.0,
                "match": "exact",
            }

            # reinstalled: the neural collection works again, in its own space
            install(models)
            assert add(http, "n", png(picture("camera")), id="camera").status_code == 201
            vectors = stored_vectors(server.data_dir, "n")
            assert all(v is not None and v.shape == (TINY_DIM,) for v in vectors.values())
    finally:
        server.stop()


def test_cli_create_takes_an_embedder(tmp_path: Path, model_dir: Path) -> None:
    env = {"OPENSIGHT_MODEL_DIR": str(model_dir)}
    data = tmp_path / "data"
    made = cli(data, "collections", "create", "a", "--json", env=env)
    assert '"embedder": "' + SIGLIP + '"' in made.stdout
    made = cli(data, "collections", "create", "b", "--embedder", "classical", "--json", env=env)
    assert '"embedder": "classic-v1"' in made.stdout
    missing = cli(
        data,
        "collections",
        "create",
        "c",
        "--embedder",
        SIGLIP,
        env={"OPENSIGHT_MODEL_DIR": str(tmp_path / "none")},
        check=False,
    )
    assert missing.returncode == 1
    assert f"opensight models pull {SIGLIP}" in " ".join(missing.stderr.split())


def test_qdrant_backend_keeps_both_indexes(tmp_path: Path, model_dir: Path) -> None:
    pytest.importorskip("qdrant_client")
    server = start(tmp_path / "data", model_dir, OPENSIGHT_INDEX_URL="qdrant+memory://")
    try:
        key = create_key(server.data_dir, "q")
        with client_for(server, key) as http:
            assert http.post("/v1/collections", json={"name": "n"}).json()["embedder"] == SIGLIP
            fill(http, "n")
            assert_duplicates_found(http, "n")
            text = search(http, "n", text="a rocket", min_score=0).json()["results"]
            assert text and all(r["match"] == "similar" for r in text)
            assert http.delete("/v1/collections/n/images/astro-edit").status_code == 204
            by_text = search(http, "n", text="a rocket", min_score=0, limit=100).json()
            assert "astro-edit" not in [r["id"] for r in by_text["results"]]
            assert http.delete("/v1/collections/n").status_code == 204
    finally:
        server.stop()
