"""Accuracy and speed of the NudeNet-based analyzers: ``moderation``, ``faces`` (and ``anatomy``).

Run from the repository root::

    python bench/acc_moderation.py            # about a minute on 2 cores
    python bench/acc_moderation.py --quick    # fewer timing rounds, no cascade rows

Everything comes from scikit-image's bundled images (nothing is downloaded,
no explicit imagery is used or made):

1. **Offensive flags** -- ``moderation`` with default options on every bundled
   photograph (``PHOTOGRAPHS``: scenes, portraits, micrographs, astronomy,
   textures, a photographed page) and on 20 seeded random crops (30..80 % of
   each side) of the large ones (longest side >= 500 px). Goal: no flag, and
   the highest ``nsfw_score`` stays under the 0.6 threshold.
2. **Faces** -- the astronaut (one face, which the box must cover), the camera
   man (a profile), false faces on the photographs without people, and
   rendered group photos: the astronaut photo tiled 6 x 4 (24 faces of ~59 px
   in 1912 x 1280) and 8 x 6 (48 faces of ~39 px in 1744 x 1312). A detection
   is a hit when its centre lies in an unmatched true face box (from the
   astronaut's, scaled) and its size is within 3x of it. Without ``--quick``
   also ``method: "both"`` (NudeNet + the LBP cascade) on a mosaic of
   scikit-image's 25 px LFW faces (24 faces enlarged to 58..86 px on the
   coffee photo): tight grey crops that NudeNet alone does not see.
3. **Speed** -- images per second of each analyzer's ``analyze`` on 1 MP
   images (photos resized to 1155 x 866), one caller thread (ONNX Runtime
   threads as ``OPENSIGHT_NUDENET_THREADS`` says, default 1), each image a fresh
   :class:`DecodedImage` (no cached detections), after a warm-up image.
   ``all three`` runs moderation, anatomy and faces through the pipeline, the
   detector's native pass shared.

``run(quick)`` returns table rows ``{"analyzer", "metric", "value", "goal", "ok"}``;
``goal``/``ok`` are None for rows reported for information.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # `python bench/acc_moderation.py` puts bench/ first
    sys.path.insert(0, str(REPO_ROOT))

from opensight.analyzers import AnalysisContext, _nudenet, registry  # noqa: E402
from opensight.analyzers.pipeline import Pipeline  # noqa: E402
from opensight.images import DecodedImage  # noqa: E402

SEED = 20240612
CROPS = 20
MP_SIZE = (1155, 866)

#: scikit-image's bundled photographs (synthetic images -- colorwheel, logo,
#: checkerboard, horse silhouette, phantom -- are left out).
PHOTOGRAPHS = [
    "astronaut",
    "camera",
    "coffee",
    "chelsea",
    "rocket",
    "immunohistochemistry",
    "hubble_deep_field",
    "retina",
    "moon",
    "coins",
    "clock",
    "cell",
    "page",
    "text",
    "microaneurysms",
    "brick",
    "grass",
    "gravel",
    "motorcycle_left",
    "motorcycle_right",
]
WITH_PEOPLE = {"astronaut", "camera"}
#: The astronaut's face in the 512 px photo, (x0, y0, x1, y1), and the camera man's.
ASTRONAUT_FACE = (150, 40, 300, 200)
CAMERA_FACE = (175, 115, 275, 205)
ASTRONAUT_FACE_PX = 100
"""The width of the astronaut's face (NudeNet's box is 101 x 97 px)."""

Box = tuple[float, float, float, float]


@cache
def photo(name: str) -> np.ndarray:
    """A bundled scikit-image photo as H x W x 3 uint8."""
    from skimage import data

    if name.startswith("motorcycle_"):
        left, right, _ = data.stereo_motorcycle()
        arr = left if name.endswith("left") else right
    else:
        arr = getattr(data, name)()
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    return np.ascontiguousarray(arr[..., :3].astype(np.uint8))


def as_image(rgb: np.ndarray) -> DecodedImage:
    return DecodedImage.from_array(rgb)


def analyze(name: str, rgb: np.ndarray, **options: Any) -> dict[str, Any]:
    context = AnalysisContext(options={name: options} if options else {})
    return registry.get(name).analyze([as_image(rgb)], context)[0]


def seeded_crops(count: int = CROPS, seed: int = SEED) -> list[tuple[str, np.ndarray]]:
    """``count`` random crops (30..80 % of each side) of the photographs >= 500 px."""
    rng = np.random.default_rng(seed)
    large = [name for name in PHOTOGRAPHS if max(photo(name).shape[:2]) >= 500]
    crops = []
    for _ in range(count):
        name = large[int(rng.integers(len(large)))]
        rgb = photo(name)
        h, w = rgb.shape[:2]
        ch, cw = int(h * rng.uniform(0.3, 0.8)), int(w * rng.uniform(0.3, 0.8))
        y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        crops.append((f"{name}[{y}:{y + ch},{x}:{x + cw}]", rgb[y : y + ch, x : x + cw].copy()))
    return crops


# -- rendered group photos -------------------------------------------------------------------


def astronaut_group(cols: int, rows: int, tile: int, gap: int = 16) -> tuple[np.ndarray, list[Box]]:
    """The astronaut tiled ``cols`` x ``rows`` at ``tile`` px on grey, with her face boxes."""
    canvas = np.full((rows * (tile + gap) + gap, cols * (tile + gap) + gap, 3), 200, np.uint8)
    person = cv2.resize(photo("astronaut"), (tile, tile), interpolation=cv2.INTER_AREA)
    k = tile / 512
    faces: list[Box] = []
    for row in range(rows):
        for col in range(cols):
            x, y = gap + col * (tile + gap), gap + row * (tile + gap)
            canvas[y : y + tile, x : x + tile] = person
            x0, y0, x1, y1 = ASTRONAUT_FACE
            faces.append((x + x0 * k, y + y0 * k, x + x1 * k, y + y1 * k))
    return canvas, faces


def lfw_mosaic(count: int = 24, face: int = 72, seed: int = SEED) -> tuple[np.ndarray, list[Box]]:
    """scikit-image's 25 px LFW faces, enlarged, pasted on the (faded) coffee photo."""
    from skimage import data

    rng = np.random.default_rng(seed)
    crops = data.lfw_subset()[:100]  # the first 100 are faces
    canvas = cv2.resize(photo("coffee"), (1200, 800), interpolation=cv2.INTER_CUBIC)
    canvas = (canvas * 0.5 + 100).astype(np.uint8)
    faces: list[Box] = []
    for i in range(count):
        side = int(face * rng.uniform(0.8, 1.2))
        grey = np.clip(crops[i] * 255, 0, 255).astype(np.uint8)
        grey = cv2.resize(grey, (side, side), interpolation=cv2.INTER_CUBIC)
        x = 40 + (i % 8) * 140 + int(rng.integers(0, 30))
        y = 60 + (i // 8) * 240 + int(rng.integers(0, 40))
        canvas[y : y + side, x : x + side] = np.stack([grey] * 3, axis=-1)
        faces.append((x, y, x + side, y + side))
    return canvas, faces


def match(found: Sequence[list[int]], truth: Sequence[Box]) -> tuple[int, int]:
    """(hits, false faces): a hit's centre is in an unmatched true box, size within 3x."""
    used: set[int] = set()
    hits = 0
    for x, y, w, h in found:
        cx, cy = x + w / 2, y + h / 2
        for j, (x0, y0, x1, y1) in enumerate(truth):
            if j in used or not (x0 <= cx <= x1 and y0 <= cy <= y1):
                continue
            if 1 / 3 < w / max(x1 - x0, 1) < 3:
                used.add(j)
                hits += 1
                break
    return hits, len(found) - hits


# -- speed -----------------------------------------------------------------------------------


def images_per_second(
    step: Callable[[DecodedImage], object], sources: Sequence[np.ndarray], rounds: int
) -> float:
    """Median images/s of ``step`` over ``rounds`` passes of fresh images made from ``sources``."""
    step(as_image(sources[0]))  # warm-up: model load, allocations
    rates = []
    for _ in range(rounds):
        images = [as_image(rgb) for rgb in sources]
        started = time.perf_counter()
        for image in images:
            step(image)
        rates.append(len(images) / (time.perf_counter() - started))
    return statistics.median(rates)


def _row(
    analyzer: str, metric: str, value: Any, goal: str | None, ok: bool | None
) -> dict[str, Any]:
    return {"analyzer": analyzer, "metric": metric, "value": value, "goal": goal, "ok": ok}


def run(quick: bool = False) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    threshold = 0.6

    # 1. offensive flags
    photos = [(name, photo(name)) for name in PHOTOGRAPHS]
    crops = seeded_crops()
    worst: tuple[float, str] = (0.0, "all 0")
    for label, sample in (("photographs", photos), ("crops", crops)):
        flagged, suggestive = [], 0
        for name, rgb in sample:
            result = analyze("moderation", rgb)
            if result["offensive"]:
                flagged.append(name)
            suggestive += result["category"] == "suggestive"
            if result["nsfw_score"] > worst[0]:
                worst = (result["nsfw_score"], name)
        what = f"{len(sample)} scikit-image {label}" + (
            f" (seed {SEED}, of the >= 500 px ones)" if label == "crops" else ""
        )
        rows.append(
            _row("moderation", f"offensive flags, {what}", len(flagged), "== 0", not flagged)
        )
        rows.append(_row("moderation", f"suggestive, {what}", suggestive, None, None))
    rows.append(
        _row(
            "moderation",
            f"highest nsfw_score on photographs and crops ({worst[1]})",
            round(worst[0], 3),
            f"< {threshold}",
            worst[0] < threshold,
        )
    )

    # 2. faces
    astronaut = analyze("faces", photo("astronaut"))
    hits, false = match([f["box"] for f in astronaut["faces"]], [ASTRONAUT_FACE])
    rows.append(
        _row("faces", "astronaut: faces found on her face / elsewhere", f"{hits} / {false}",
             "1 / 0", (hits, false) == (1, 0))
    )  # fmt: skip
    camera = analyze("faces", photo("camera"))
    hits, false = match([f["box"] for f in camera["faces"]], [CAMERA_FACE])
    rows.append(
        _row("faces", "camera man (profile): found / elsewhere", f"{hits} / {false}",
             "1 / 0", (hits, false) == (1, 0))
    )  # fmt: skip
    empty = [name for name in PHOTOGRAPHS if name not in WITH_PEOPLE]
    false_faces = sum(analyze("faces", photo(name))["count"] for name in empty)
    rows.append(
        _row("faces", f"false faces on {len(empty)} photographs without people", false_faces,
             "== 0", false_faces == 0)
    )  # fmt: skip
    for cols, grid_rows, tile, goal in ((6, 4, 300, 0.9), (8, 6, 200, None)):
        canvas, truth = astronaut_group(cols, grid_rows, tile)
        image = as_image(canvas)
        result = registry.get("faces").analyze([image], AnalysisContext())[0]
        hits, false = match([f["box"] for f in result["faces"]], truth)
        native_hits, _ = match(
            [list(d.box) for d in _nudenet.detections(image) if d.label.startswith("face")
             and d.confidence >= 0.4],
            truth,
        )  # fmt: skip
        face_px = round(ASTRONAUT_FACE_PX * tile / 512)
        label = (
            f"group {cols}x{grid_rows} ({len(truth)} faces ~{face_px} px, "
            f"{canvas.shape[1]}x{canvas.shape[0]}): recall (native 320 px pass alone "
            f"{native_hits}/{len(truth)}), false faces {false}"
        )
        recall = round(hits / len(truth), 3)
        rows.append(
            _row("faces", label, recall, None if goal is None else f">= {goal}",
                 None if goal is None else recall >= goal and false == 0)
        )  # fmt: skip
    if not quick:
        canvas, truth = lfw_mosaic()
        for method in ("nudenet", "both"):
            started = time.perf_counter()
            result = analyze("faces", canvas, method=method)
            seconds = time.perf_counter() - started
            hits, false = match([f["box"] for f in result["faces"]], truth)
            rows.append(
                _row("faces", f"LFW mosaic (24 grey 25 px faces enlarged), method={method}: "
                     f"recall, false faces {false}, {seconds:.2f} s",
                     round(hits / len(truth), 3), None, None)
            )  # fmt: skip

    # 3. speed at 1 MP
    sources = [
        cv2.resize(photo(name), MP_SIZE, interpolation=cv2.INTER_CUBIC)
        for name in ("astronaut", "coffee", "rocket", "camera", "chelsea")
    ]
    rounds = 2 if quick else 5
    count = _nudenet.detector_threads()
    threads = f"{count} ONNX thread" + ("s" if count > 1 else "")
    context = AnalysisContext()
    for name, goal in (("moderation", 10.0), ("anatomy", None), ("faces", 2.0)):
        analyzer = registry.get(name)
        rate = images_per_second(lambda im, a=analyzer: a.analyze([im], context), sources, rounds)
        rows.append(
            _row(name, f"images/s at 1 MP ({MP_SIZE[0]}x{MP_SIZE[1]}), {threads}",
                 round(rate, 1), None if goal is None else f">= {goal:g}",
                 None if goal is None else rate >= goal)
        )  # fmt: skip
    pipeline = Pipeline()
    rate = images_per_second(
        lambda im: pipeline.run_one(im, ["moderation", "anatomy", "faces"]), sources, rounds
    )
    rows.append(
        _row("all three", "images/s at 1 MP, moderation+anatomy+faces in one pipeline",
             round(rate, 1), None, None)
    )  # fmt: skip
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer timing rounds, no cascade")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    rows = run(quick=args.quick)
    width = max(len(r["metric"]) for r in rows)
    print(f"{'analyzer':<11} {'metric':<{width}}  {'value':>9}  {'goal':<7} ok")
    for r in rows:
        ok = "" if r["ok"] is None else ("yes" if r["ok"] else "NO")
        print(
            f"{r['analyzer']:<11} {r['metric']:<{width}}  {r['value']!s:>9}  "
            f"{r['goal'] or '':<7} {ok}"
        )
    print(f"({time.perf_counter() - started:.0f} s; onnxruntime session runs: {_nudenet.runs})")
    return 0 if all(r["ok"] is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
