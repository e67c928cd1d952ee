"""The real `opensight` command line, run as a subprocess as users run it."""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageFilter

from opensight import __version__
from tests.conftest import photo_bytes
from tests.server import cli

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
WIDE = {"COLUMNS": "200"}  # Rich wraps tables at 80 columns when stdout is not a terminal


def blurred_bytes() -> bytes:
    image = Image.open(io.BytesIO(photo_bytes())).filter(ImageFilter.GaussianBlur(4))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    """Three images (one blurred, one nested, one PNG with an upper-case suffix) and a text file."""
    root = tmp_path / "images"
    (root / "nested").mkdir(parents=True)
    (root / "a_sharp.jpg").write_bytes(photo_bytes(seed=1))
    (root / "b_blurred.jpeg").write_bytes(blurred_bytes())
    (root / "nested" / "c.PNG").write_bytes(photo_bytes((320, 240), fmt="PNG"))
    (root / "notes.txt").write_text("not an image")
    (root / ".hidden.jpg").write_bytes(photo_bytes())
    return root


def json_lines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


# -------------------------------------------------------------------- analyze
def test_analyze_dir_json_one_line_per_image_in_sorted_order(
    tmp_path: Path, image_dir: Path
) -> None:
    data_dir = tmp_path / "data"
    result = cli(data_dir, "analyze", str(image_dir), "--json", "--workers", "2")
    lines = json_lines(result.stdout)
    assert [line["file"] for line in lines] == [
        str(image_dir / "a_sharp.jpg"),
        str(image_dir / "b_blurred.jpeg"),
        str(image_dir / "nested" / "c.PNG"),
    ]
    for line in lines:
        assert set(line) == {"file", "quality", "metadata"}
        assert {"score", "label", "issues", "measures"} <= set(line["quality"])
    assert "blurry" in lines[1]["quality"]["issues"]
    assert "blurry" not in lines[0]["quality"]["issues"]
    assert lines[2]["metadata"]["format"] == "png"
    assert (lines[2]["metadata"]["width"], lines[2]["metadata"]["height"]) == (320, 240)
    # the progress bar goes to stderr only; analyze needs no data dir or database
    assert "analyzing" in result.stderr and "3/3" in result.stderr
    assert "analyzing" not in result.stdout
    assert not data_dir.exists()


def test_analyze_features_option_limits_keys(tmp_path: Path, image_dir: Path) -> None:
    result = cli(
        tmp_path, "analyze", str(image_dir / "a_sharp.jpg"), "--json", "--features", "metadata"
    )
    (line,) = json_lines(result.stdout)
    assert set(line) == {"file", "metadata"}
    assert result.stderr == ""  # one image: no progress bar


def test_analyze_examples_show_issues(tmp_path: Path) -> None:
    result = cli(tmp_path, "analyze", str(EXAMPLES), "--json")
    by_name = {Path(line["file"]).name: line for line in json_lines(result.stdout)}
    assert len(by_name) >= 6
    assert by_name["coffee_blurred.jpg"]["quality"]["issues"] == ["blurry"]
    assert by_name["chelsea_dark.jpg"]["quality"]["issues"] == ["dark"]
    for name in ("astronaut.jpg", "coffee.jpg", "chelsea.jpg", "rocket.jpg"):
        assert by_name[name]["quality"]["issues"] == [], name
    for path in EXAMPLES.glob("*.jpg"):
        assert path.stat().st_size <= 150_000


