"""`opensight models ...` as users run it (subprocesses), against a fake Hub on loopback;
and a missing model as the API reports it (real server process)."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from opensight.api.errors import problem_for
from opensight.errors import Overloaded
from tests.hubstub import FakeHub
from tests.server import ServerProcess, cli, create_key

REPO = "opensight-test/cli-models"
CHUNK = 10 * 1024 * 1024  # huggingface_hub's write chunk: resume happens at its bounds


def blob(size: int, seed: int = 1) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    with FakeHub() as fake:
        yield fake


class Env:
    """A data dir, a model dir and a catalog file of test models served by the fake hub."""

    def __init__(self, root: Path, hub: FakeHub) -> None:
        self.data_dir = root / "data"
        self.model_dir = root / "models"
        self.catalog = root / "catalog.json"
        self.hub = hub
        self.specs: list[dict[str, Any]] = []
        self.extra: dict[str, str] = {}

    def add(self, model_id: str, files: dict[str, bytes], pin: bool = True, **kw: Any) -> None:
        for name, data in files.items():
            self.hub.add(REPO, name, data)
        entry = {
            "id": model_id,
            "tasks": ["test"],
            "repo": REPO,
            "revision": "main",
            "license": "Apache-2.0",
            "files": [
                {
                    "name": name,
                    "sha256": hashlib.sha256(data).hexdigest() if pin else None,
                    "size_bytes": len(data),
                }
                for name, data in files.items()
            ],
            **kw,
        }
        self.specs.append(entry)
        self.catalog.write_text(json.dumps(self.specs))

    @property
    def env(self) -> dict[str, str]:
        return {
            "OPENSIGHT_MODEL_DIR": str(self.model_dir),
            "OPENSIGHT_MODEL_CATALOG": str(self.catalog),
            "HF_ENDPOINT": self.hub.url,
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "COLUMNS": "200",
            **self.extra,
        }

    def run(self, *args: str, check: bool = True) -> Any:
        return cli(self.data_dir, "models", *args, env=self.env, check=check)

    def listing(self) -> dict[str, dict[str, Any]]:
        rows = json.loads(self.run("list", "--json").stdout)
        return {row["id"]: row for row in rows}


@pytest.fixture
def env(tmp_path: Path, hub: FakeHub) -> Env:
    return Env(tmp_path, hub)


def test_list_pull_list_rm(env: Env) -> None:
    weights, config = blob(200_000), b'{"labels": ["cat", "dog"]}'
    env.add("cli-tiny", {"onnx/model.onnx": weights, "config.json": config})

    before = env.listing()
    row = before["cli-tiny"]
    assert row["installed"] is False and row["tasks"] == ["test"]
    assert row["license"] == "Apache-2.0" and row["size_mb"] == pytest.approx(0.2, abs=0.01)
    assert row["pull"] == "opensight models pull cli-tiny"
    assert "florence-2-base-ft" in before  # the built-in catalog is listed too

    pulled = env.run("pull", "cli-tiny")
    assert "installed" in pulled.stderr and "sha256 verified" in pulled.stderr
    assert (env.model_dir / "cli-tiny" / "onnx" / "model.onnx").read_bytes() == weights

    after = env.listing()["cli-tiny"]
    assert after["installed"] is True and after["installed_verified"] is True
    assert after["path"] == str(env.model_dir / "cli-tiny")
    table = env.run("list").stdout
    assert "cli-tiny" in table and "yes" in table

    again = env.run("pull", "cli-tiny")
    assert "already installed" in again.stderr

    env.run("rm", "cli-tiny")
    assert env.listing()["cli-tiny"]["installed"] is False
    assert not (env.model_dir / "cli-tiny").exists()
    missing = env.run("rm", "cli-tiny", check=False)
    assert missing.returncode == 2 and "not installed" in missing.stderr


def test_pull_unpinned_says_unverified_and_records_sha(env: Env) -> None:
    data = blob(50_000)
    env.add("cli-unpinned", {"m.onnx": data}, pin=False)
    result = env.run("pull", "cli-unpinned")
    assert "unverified" in result.stderr
    assert hashlib.sha256(data).hexdigest() in result.stderr
    row = env.listing()["cli-unpinned"]
    assert row["installed"] is True and row["installed_verified"] is False
    manifest = json.loads((env.model_dir / "cli-unpinned" / "opensight-model.json").read_text())
    assert manifest["files"]["m.onnx"]["sha256"] == hashlib.sha256(data).hexdigest()


def test_interrupted_pull_resumes(env: Env) -> None:
    data = blob(2 * CHUNK + 77)
    env.add("cli-resume", {"big.onnx": data})
    env.hub.plans["big.onnx"] = [f"drop:{CHUNK + 10}", "500"]
    first = env.run("pull", "cli-resume", check=False)
    assert first.returncode == 1
    assert "model_pull_failed" in first.stderr and "again to resume" in first.stderr
    assert env.listing()["cli-resume"]["installed"] is False

    second = env.run("pull", "cli-resume")
    assert f"resumed at {CHUNK} B" in second.stderr
    assert env.hub.gets("big.onnx")[-1].range == f"bytes={CHUNK}-"
    assert (env.model_dir / "cli-resume" / "big.onnx").read_bytes() == data


def test_checksum_mismatch_refused(env: Env) -> None:
    env.add("cli-evil", {"evil.onnx": blob(10_000)})
    env.hub.files[(REPO, "evil.onnx")] = blob(10_000, seed=9)  # the hub now serves other bytes
    result = env.run("pull", "cli-evil", check=False)
    assert result.returncode == 1 and "checksum_mismatch" in result.stderr
    assert env.listing()["cli-evil"]["installed"] is False
    assert not (env.model_dir / "cli-evil").exists()


def test_offline_pull_names_the_pull_command(env: Env) -> None:
    env.add("cli-offline", {"m.onnx": b"x" * 10})
    env.extra["HF_HUB_OFFLINE"] = "1"
    result = env.run("pull", "cli-offline", check=False)
    assert result.returncode == 1
    assert "model_unavailable" in result.stderr and "HF_HUB_OFFLINE" in result.stderr
    assert "opensight models pull cli-offline" in result.stderr
    assert env.hub.requests == []  # offline means no network at all


def test_bad_ids_are_usage_errors(env: Env) -> None:
    env.add("cli-known", {"m.onnx": b"x"})
    unknown = env.run("pull", "no-such-model", check=False)
    assert unknown.returncode == 2 and "cli-known" in unknown.stderr
    traversal = env.run("rm", "../data", check=False)
    assert traversal.returncode == 2 and "invalid model id" in traversal.stderr
    assert env.data_dir.parent.exists()


def test_dir_honours_env_and_data_dir(env: Env, tmp_path: Path) -> None:
    assert env.run("dir").stdout.strip() == str(env.model_dir)
    default = cli(tmp_path / "d2", "models", "dir")  # no OPENSIGHT_MODEL_DIR
    assert default.stdout.strip() == str(tmp_path / "d2" / "models")
    flagged = cli(tmp_path / "d2", "models", "dir", "--data-dir", str(tmp_path / "d3"))
    assert flagged.stdout.strip() == str(tmp_path / "d3" / "models")


def test_doctor_lists_models(env: Env) -> None:
    env.add("cli-doctor", {"m.onnx": b"x"})
    result = cli(env.data_dir, "doctor", "--json", env=env.env)
    models = {row["id"]: row for row in json.loads(result.stdout)["models"]}
    assert models["cli-doctor"]["installed"] is False
    assert "florence-2-base-ft" in models
    table = cli(env.data_dir, "doctor", env=env.env)
    assert "opensight models pull cli-doctor" in table.stdout


def test_analyze_without_the_model_fails_naming_the_pull_command(
    env: Env, tmp_path: Path, photo: bytes
) -> None:
    image = tmp_path / "photo.jpg"
    image.write_bytes(photo)
    result = cli(
        env.data_dir,
        "analyze",
        str(image),
        "--features",
        "embedding",
        "--json",
        env=env.env,
        check=False,
    )
    assert result.returncode == 1
    (line,) = [json.loads(x) for x in result.stdout.splitlines() if x.strip()]
    assert line["error"]["type"] == "model_unavailable"
    assert "opensight models pull siglip-base-patch16-224" in line["error"]["detail"]


# -------------------------------------------------------------------- API
def test_api_missing_model_is_503_problem_naming_the_pull_command(
    tmp_path: Path, photo: bytes
) -> None:
    env = {"OPENSIGHT_MODEL_DIR": str(tmp_path / "empty-models")}
    server = ServerProcess(tmp_path / "srv", workers=1, env=env).start()
    try:
        key = create_key(server.data_dir, "models", env=env)
        http = httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {key['key']}"}, timeout=60
        )
        response = http.post(
            "/v1/analyze", files={"image": ("p.jpg", photo)}, data={"features": "caption"}
        )
        assert response.status_code == 503, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        body = response.json()
        assert body["slug"] == "model_unavailable"
        assert "opensight models pull florence-2-base-ft" in body["detail"]

        job = http.post(
            "/v1/analyze",
            files={"image": ("p.jpg", photo)},
            data={"features": "caption", "async": "true"},
        ).json()
        for _ in range(600):
            job = http.get(f"/v1/jobs/{job['id']}").json()
            if job["status"] not in ("pending", "processing"):
                break
            time.sleep(0.05)
        assert job["status"] == "failed", job
        assert job["error"]["slug"] == "model_unavailable"
        assert "opensight models pull florence-2-base-ft" in job["error"]["detail"]
    finally:
        server.stop()


def test_overloaded_renders_503_with_retry_after() -> None:
    response = problem_for(Overloaded("queue full", retry_after=2.5))
    assert response.status_code == 503 and response.headers["Retry-After"] == "3"
    assert json.loads(bytes(response.body))["slug"] == "overloaded"
