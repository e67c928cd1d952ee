"""`opensight dedupe` and `opensight collections ...`, run as users run them."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from PIL import Image

from tests.server import cli

WIDE = {"COLUMNS": "500"}  # paths under pytest-xdist tmp dirs are long


def picture(name: str) -> np.ndarray:
    from skimage import data

    arr = getattr(data, name)()
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    return np.ascontiguousarray(arr[..., :3])


def save(arr: np.ndarray, path: Path, quality: int = 90) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, quality=quality) if path.suffix == ".jpg" else Image.fromarray(
        arr
    ).save(path)
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """astronaut x3 (JPEG, its pixels as PNG, a cropped+rotated+q30 copy), coffee x2
    (original, grayscale half-size copy), rocket and camera alone, one broken file."""
    root = tmp_path / "photos"
    astro = picture("astronaut")
    save(astro, root / "astronaut.jpg")
    # the same pixels as the JPEG, losslessly: an exact duplicate of different bytes
    save(
        np.asarray(Image.open(root / "astronaut.jpg").convert("RGB")),
        root / "copies" / "astronaut.png",
    )
    edit = cv2.warpAffine(astro[60:470, 40:480].copy(), cv2.getRotationMatrix2D((220, 205), -4, 1),
                          (440, 410))  # fmt: skip
    save(np.ascontiguousarray(edit), root / "copies" / "astronaut-edit.jpg", quality=30)
    coffee = picture("coffee")
    save(coffee, root / "coffee.jpg")
    small = cv2.resize(cv2.cvtColor(coffee, cv2.COLOR_RGB2GRAY), (300, 200))
    save(np.stack([small] * 3, -1), root / "z" / "coffee-gray.jpg")
    save(picture("rocket"), root / "rocket.jpg")
    save(picture("camera"), root / "camera.jpg")
    (root / "broken.jpg").write_bytes(b"not an image at all")
    (root / "notes.txt").write_text("ignored")
    return root


def groups_of(lines: list[dict[str, Any]], root: Path) -> list[list[str]]:
    return sorted(sorted(str(Path(f).relative_to(root)) for f in g["files"]) for g in lines)


def test_dedupe_json_csv_and_table(tmp_path: Path, folder: Path) -> None:
    done = cli(tmp_path / "unused", "dedupe", str(folder), "--json", check=False)
    assert done.returncode == 1  # broken.jpg failed; the others are still grouped
    assert "broken.jpg" in done.stderr and "unsupported_media_type" in done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert groups_of(lines, folder) == [
        ["astronaut.jpg", "copies/astronaut-edit.jpg", "copies/astronaut.png"],
        ["coffee.jpg", "z/coffee-gray.jpg"],
    ]
    astro = next(g for g in lines if len(g["files"]) == 3)
    assert astro["match"] == "near_duplicate"
    # the best copy first: most pixels, then the largest file (the PNG)
    assert astro["keep"] == str(folder / "copies" / "astronaut.png")
    assert {p["match"] for p in astro["pairs"]} == {"exact", "near_duplicate"}
    exact = next(p for p in astro["pairs"] if p["match"] == "exact")
    assert exact["score"] == 1.0
    assert all(0.9 <= p["score"] <= 1.0 for p in astro["pairs"])
    assert not (tmp_path / "unused").exists()  # no data dir was created

    as_csv = cli(tmp_path / "unused", "dedupe", str(folder), "--csv", check=False)
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert [r["keep"] for r in rows].count("yes") == 2 and len(rows) == 5
    assert {r["group"] for r in rows} == {"1", "2"}
    assert all(int(r["width"]) > 0 for r in rows)

    table = cli(tmp_path / "unused", "dedupe", str(folder), env=WIDE, check=False)
    assert "near_duplicate" in table.stdout and "astronaut" in table.stdout
    assert "8 file(s): 2 group(s), 3 duplicate(s), 1 failed" in table.stderr


def test_dedupe_usage_errors(tmp_path: Path, folder: Path) -> None:
    both = cli(tmp_path, "dedupe", str(folder), "--json", "--csv", check=False)
    assert both.returncode == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = cli(tmp_path, "dedupe", str(empty), check=False)
    assert nothing.returncode == 1 and "no image files" in nothing.stderr
    (folder / "broken.jpg").unlink()
    clean = cli(tmp_path, "dedupe", str(folder / "copies"), str(folder / "rocket.jpg"), "--json")
    assert clean.returncode == 0 and len(clean.stdout.splitlines()) == 1


def test_collections_commands_in_process(tmp_path: Path, folder: Path) -> None:
    data_dir = tmp_path / "data"
    (folder / "broken.jpg").unlink()
    created = cli(
        data_dir, "collections", "create", "pics", "--schema", '{"src": "string"}', "--json"
    )
    assert json.loads(created.stdout)["name"] == "pics"
    again = cli(data_dir, "collections", "create", "pics", check=False)
    assert again.returncode == 1 and "conflict" in again.stderr
    added = cli(data_dir, "collections", "add", "pics", str(folder), "--metadata", '{"src": "t"}',
                "--json")  # fmt: skip
    lines = [json.loads(line) for line in added.stdout.splitlines()]
    assert sorted(line["id"] for line in lines) == [
        "astronaut.jpg", "camera.jpg", "coffee.jpg", "copies/astronaut-edit.jpg",
        "copies/astronaut.png", "rocket.jpg", "z/coffee-gray.jpg",
    ]  # fmt: skip
    assert all(line["created"] for line in lines)
    # adding again replaces (same ids, nothing new)
    again = cli(data_dir, "collections", "add", "pics", str(folder / "rocket.jpg"), "--json")
    assert json.loads(again.stdout)["created"] is False

    found = cli(data_dir, "collections", "search", "pics", str(folder / "copies" / "astronaut-edit.jpg"),
                "--json", "--match", "exact,near_duplicate")  # fmt: skip
    results = json.loads(found.stdout)["results"]
    assert results[0]["id"] == "copies/astronaut-edit.jpg"
    assert {r["id"] for r in results} == {
        "copies/astronaut-edit.jpg", "astronaut.jpg", "copies/astronaut.png"
    }  # fmt: skip
    assert results[0]["match"] == "exact" and results[0]["metadata"] == {"src": "t"}
    by_id = cli(data_dir, "collections", "search", "pics", "coffee.jpg", "--by-id", "--json")
    assert json.loads(by_id.stdout)["results"][0]["id"] == "z/coffee-gray.jpg"

    dupes = cli(data_dir, "collections", "duplicates", "pics", "--json")
    groups = [json.loads(line) for line in dupes.stdout.splitlines()]
    assert sorted(sorted(i["id"] for i in g["images"]) for g in groups) == [
        ["astronaut.jpg", "copies/astronaut-edit.jpg", "copies/astronaut.png"],
        ["coffee.jpg", "z/coffee-gray.jpg"],
    ]
    as_csv = cli(data_dir, "collections", "duplicates", "pics", "--csv")
    assert (
        as_csv.stdout.splitlines()[0] == "group,match,id" and len(as_csv.stdout.splitlines()) == 6
    )
    listed = json.loads(cli(data_dir, "collections", "list", "--json").stdout)
    assert [(c["name"], c["images"]) for c in listed] == [("pics", 7)]
    other = json.loads(cli(data_dir, "collections", "list", "--json", "--tenant", "x").stdout)
    assert other == []
    cli(data_dir, "collections", "delete", "pics")
    gone = cli(data_dir, "collections", "search", "pics", "x", "--by-id", check=False)
    assert gone.returncode == 1 and "not_found" in gone.stderr