def test_analyze_corrupt_file_fails_alone_exit_1(tmp_path: Path, image_dir: Path) -> None:
    good = photo_bytes()
    (image_dir / "broken.jpg").write_bytes(good[: len(good) // 3])
    (image_dir / "empty.png").write_bytes(b"")
    missing = tmp_path / "missing.jpg"
    result = cli(tmp_path, "analyze", str(image_dir), str(missing), "--json", check=False)
    assert result.returncode == 1, result.stderr
    lines = {Path(line["file"]).name: line for line in json_lines(result.stdout)}
    assert set(lines) == {
        "a_sharp.jpg",
        "b_blurred.jpeg",
        "broken.jpg",
        "c.PNG",
        "empty.png",
        "missing.jpg",
    }
    assert lines["broken.jpg"] == {
        "file": str(image_dir / "broken.jpg"),
        "error": {"type": "invalid_image", "detail": lines["broken.jpg"]["error"]["detail"]},
    }
    assert lines["empty.png"]["error"]["type"] == "invalid_image"
    assert lines["missing.jpg"]["error"]["type"] == "not_found"
    for name in ("a_sharp.jpg", "b_blurred.jpeg", "c.PNG"):
        assert "quality" in lines[name] and "error" not in lines[name]


def test_analyze_table_mode(tmp_path: Path) -> None:
    result = cli(tmp_path, "analyze", str(EXAMPLES), env=WIDE)
    assert result.returncode == 0
    out = result.stdout
    assert "file" in out and "quality" in out and "metadata" in out
    for name in ("astronaut.jpg", "coffee_blurred.jpg", "chelsea_dark.jpg"):
        assert name in out
    assert "blurry" in out and "dark" in out
    assert "jpeg 512x512" in out  # astronaut
    assert "analyzing" not in out and "analyzing" in result.stderr


def test_analyze_table_mode_reports_failure_on_stderr(tmp_path: Path, image_dir: Path) -> None:
    (image_dir / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    result = cli(tmp_path, "analyze", str(image_dir), env=WIDE, check=False)
    assert result.returncode == 1
    assert "a_sharp.jpg" in result.stdout and "c.PNG" in result.stdout
    assert "broken.jpg" not in result.stdout
    assert "broken.jpg" in result.stderr and "failed" in result.stderr


def test_analyze_unknown_feature_exit_2(tmp_path: Path, image_dir: Path) -> None:
    result = cli(tmp_path, "analyze", str(image_dir), "--features", "quality,nope", check=False)
    assert result.returncode == 2
    assert "nope" in result.stderr and "quality" in result.stderr
    assert result.stdout == ""


def test_analyze_empty_dir_and_private_url(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = cli(tmp_path, "analyze", str(empty), check=False)
    assert result.returncode == 1 and "no image files" in result.stderr
    # URLs go through the SSRF guard, which follows OPENSIGHT_ALLOW_PRIVATE_URLS
    result = cli(
        tmp_path,
        "analyze",
        "http://127.0.0.1:9/x.jpg",
        "--json",
        check=False,
        env={"OPENSIGHT_ALLOW_PRIVATE_URLS": "false"},
    )
    assert result.returncode == 1
    assert json_lines(result.stdout)[0]["error"]["type"] == "url_not_allowed"


def test_analyze_url(tmp_path: Path) -> None:
    from tests.httpstub import Stub

    with Stub() as stub:
        stub.routes["/p.jpg"] = (200, {"Content-Type": "image/jpeg"}, photo_bytes())
        result = cli(
            tmp_path,
            "analyze",
            stub.url + "/p.jpg",
            stub.url + "/gone.jpg",
            "--json",
            env={"OPENSIGHT_ALLOW_PRIVATE_URLS": "true"},
            check=False,
        )
    assert result.returncode == 1
    ok, gone = json_lines(result.stdout)
    assert ok["file"] == stub.url + "/p.jpg" and ok["metadata"]["width"] == 640
    assert gone["error"]["type"] == "url_fetch_failed"


# ----------------------------------------------------------------------- keys
def test_keys_create_list_revoke(tmp_path: Path) -> None:
    created = cli(tmp_path, "keys", "create", "ci", "--tenant", "acme", "--json")
    lines = created.stdout.splitlines()
    assert len(lines) == 1
    info = json.loads(lines[0])
    assert info["key"] and info["secret"] and info["tenant"] == "acme"

    listed = json.loads(cli(tmp_path, "keys", "list", "--json").stdout)
    assert [row["id"] for row in listed] == [info["id"]]
    assert listed[0]["revoked_at"] is None
    assert info["secret"] not in json.dumps(listed)

    revoked = cli(tmp_path, "keys", "revoke", info["key"])
    assert info["id"] in revoked.stdout
    listed = json.loads(cli(tmp_path, "keys", "list", "--json").stdout)
    assert listed[0]["revoked_at"] is not None

    table = cli(tmp_path, "keys", "list", env=WIDE).stdout
    assert info["id"] in table and "ci" in table

    missing = cli(tmp_path, "keys", "revoke", "no-such-key", check=False)
    assert missing.returncode == 1 and "error" in missing.stderr


def test_data_dir_option_beats_env(tmp_path: Path) -> None:
    env_dir, option_dir = tmp_path / "env", tmp_path / "option"
    made = json.loads(
        cli(env_dir, "keys", "create", "k", "--json", "--data-dir", str(option_dir)).stdout
    )
    assert (option_dir / "opensight.db").exists()
    in_option = json.loads(
        cli(env_dir, "keys", "list", "--json", "--data-dir", str(option_dir)).stdout
    )
    in_env = json.loads(cli(env_dir, "keys", "list", "--json").stdout)
    assert [row["id"] for row in in_option] == [made["id"]]
    assert in_env == []
    with sqlite3.connect(option_dir / "opensight.db") as db:
        assert db.execute("SELECT count(*) FROM api_keys").fetchone()[0] == 1


# ----------------------------------------------------------------------- jobs
def test_jobs_list_and_show_on_empty_data_dir(tmp_path: Path) -> None:
    assert json.loads(cli(tmp_path, "jobs", "list", "--json").stdout) == []
    table = cli(tmp_path, "jobs", "list")
    assert table.returncode == 0 and "no jobs" in table.stderr
    missing = cli(tmp_path, "jobs", "show", "job_doesnotexist", check=False)
    assert missing.returncode == 1
    assert "job_doesnotexist" in missing.stderr and missing.stdout == ""
    bad = cli(tmp_path, "jobs", "list", "--status", "exploded", check=False)
    assert bad.returncode == 2 and "pending" in bad.stderr


def test_jobs_list_and_show_a_job(tmp_path: Path) -> None:
    from opensight.config import Settings
    from opensight.jobs.store import NewJob
    from opensight.services.container import Container

    container = Container(Settings(data_dir=tmp_path))
    first, _ = container.jobs.create(
        NewJob(tenant_id="t1", features=["quality"], source={"url": "https://example.com/a.jpg"})
    )
    second, _ = container.jobs.create(
        NewJob(tenant_id="t2", features=["metadata"], source={"image_id": "img_1"})
    )
    container.close()

    views = json.loads(cli(tmp_path, "jobs", "list", "--json").stdout)
    assert [v["id"] for v in views] == [second.id, first.id]  # newest first, all tenants
    assert {v["tenant"] for v in views} == {"t1", "t2"}
    assert views[1]["source"] == {"url": "https://example.com/a.jpg"}
    assert views[1]["status"] == "pending"
    limited = json.loads(cli(tmp_path, "jobs", "list", "--json", "--limit", "1").stdout)
    assert [v["id"] for v in limited] == [second.id]
    assert json.loads(cli(tmp_path, "jobs", "list", "--status", "completed", "--json").stdout) == []
    table = cli(tmp_path, "jobs", "list", env=WIDE).stdout
    assert first.id in table and second.id in table

    shown = json.loads(cli(tmp_path, "jobs", "show", first.id).stdout)
    assert shown["id"] == first.id and shown["features"] == ["quality"]


# --------------------------------------------------------------------- doctor
def test_doctor_json(tmp_path: Path) -> None:
    result = cli(tmp_path, "doctor", "--json")
    report = json.loads(result.stdout)
    assert report["ok"] is True and report["version"] == __version__
    assert report["data_dir"]["writable"] is True
    database = report["database"]
    assert database["reachable"] and database["at_head"]
    assert database["revision"] == database["head"] and database["revision"]
    analyzers = {item["name"]: item for item in report["analyzers"]}
    for name in ("quality", "metadata"):
        assert analyzers[name]["ready"] is True
        assert analyzers[name]["version"] and analyzers[name]["license"]
    assert isinstance(report["heif"], bool)

    table = cli(tmp_path, "doctor", env=WIDE)
    assert table.returncode == 0 and "quality" in table.stdout


def test_doctor_masks_password_and_fails_on_bad_database(tmp_path: Path) -> None:
    env = {"OPENSIGHT_DATABASE_URL": "postgresql://opensight:s3cr3t-pw@127.0.0.1:1/opensight"}
    for args in (("doctor", "--json"), ("doctor",)):
        result = cli(tmp_path, *args, env=env, check=False)
        assert result.returncode == 1
        assert "s3cr3t-pw" not in result.stdout + result.stderr
    report = json.loads(cli(tmp_path, "doctor", "--json", env=env, check=False).stdout)
    assert report["database"]["reachable"] is False and report["database"]["error"]
    assert "***" in report["config"]["database_url"]


def test_doctor_unwritable_data_dir(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    result = cli(tmp_path, "doctor", "--json", "--data-dir", str(not_a_dir), check=False)
    assert result.returncode == 1
    assert json.loads(result.stdout)["data_dir"]["writable"] is False


def test_version(tmp_path: Path) -> None:
    assert cli(tmp_path, "--version").stdout.strip() == f"opensight {__version__}"
