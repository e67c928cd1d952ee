"""Text in images (OCR): PP-OCRv4 on onnxruntime by default, or Tesseract.

Per image the result is::

    {"text": "line 1\\nline 2",
     "lines": [{"text": "line 1", "confidence": 0.98,
                "polygon": [[x, y], [x, y], [x, y], [x, y]], "box": [x, y, w, h]}, ...],
     "language": null, "engine": "rapidocr", "angle": 0.0}

* ``lines`` are in reading order: top to bottom and left to right, a column at
  a time when the text is set in columns (see :func:`reading_order`).
  ``polygon`` is the line's corners in the original image's pixels, clockwise
  from the top-left corner *of the text* (a line tilted by 20 degrees has a
  tilted polygon; an upside-down line starts at its bottom-right); ``box`` is
  the axis-aligned ``[x, y, w, h]`` around it, clipped to the image.
  ``confidence`` is 0..1 (the recogniser's mean per-character probability;
  Tesseract's word confidences / 100).
* ``text`` is the lines joined by ``"\\n"``, ``""`` when nothing was read.
* ``angle`` is the text's dominant rotation in degrees, counter-clockwise
  positive, about 180 for an upside-down image; ``null`` when nothing was read
  and with Tesseract. ``language`` is always ``null`` (no engine identifies it).

Engines (option ``engine``; ``auto``, the default, is rapidocr when installed):

* ``rapidocr`` -- PP-OCRv4's detector and recogniser and PP-OCR's mobile angle
  classifier, the ONNX files shipped in the ``rapidocr-onnxruntime`` wheel, run
  by the pipeline below rather than ``RapidOCR()``: with its defaults (detector
  input upscaled until the *short* side is 736 px, so a 40 x 800 line became
  736 x 14720 px; boxes batched for the recogniser; no space handling) it read
  rendered lines at CER 0.21 and ~4 s a line (``bench/acc_ocr.py``; ours: CER
  0.002 at ~0.1 s, see docs/analyzers/ocr.md).

  1. **Detect** at the image's own size: downscaled only when the long side is
     over ``det_max_side`` (1280: dense pages at 960 merged their lines), small
     images (long side under ``det_min_side``) upscaled at most 2x, on a canvas
     with a margin in the background colour. DB post-processing as PaddleOCR's
     (``det_thresh``, ``box_thresh`` on the contour's mean probability so a line
     curved on a bent page is kept, ``unclip_ratio`` 1.8 -- measured better than
     1.6 on every set here; 2.0 merged the lines of a photographed page).
     A large image (a 1 MP photo) is first seen with its long side at
     ``det_coarse_side`` (800, the ``watermark`` analyzer's ``text_side``: the two
     share that map through the image's :func:`probability_memo`): with no text
     there, the detector stops; else it runs at full scale only around what it
     saw (see ``RapidEngine.find_text``). A photo without text costs ~0.4 of the
     detector's CPU (nothing more when ``watermark`` runs too), but text under
     ~15 px in a 1 MP photo can be missed: ``det_coarse_side: 0`` for small print.
  2. **Deskew**: when the boxes' dominant angle is ``deskew_min_angle`` (4)
     degrees or more and they form a block, detect again on a copy turned
     upright and map the boxes back (tightly spaced lines tilted by 15-30
     degrees otherwise merge: CER 0.066 -> 0.003). A lone squat box is
     re-detected only if it reads as something (a tilted texture does not).
  3. **Merge** boxes that continue one line (the detector splits lines at wide
     word gaps, e.g. in monospaced fonts, and neighbouring pieces overlap, so a
     letter was read twice) and crop each straight from the full-size image.
  4. **Recognise** each crop (one at a time: batching padded crops cost 30-40 %
     more CPU per line). **Spaces**: the recogniser, trained mostly on Chinese,
     drops about a third of the spaces between Latin words, but still gives a
     space some probability where one belongs; a space is inserted where that
     is at least ``space_prob`` (0.02), or a quarter of it over an ink-free gap
     of ``space_gap`` (0.2) x the text height -- never where Latin text has
     none (before ``,.:;!?)``, in ``1,299``, ``3.14`` or ``example.com``) unless
     it is 2.5 x ``space_prob``. Full-width punctuation becomes ASCII in text
     without CJK characters.
  5. **Retry** boxes read with confidence below ``retry_below`` (0.85): the
     angle classifier runs on them only (``use_cls``) and a box it finds upside
     down is read again turned; a light-on-dark box is read again inverted
     (``invert``); the better reading wins. (The recogniser reads light-on-dark
     text well: inverting every such crop first measured no better.)
  6. **Filter**: boxes read below ``text_score`` (0.5) are dropped, and short
     ones need more (``short_text_score``, 0.9 for one character): textures in
     photos read as 1-4 character junk at 0.4-0.86, real lines scored >= 0.9.
  7. **Order** (:func:`reading_order`), joining boxes on one line with a space.

  The engine is created once per process on first use (under a lock) and
  shared by threads; onnxruntime's intra-op threads are ``OPENSIGHT_OCR_THREADS``
  or half the CPUs (1 on a 2-core machine, at most 4, see :func:`ocr_threads`).

* ``tesseract`` -- the ``tesseract`` binary (``apt-get install tesseract-ocr``)
  as a subprocess with TSV output, options ``lang`` (``eng``) and ``psm`` (page
  segmentation mode, 3: automatic). Optional: readiness lists it as missing
  without making the analyzer unready.

Options are read from ``context.options_for("ocr")``; see :class:`OcrOptions`.
"""

from __future__ import annotations

import importlib.util
import io
import itertools
import math
import os
import shutil
import subprocess
import threading
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..errors import ModelUnavailable, OpenSightError, ValidationFailed
from ..images import DecodedImage
from .base import AnalysisContext, Analyzer, Readiness
from .registry import register

ENGINES = ("auto", "rapidocr", "tesseract")


@dataclass(frozen=True)
class OcrOptions:
    engine: str = "auto"
    """``rapidocr``, ``tesseract``, or ``auto`` (rapidocr when installed, else Tesseract)."""
    det_max_side: int = 1280
    """The detector sees the image with its longest side at most this (px)."""
    det_min_side: int = 640
    """Images whose longest side is below this are upscaled (at most 2x) for the detector."""
    det_coarse_side: int = 800
    """Large images (1 MP photos) are first seen at this longest side (px) to find where text
    is, and the detector runs at full scale only there (0: always the whole image). 800 is
    the ``watermark`` analyzer's ``text_side``, so the two share that map. The price: text
    under ~15 px in a 1 MP photo can be missed (bench/acc_ocr.py, small text on photos)."""
    det_thresh: float = 0.3
    """Pixel threshold on the detector's text probability map."""
    box_thresh: float = 0.5
    """Mean probability a detected box needs to be kept."""
    unclip_ratio: float = 1.8
    """How far detected boxes are grown (DB's unclip: area x ratio / perimeter)."""
    text_score: float = 0.5
    """Boxes read with a lower confidence are dropped ..."""
    short_text_score: float = 0.9
    """... and boxes of 1 character with less than this (2, 3, 4 characters: 3/4, 1/2,
    1/4 of the way from ``text_score`` to this): photos' textures read as short junk."""
    space_prob: float = 0.02
    """A space goes between two characters when the recogniser gives a space at
    least this probability between them (0: keep only the spaces it emits) ..."""
    space_gap: float = 0.2
    """... or a quarter of it over an ink-free gap at least this wide (x text height)."""
    retry_below: float = 0.85
    """Boxes read with less confidence are read again: turned by 180 degrees when
    the angle classifier says they are upside down (``use_cls``), and inverted
    when they are light on dark (``invert``); the better reading is kept."""
    use_cls: bool = True
    invert: bool = True
    merge_gap: float = 1.0
    """Boxes continuing one line at most this x their height apart are read as one."""
    deskew_min_angle: float = 4.0
    """Re-detect on an upright copy when the text is tilted by more (degrees; 0: never)."""
    lang: str = "eng"
    """Tesseract's language(s), e.g. ``eng+deu`` (tesseract engine only)."""
    psm: int = 3
    """Tesseract's page segmentation mode (tesseract engine only)."""

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> OcrOptions:
        known = {f.name: f.type for f in fields(cls)}
        changes: dict[str, Any] = {}
        for key, value in options.items():
            if key not in known:
                continue
            kind = known[key]
            if kind == "str":
                if not isinstance(value, str):
                    raise ValidationFailed(f"ocr option {key!r} must be a string")
                changes[key] = value.strip().lower() if key == "engine" else value.strip()
            elif kind == "bool":
                if not isinstance(value, bool):
                    raise ValidationFailed(f"ocr option {key!r} must be true or false")
                changes[key] = value
            else:
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ValidationFailed(f"ocr option {key!r} must be a number")
                if not math.isfinite(value) or value < 0:
                    raise ValidationFailed(f"ocr option {key!r} must be a finite number >= 0")
                changes[key] = int(value) if kind == "int" else float(value)
        opts = replace(cls(), **changes)
        if opts.engine not in ENGINES:
            raise ValidationFailed(f"ocr option 'engine' must be one of {', '.join(ENGINES)}")
        if opts.det_max_side < 32 or opts.det_max_side > 4096:
            raise ValidationFailed("ocr option 'det_max_side' must be 32..4096")
        if opts.det_coarse_side and not 32 <= opts.det_coarse_side <= 4096:
            raise ValidationFailed("ocr option 'det_coarse_side' must be 0 or 32..4096")
        if opts.psm > 13:
            raise ValidationFailed("ocr option 'psm' must be 0..13")
        if not opts.lang.replace("+", "").replace("_", "").isalnum():
            raise ValidationFailed("ocr option 'lang' must look like 'eng' or 'eng+deu'")
        return opts


DEFAULTS = OcrOptions()


class OcrAnalyzer(Analyzer):
    name = "ocr"
    version = "1.1.0"
    description = "Text in images: lines with polygons, in reading order (PP-OCRv4 or Tesseract)."
    license = "Apache-2.0"

    def readiness(self) -> Readiness:
        missing = []
        rapid = rapidocr_model_dir() is not None
        if not rapid:
            missing.append("pip install rapidocr-onnxruntime (the default OCR engine)")
        if tesseract_binary() is None:
            missing.append("apt-get install tesseract-ocr (optional second OCR engine)")
        return Readiness(ready=rapid or tesseract_binary() is not None, missing=missing)

    def analyze(
        self, images: Sequence[DecodedImage], context: AnalysisContext
    ) -> list[dict[str, Any]]:
        opts = OcrOptions.from_mapping(context.options_for(self.name))
        engine = resolve_engine(opts.engine)
        return [read_text(image.rgb, opts, engine, probability_memo(image)) for image in images]


ProbabilityMemo = dict[float, tuple[np.ndarray, int]]
"""One image's DB probability maps by detector scale: ``(map, canvas margin)``."""

_MEMO_ATTR = "_opensight_db_probability"


def probability_memo(image: DecodedImage) -> ProbabilityMemo:
    """The memo of the text detector's maps of ``image``, kept in its ``__dict__`` (as
    ``_nudenet`` keeps its passes): analyzers of one job that look at the same image at
    the same scale (``ocr``'s coarse look, ``watermark``'s text boxes) run the detector
    once, and the maps go away with the image. Never shared between images."""
    memo: ProbabilityMemo = image.__dict__.setdefault(_MEMO_ATTR, {})
    return memo


def resolve_engine(name: str) -> str:
    if name == "auto":
        if rapidocr_model_dir() is not None:
            return "rapidocr"
        return "tesseract" if tesseract_binary() is not None else "rapidocr"
    return name


def read_text(
    rgb: np.ndarray,
    opts: OcrOptions = DEFAULTS,
    engine: str = "rapidocr",
    memo: ProbabilityMemo | None = None,
) -> dict[str, Any]:
    """OCR of one H x W x 3 uint8 RGB image (see the module docstring); ``memo``: the
    image's :func:`probability_memo`, when other analyzers may share the detector's maps."""
    rgb = _as_rgb8(rgb)
    angle: float | None = None  # Tesseract's boxes are upright: it reports no angle
    if engine == "tesseract":
        lines = tesseract_lines(rgb, opts)
    else:
        lines, angle = rapid_engine().read(rgb, opts, memo)
    height, width = rgb.shape[:2]
    return {
        "text": "\n".join(line.text for line in lines),
        "lines": [line.as_dict(width, height) for line in lines],
        "language": None,
        "engine": engine,
        "angle": None if angle is None else round(float(angle), 1) + 0.0,  # no -0.0
    }


def _as_rgb8(image: np.ndarray) -> np.ndarray:
    """H x W x 3 uint8 from what a caller may pass (grey, RGBA, bool, 16-bit)."""
    array = np.asarray(image)
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    elif array.dtype != np.uint8:
        peak = float(array.max(initial=0))
        top = 65535.0 if peak > 255 else 1.0 if peak <= 1.0 and array.dtype.kind == "f" else 255.0
        array = np.clip(array.astype(np.float64) / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    return np.ascontiguousarray(array[..., :3])


# -- shared geometry --------------------------------------------------------------------------


@dataclass
class Line:
    text: str
    confidence: float
    polygon: np.ndarray
    """4 x 2 float, clockwise from the text's top-left, original pixels."""

    def as_dict(self, width: int, height: int) -> dict[str, Any]:
        poly = self.polygon
        x0 = max(0, math.floor(float(poly[:, 0].min())))
        y0 = max(0, math.floor(float(poly[:, 1].min())))
        x1 = min(width, math.ceil(float(poly[:, 0].max())))
        y1 = min(height, math.ceil(float(poly[:, 1].max())))
        return {
            "text": self.text,
            "confidence": round(float(min(max(self.confidence, 0.0), 1.0)), 4),
            "polygon": [[round(float(x), 1), round(float(y), 1)] for x, y in poly],
            "box": [x0, y0, max(0, x1 - x0), max(0, y1 - y0)],
        }


def order_quad(points: np.ndarray) -> np.ndarray:
    """The corners of a rotated rectangle as top-left, top-right, bottom-right,
    bottom-left, where "top" is relative to the side closest to horizontal."""
    pts = np.asarray(points, dtype=np.float32).reshape(4, 2)
    center = pts.mean(axis=0)
    best = None
    for i in range(4):  # pick the side whose direction is closest to horizontal
        d = pts[(i + 1) % 4] - pts[i]
        norm = float(np.hypot(d[0], d[1]))
        if norm > 1e-6:
            horizontality = abs(float(d[0])) / norm
            if best is None or horizontality > best[0] + 1e-6:
                best = (horizontality, d / norm)
    u = np.array([1.0, 0.0], np.float32) if best is None else best[1]
    if u[0] < 0:
        u = -u
    v = np.array([-u[1], u[0]], np.float32)  # u rotated 90 degrees clockwise on screen: "down"
    rel = pts - center
    pu, pv = rel @ u, rel @ v
    tl = int(np.argmin(pu + pv))
    tr = int(np.argmax(pu - pv))
    br = int(np.argmax(pu + pv))
    bl = int(np.argmin(pu - pv))
    if len({tl, tr, br, bl}) < 4:  # degenerate: fall back to angle order around the centre
        order = np.argsort(np.arctan2(rel[:, 1], rel[:, 0]))
        return pts[order]
    return pts[[tl, tr, br, bl]]


def quad_angle(quad: np.ndarray) -> float:
    """Angle of the quad's top side in degrees, counter-clockwise positive (image y is down)."""
    d = quad[1] - quad[0]
    return -math.degrees(math.atan2(float(d[1]), float(d[0])))


def quad_size(quad: np.ndarray) -> tuple[float, float]:
    width = float(max(np.linalg.norm(quad[1] - quad[0]), np.linalg.norm(quad[2] - quad[3])))
    height = float(max(np.linalg.norm(quad[3] - quad[0]), np.linalg.norm(quad[2] - quad[1])))
    return width, height


def dominant_angle(quads: Sequence[np.ndarray]) -> float:
    """Length-weighted median angle of the quads' top sides (degrees, CCW positive)."""
    if not quads:
        return 0.0
    angles = np.array([quad_angle(q) for q in quads])
    weights = np.array([quad_size(q)[0] for q in quads]) + 1e-6
    order = np.argsort(angles)
    cumulative = np.cumsum(weights[order])
    return float(angles[order][int(np.searchsorted(cumulative, cumulative[-1] / 2))])


def _rotate_points(points: np.ndarray, degrees: float, center: tuple[float, float]) -> np.ndarray:
    """Rotate points counter-clockwise on screen by ``degrees`` around ``center``."""
    rad = math.radians(degrees)
    c, s = math.cos(rad), math.sin(rad)
    cx, cy = center
    x, y = points[..., 0] - cx, points[..., 1] - cy
    return np.stack([cx + c * x + s * y, cy - s * x + c * y], axis=-1).astype(np.float32)


def merge_fragments(quads: Sequence[np.ndarray], max_gap: float) -> list[np.ndarray]:
    """Join boxes that continue one another on a line (similar angle and height,
    overlapping across the line, at most ``max_gap`` x their height apart along it)
    into one box, so the recogniser reads the line whole. The detector splits a
    line where words are far apart (monospaced fonts) and neighbouring pieces
    overlap, which would read a letter twice."""
    count = len(quads)
    if count < 2 or max_gap <= 0:
        return list(quads)
    parent = list(range(count))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    stack = np.stack([np.asarray(q, np.float32) for q in quads])  # n x 4 x 2
    sizes = np.array([quad_size(q) for q in quads], np.float32)  # n x (width, height)
    angles = np.array([quad_angle(q) for q in quads], np.float32)
    for i in range(count):
        qa = stack[i]
        wa, ha = float(sizes[i, 0]), float(sizes[i, 1])
        u = (qa[1] - qa[0]) / max(float(np.linalg.norm(qa[1] - qa[0])), 1e-6)
        v = np.array([-u[1], u[0]], np.float32)
        rel = stack - qa[0]
        pu, pv = rel @ u, rel @ v  # n x 4: every box's corners in box i's frame
        hb = sizes[:, 1]
        small, large = np.minimum(ha, hb), np.maximum(ha, hb)
        overlap = np.minimum(ha, pv.max(axis=1)) - np.maximum(0.0, pv.min(axis=1))
        gap = np.maximum(pu.min(axis=1) - wa, -pu.max(axis=1))
        near = (
            (np.abs(angles - angles[i]) <= 8)
            & (large <= 1.6 * small)
            & (overlap >= 0.5 * small)
            & (gap <= max_gap * small)
        )
        near[i] = False
        for j in np.nonzero(near)[0]:
            ri, rj = root(i), root(int(j))
            if ri != rj:
                parent[rj] = ri
    groups: dict[int, list[int]] = {}
    for i in range(count):
        groups.setdefault(root(i), []).append(i)
    merged = []
    for members in groups.values():
        parts = [quads[i] for i in members]
        merged.append(_merge_quads(parts, dominant_angle(parts)))
    return merged


def reading_order(quads: Sequence[np.ndarray], angle: float = 0.0) -> list[list[int]]:
    """Order boxes for reading and group the ones on one line.

    The boxes are turned upright (rotated by ``-angle``) and cut recursively
    (XY cut): first at a vertical gutter between columns of text -- wider than
    1.5 x the median line height, with at least two lines on each side whose
    median width is at least 4 x that height (so a receipt's prices do not make
    a column) -- read left to right; else at the widest gaps between rows (a
    title's, a paragraph's), read top to bottom, each part cut again. A row that
    cannot be cut is one line, its boxes left to right. Returns lists of indices
    into ``quads``, one list per line.
    """
    if not quads:
        return []
    boxes = []
    for quad in quads:
        upright = _rotate_points(np.asarray(quad, np.float32), -angle, (0.0, 0.0))
        boxes.append(
            (
                float(upright[:, 0].min()),
                float(upright[:, 1].min()),
                float(upright[:, 0].max()),
                float(upright[:, 1].max()),
            )
        )
    unit = max(1.0, float(np.median([b[3] - b[1] for b in boxes])))
    lines: list[list[int]] = []
    _xy_cut(list(range(len(boxes))), boxes, unit, lines)
    return lines


def _xy_cut(
    items: list[int],
    boxes: list[tuple[float, float, float, float]],
    unit: float,
    out: list[list[int]],
) -> None:
    if len(items) >= 4:
        split = _column_split(items, boxes, unit)
        if split is not None:
            _xy_cut(split[0], boxes, unit, out)
            _xy_cut(split[1], boxes, unit, out)
            return
    by_y = sorted(items, key=lambda k: (boxes[k][1] + boxes[k][3]) / 2)
    rows = [[by_y[0]]]
    bottom = boxes[by_y[0]][3]
    for k in by_y[1:]:
        if (boxes[k][1] + boxes[k][3]) / 2 > bottom:  # below the row so far: a new row
            rows.append([k])
            bottom = boxes[k][3]
        else:
            rows[-1].append(k)
            bottom = max(bottom, boxes[k][3])
    if len(rows) == 1:
        out.append(sorted(items, key=lambda k: boxes[k][0]))
        return
    # cut at the widest gaps between rows (under a title, between paragraphs) so
    # that a part below may still split into columns; evenly spaced rows all at once
    gaps = np.array(
        [
            min(boxes[k][1] for k in rows[i + 1]) - max(boxes[k][3] for k in rows[i])
            for i in range(len(rows) - 1)
        ]
    )
    widest = float(gaps.max())
    cuts = [i + 1 for i, gap in enumerate(gaps) if gap >= widest - 0.25 * unit]
    for first, last in zip([0, *cuts], [*cuts, len(rows)], strict=True):
        _xy_cut([k for row in rows[first:last] for k in row], boxes, unit, out)


def _column_split(
    items: list[int], boxes: list[tuple[float, float, float, float]], unit: float
) -> tuple[list[int], list[int]] | None:
    """The widest vertical gutter that separates two columns of text, if any."""
    by_x = sorted(items, key=lambda k: boxes[k][0])
    best: tuple[float, int] | None = None
    reach = boxes[by_x[0]][2]
    for pos in range(1, len(by_x)):
        gutter = boxes[by_x[pos]][0] - reach
        if gutter > 1.5 * unit and (best is None or gutter > best[0]):
            left, right = by_x[:pos], by_x[pos:]
            if all(
                len(side) >= 2
                and float(np.median([boxes[k][2] - boxes[k][0] for k in side])) >= 4 * unit
                for side in (left, right)
            ):
                best = (gutter, pos)
        reach = max(reach, boxes[by_x[pos]][2])
    if best is None:
        return None
    return by_x[: best[1]], by_x[best[1] :]


# -- rapidocr (PP-OCRv4 via onnxruntime) ----------------------------------------------------


def rapidocr_model_dir() -> Path | None:
    """The ``models`` folder of the installed rapidocr-onnxruntime wheel, if complete."""
    try:
        spec = importlib.util.find_spec("rapidocr_onnxruntime")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        folder = Path(location) / "models"
        if all(_model_file(folder, kind) for kind in ("det", "rec", "cls")):
            return folder
    return None


_MODEL_NAMES = {
    "det": "ch_PP-OCRv4_det_infer.onnx",
    "rec": "ch_PP-OCRv4_rec_infer.onnx",
    "cls": "ch_ppocr_mobile_v2.0_cls_infer.onnx",
}


def _model_file(folder: Path, kind: str) -> Path | None:
    path = folder / _MODEL_NAMES[kind]
    if path.is_file():
        return path
    matches = sorted(folder.glob(f"*{kind}*.onnx")) if folder.is_dir() else []
    return matches[0] if matches else None


def ocr_threads() -> int:
    """onnxruntime intra-op threads per inference: ``OPENSIGHT_OCR_THREADS``, else half
    the CPUs (1 on 2 cores, at most 4): the job workers (2 by default) run images
    side by side, each inference on its own core, which measured faster per image
    than one inference spread over both cores on a busy 2-core machine."""
    raw = os.environ.get("OPENSIGHT_OCR_THREADS", "").strip()
    if raw.isdigit() and int(raw) > 0:
        return int(raw)
    return max(1, min(4, (os.cpu_count() or 2) // 2))


_ENGINE: RapidEngine | None = None
_ENGINE_PID = 0
_ENGINE_LOCK = threading.Lock()


def rapid_engine() -> RapidEngine:
    """The process's one engine, created on first use (sessions do not survive a fork)."""
    global _ENGINE, _ENGINE_PID
    engine = _ENGINE
    if engine is not None and os.getpid() == _ENGINE_PID:
        return engine
    with _ENGINE_LOCK:
        if _ENGINE is None or os.getpid() != _ENGINE_PID:
            folder = rapidocr_model_dir()
            if folder is None:
                raise ModelUnavailable(
                    "rapidocr",
                    "the OCR models are not installed; pip install rapidocr-onnxruntime",
                )
            _ENGINE = RapidEngine(folder, ocr_threads())
            _ENGINE_PID = os.getpid()
        return _ENGINE


REC_HEIGHT = 48
REC_STRIDE = 8
"""The recogniser emits one CTC frame per 8 px of its 48 px high input."""
CLS_SHAPE = (48, 192)


@dataclass
class _Crop:
    index: int
    image: np.ndarray
    """Upright BGR crop of one detected box."""
    text: str = ""
    confidence: float = 0.0
    flipped: bool = False
    """Read upside down (turned by 180 degrees after the angle classifier)."""


class RapidEngine:
    """PP-OCRv4 detector + recogniser + angle classifier on onnxruntime (CPU)."""

    def __init__(self, folder: Path, threads: int) -> None:
        import onnxruntime as ort

        def session(kind: str) -> Any:
            so = ort.SessionOptions()
            so.intra_op_num_threads = threads
            so.inter_op_num_threads = 1
            so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            so.log_severity_level = 3
            # Idle pool threads sleep instead of spinning: on shared cores spinning
            # doubled the CPU per image and slowed everything else down.
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
            path = _model_file(folder, kind)
            return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])

        self.det = session("det")
        self.rec = session("rec")
        self.cls = session("cls")
        meta = self.rec.get_modelmeta().custom_metadata_map
        self.charset = ["", *meta["character"].splitlines(), " "]
        self.space_id = len(self.charset) - 1

    def _run(self, sess: Any, batch: np.ndarray) -> np.ndarray:
        """One inference (onnxruntime sessions may be run from several threads at once)."""
        return np.asarray(sess.run(None, {sess.get_inputs()[0].name: batch})[0])

    # -- whole pipeline --

    def read(
        self, rgb: np.ndarray, opts: OcrOptions, memo: ProbabilityMemo | None = None
    ) -> tuple[list[Line], float | None]:
        bgr = np.ascontiguousarray(rgb[..., ::-1])
        quads = self.find_text(bgr, opts, memo)
        if not quads:
            return [], None
        angle = dominant_angle(quads)
        if (
            opts.deskew_min_angle > 0
            and _tilted_block(quads, angle, opts.deskew_min_angle)
            and (len(_aligned(quads, angle)) >= 2 or self._reads_any(bgr, quads, opts))
        ):
            quads = self._detect_upright(bgr, angle, opts) or quads
        quads = merge_fragments(quads, opts.merge_gap)
        angle = dominant_angle(quads)
        crops = [_Crop(i, crop_quad(bgr, q)) for i, q in enumerate(quads)]
        self.recognise(crops, opts)
        if opts.use_cls:
            self._retry_upside_down([c for c in crops if c.confidence < opts.retry_below], opts)
        if opts.invert:
            self._retry_inverted([c for c in crops if c.confidence < opts.retry_below], opts)
        kept = [c for c in crops if c.text and c.confidence >= _min_confidence(c.text, opts)]
        if not kept:
            return [], None
        polygons = {c.index: quads[c.index] for c in kept}
        for crop in kept:
            if crop.flipped:  # the text's top-left is the box's bottom-right
                polygons[crop.index] = np.roll(quads[crop.index], 2, axis=0)
        flipped_chars = sum(len(c.text) for c in kept if c.flipped)
        if flipped_chars * 2 > sum(len(c.text) for c in kept):
            angle = angle + 180.0 if angle <= 0 else angle - 180.0
        groups = reading_order([polygons[c.index] for c in kept], angle)
        lines = []
        for group in groups:
            parts = [kept[k] for k in group]
            text = " ".join(p.text for p in parts)
            weights = [max(len(p.text), 1) for p in parts]
            conf = float(np.average([p.confidence for p in parts], weights=weights))
            polygon = _merge_quads([polygons[p.index] for p in parts], angle)
            lines.append(Line(text, conf, polygon))
        return lines, angle

    def _reads_any(self, bgr: np.ndarray, quads: Sequence[np.ndarray], opts: OcrOptions) -> bool:
        """Whether any box reads as something (half of ``text_score``). Asked only when
        a lone squat box looks tilted (two aligned boxes are a paragraph): a texture
        the detector took for text reads as nothing, and re-detecting it upright (a
        second full detector pass, ~0.3 s at 1 MP) would find nothing either."""
        for index, quad in sorted(enumerate(quads), key=lambda iq: -quad_size(iq[1])[0]):
            crop = _Crop(index, crop_quad(bgr, quad))  # longest first: stop at the first read
            self.recognise([crop], opts)
            if crop.text and crop.confidence >= opts.text_score / 2:
                return True
        return False

    def _detect_upright(self, bgr: np.ndarray, angle: float, opts: OcrOptions) -> list[np.ndarray]:
        """Detect on a copy rotated by ``-angle`` and map the quads back."""
        h, w = bgr.shape[:2]
        center = (w / 2.0, h / 2.0)
        matrix = cv2.getRotationMatrix2D(center, -angle, 1.0)
        cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
        new_w, new_h = int(h * sin + w * cos + 0.5), int(h * cos + w * sin + 0.5)
        matrix[0, 2] += new_w / 2.0 - center[0]
        matrix[1, 2] += new_h / 2.0 - center[1]
        border = tuple(int(v) for v in _border_colour(bgr))
        upright = cv2.warpAffine(
            bgr, matrix, (new_w, new_h), flags=cv2.INTER_LINEAR, borderValue=border
        )
        quads = self.find_text(upright, opts)
        inverse = cv2.invertAffineTransform(matrix)
        mapped = []
        for quad in quads:
            pts = np.hstack([quad, np.ones((4, 1), np.float32)]) @ inverse.T
            mapped.append(order_quad(pts.astype(np.float32)))
        return mapped

    # -- detection --

    def find_text(
        self, bgr: np.ndarray, opts: OcrOptions, memo: ProbabilityMemo | None = None
    ) -> list[np.ndarray]:
        """Text boxes, detected at full scale only where a coarse look found some.

        The detector's CPU grows with the pixels it sees (~0.3 s at 1280 x 864 on
        one core), while most photographs hold no text or a few short lines. So
        an image the detector would see ``COARSE_MIN_GAIN`` x larger than at
        ``det_coarse_side`` is first seen at that longest side (800: 0.4 of the
        pixels of a 1 MP photo, ~0.1 s, shared with ``watermark`` through ``memo``):
        no pixel at half of ``det_thresh``
        there means no text; otherwise the detector runs at its usual scale on
        the regions around what it found (grown by ``COARSE_GROW`` x their
        height and ``COARSE_PAD`` px, merged), or on the whole image when those
        cover more than ``COARSE_MAX_SHARE`` of it (a page). The price: text
        under ~15 px in a 1 MP photo can go unseen (docs/analyzers/ocr.md).
        """
        h, w = bgr.shape[:2]
        scale = _det_scale(h, w, opts)
        coarse = opts.det_coarse_side / max(h, w)
        if opts.det_coarse_side <= 0 or coarse * COARSE_MIN_GAIN > scale:
            return self.detect(bgr, opts, memo)
        prob, margin = self.probability(bgr, coarse, memo)
        mask = (prob > opts.det_thresh / 2).astype(np.uint8)
        count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        rects = []
        for x, y, cw, ch, _area in stats[1:count]:
            grow = COARSE_GROW * min(cw, ch) / coarse + COARSE_PAD
            x0, y0 = (x - margin) / coarse - grow, (y - margin) / coarse - grow
            x1, y1 = (x + cw - margin) / coarse + grow, (y + ch - margin) / coarse + grow
            rects.append(
                (max(0, int(x0)), max(0, int(y0)), min(w, math.ceil(x1)), min(h, math.ceil(y1)))
            )
        if not rects:
            return []
        rects = _merge_rects(rects)
        if sum(_canvas_pixels(r[3] - r[1], r[2] - r[0], scale) for r in rects) > (
            COARSE_MAX_SHARE * _canvas_pixels(h, w, scale)
        ):  # the detector's own canvases (margin, stride) count: many small regions add up
            return self.detect(bgr, opts, memo)
        quads = []
        for x0, y0, x1, y1 in rects:
            for quad in self._detect_at(np.ascontiguousarray(bgr[y0:y1, x0:x1]), opts, scale):
                quads.append(quad + np.array([x0, y0], np.float32))
        return quads

    def detect(
        self, bgr: np.ndarray, opts: OcrOptions, memo: ProbabilityMemo | None = None
    ) -> list[np.ndarray]:
        """Text boxes (ordered quads in ``bgr``'s pixels) by PP-OCRv4's DB detector."""
        return self._detect_at(bgr, opts, _det_scale(bgr.shape[0], bgr.shape[1], opts), memo)

    def probability(
        self, bgr: np.ndarray, scale: float, memo: ProbabilityMemo | None = None
    ) -> tuple[np.ndarray, int]:
        """The detector's text probability map of ``bgr`` resized by ``scale``, on a
        canvas with a margin in the background colour; and that margin (px).

        With ``memo`` (one image's, see :func:`probability_memo`) a map already computed
        at this scale is reused: ``ocr`` and ``watermark`` both look at a 1 MP photo at
        800 px, and the detector is most of what either costs."""
        key = round(float(scale), 9)
        if memo is not None and key in memo:
            return memo[key]
        found = self._probability(bgr, scale)
        if memo is not None:
            memo[key] = found
        return found

    def _probability(self, bgr: np.ndarray, scale: float) -> tuple[np.ndarray, int]:
        h, w = bgr.shape[:2]
        rw, rh = max(1, round(w * scale)), max(1, round(h * scale))
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        resized = cv2.resize(bgr, (rw, rh), interpolation=interp) if scale != 1 else bgr
        margin = DET_MARGIN
        ph = max(32, math.ceil((rh + 2 * margin) / 32) * 32)
        pw = max(32, math.ceil((rw + 2 * margin) / 32) * 32)
        canvas = np.empty((ph, pw, 3), np.uint8)
        canvas[:] = _border_colour(resized)
        canvas[margin : margin + rh, margin : margin + rw] = resized
        batch = (canvas.astype(np.float32) * (2.0 / 255.0) - 1.0).transpose(2, 0, 1)[None]
        return self._run(self.det, np.ascontiguousarray(batch))[0, 0], margin

    def _detect_at(
        self,
        bgr: np.ndarray,
        opts: OcrOptions,
        scale: float,
        memo: ProbabilityMemo | None = None,
    ) -> list[np.ndarray]:
        """DB post-processing of the probability map of ``bgr`` seen at ``scale``."""
        h, w = bgr.shape[:2]
        prob, margin = self.probability(bgr, scale, memo)
        mask = cv2.dilate((prob > opts.det_thresh).astype(np.uint8), np.ones((2, 2), np.uint8))
        contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        quads = []
        for contour in contours[:1000]:
            rect = cv2.minAreaRect(contour)
            if min(rect[1]) < 3:
                continue
            if _box_score(prob, contour.reshape(-1, 2).astype(np.float32)) < opts.box_thresh:
                continue
            (cx, cy), (bw, bh), theta = rect
            grow = bw * bh * opts.unclip_ratio / max(2.0 * (bw + bh), 1e-6)
            grown = ((cx, cy), (bw + 2 * grow, bh + 2 * grow), theta)
            if min(grown[1]) < 5:
                continue
            pts = (cv2.boxPoints(grown) - margin) / scale
            pts[:, 0] = np.clip(pts[:, 0], 0, w)
            pts[:, 1] = np.clip(pts[:, 1], 0, h)
            quad = order_quad(pts)
            qw, qh = quad_size(quad)
            if qw > 3 and qh > 3:
                quads.append(quad)
        return quads

    # -- recognition --

    def recognise(self, crops: Sequence[_Crop], opts: OcrOptions) -> None:
        """Fill in each crop's text and confidence.

        One crop per call: on CPU, batching crops (padded to the widest) cost
        30..40 % more per line than running them one at a time.
        """
        for crop in crops:
            rec_input = _rec_input(crop.image)
            probs = self._run(self.rec, rec_input[None])
            crop.text, crop.confidence = self._decode(probs[0], rec_input, opts)

    def _decode(
        self, probs: np.ndarray, rec_input: np.ndarray, opts: OcrOptions
    ) -> tuple[str, float]:
        """Greedy CTC decoding, with spaces put back at wide ink gaps."""
        best = probs.argmax(axis=1)
        best_p = probs.max(axis=1)
        chars: list[tuple[str, int, int, float]] = []  # (char, first frame, last frame, p)
        prev = 0
        for t, k in enumerate(best):
            k = int(k)
            if k != 0 and k == prev and chars:
                c, first, _, p = chars[-1]
                chars[-1] = (c, first, t, max(p, float(best_p[t])))
            elif k != 0:
                chars.append((self.charset[k], t, t, float(best_p[t])))
            prev = k
        if not chars:
            return "", 0.0
        conf = float(np.mean([c[3] for c in chars]))
        columns = _ink_columns(rec_input)
        out = [chars[0][0]]
        for a, b in itertools.pairwise(chars):
            if a[0] != " " and b[0] != " " and opts.space_prob > 0:
                p_space = float(probs[a[2] : b[1] + 1, self.space_id].max())
                if _no_space_expected(a[0], b[0]):
                    wanted = p_space >= 2.5 * opts.space_prob
                else:
                    wanted = p_space >= opts.space_prob or (
                        p_space >= opts.space_prob / 4
                        and _widest_gap(columns, a[2], b[1]) >= opts.space_gap
                    )
                if wanted:
                    out.append(" ")
            out.append(b[0])
        text = "".join(out)
        return _tidy(text), conf

    def _retry_inverted(self, crops: Sequence[_Crop], opts: OcrOptions) -> None:
        """Read light-on-dark crops again as dark on light; keep the better reading."""
        for crop in crops:
            if not _is_light_on_dark(crop.image):
                continue
            again = _Crop(crop.index, np.ascontiguousarray(255 - crop.image))
            self.recognise([again], opts)
            if again.confidence > crop.confidence:
                crop.text, crop.confidence = again.text, again.confidence

    def _retry_upside_down(self, crops: Sequence[_Crop], opts: OcrOptions) -> None:
        if not crops:
            return
        batch = np.stack([_cls_input(c.image) for c in crops])
        probs = self._run(self.cls, batch)
        flipped = [
            _Crop(c.index, np.ascontiguousarray(c.image[::-1, ::-1]))
            for c, p in zip(crops, probs, strict=True)
            if p[1] > 0.9
        ]
        self.recognise(flipped, opts)
        by_index = {c.index: c for c in crops}
        for again in flipped:
            original = by_index[again.index]
            if again.confidence > original.confidence:
                original.image, original.text = again.image, again.text
                original.confidence, original.flipped = again.confidence, True


DET_MARGIN = 16
"""Pixels of background colour around the image on the detector's canvas."""
COARSE_MIN_GAIN = 1.2
"""The coarse look runs when the detector's scale is at least this x the coarse one (1.44 x
the pixels, e.g. a 1000 x 1000 photo at 800): below that it would save too little, even
though ``watermark`` may share it."""
COARSE_GROW = 1.5
COARSE_PAD = 32
"""Each coarse region is grown by ``COARSE_GROW`` x its height plus this many pixels
(a line's DB core is shrunk; its unclipped box and the detector's context need room)."""
COARSE_MAX_SHARE = 0.5
"""When the regions cover more of the image than this, the whole image is detected."""


def _canvas_pixels(height: int, width: int, scale: float) -> int:
    """Pixels of the detector's canvas for an image of that size seen at ``scale``."""
    rh, rw = max(1, round(height * scale)), max(1, round(width * scale))
    pad = 2 * DET_MARGIN
    return max(32, math.ceil((rh + pad) / 32) * 32) * max(32, math.ceil((rw + pad) / 32) * 32)


def _det_scale(height: int, width: int, opts: OcrOptions) -> float:
    """The scale the detector sees an image at (``det_max_side``, ``det_min_side``)."""
    long_side = max(height, width)
    if long_side > opts.det_max_side:
        return opts.det_max_side / long_side
    if long_side < opts.det_min_side:
        return min(2.0, opts.det_min_side / long_side)
    return 1.0


def _merge_rects(rects: Sequence[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    """Union ``(x0, y0, x1, y1)`` rectangles that overlap until none do."""
    merged = list(rects)
    changed = True
    while changed:
        changed = False
        out: list[tuple[int, int, int, int]] = []
        for rect in merged:
            for k, other in enumerate(out):
                if (
                    rect[0] < other[2]
                    and other[0] < rect[2]
                    and rect[1] < other[3]
                    and other[1] < rect[3]
                ):
                    out[k] = (
                        min(rect[0], other[0]),
                        min(rect[1], other[1]),
                        max(rect[2], other[2]),
                        max(rect[3], other[3]),
                    )
                    changed = True
                    break
            else:
                out.append(rect)
        merged = out
    return merged


def _min_confidence(text: str, opts: OcrOptions) -> float:
    """The confidence a box's reading needs: higher the shorter it is."""
    chars = len(text.replace(" ", ""))
    if chars >= 5 or opts.short_text_score <= opts.text_score:
        return opts.text_score
    return opts.text_score + (opts.short_text_score - opts.text_score) * (5 - chars) / 4


def _tilted_block(quads: Sequence[np.ndarray], angle: float, min_angle: float) -> bool:
    """Whether the text is tilted by ``min_angle`` degrees or more in a way that
    re-detecting upright could help: two or more boxes at that angle (a
    paragraph, whose lines merge when tilted and close), or a box at that angle
    too short for one line of text (perhaps several merged)."""
    if abs(angle) < min_angle:
        return False
    aligned = _aligned(quads, angle)
    if len(aligned) >= 2:
        return True
    return any(quad_size(q)[0] < 2.5 * quad_size(q)[1] for q in aligned)


def _aligned(quads: Sequence[np.ndarray], angle: float) -> list[np.ndarray]:
    """The quads within 5 degrees of ``angle``."""
    return [q for q in quads if abs(quad_angle(q) - angle) < 5.0]


def _border_colour(image: np.ndarray) -> np.ndarray:
    """Median colour of the outermost pixels (the likely background)."""
    edges = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]]).reshape(-1, 3)
    return np.median(edges, axis=0).astype(np.uint8)


def _box_score(prob: np.ndarray, points: np.ndarray) -> float:
    """Mean probability inside the polygon ``points`` (the contour itself rather than
    its bounding rectangle, so a curved line on a bent page is not diluted)."""
    h, w = prob.shape
    xmin = int(np.clip(np.floor(points[:, 0].min()), 0, w - 1))
    xmax = int(np.clip(np.ceil(points[:, 0].max()), 0, w - 1))
    ymin = int(np.clip(np.floor(points[:, 1].min()), 0, h - 1))
    ymax = int(np.clip(np.ceil(points[:, 1].max()), 0, h - 1))
    mask = np.zeros((ymax - ymin + 1, xmax - xmin + 1), np.uint8)
    shifted = points - np.array([xmin, ymin], np.float32)
    cv2.fillPoly(mask, [np.round(shifted).astype(np.int32)], 1)
    return float(cv2.mean(prob[ymin : ymax + 1, xmin : xmax + 1], mask)[0])


def crop_quad(image: np.ndarray, quad: np.ndarray) -> np.ndarray:
    """The quad's pixels warped upright (tall crops of vertical text are turned 90 degrees)."""
    width, height = quad_size(quad)
    cw, ch = max(1, round(width)), max(1, round(height))
    target = np.array([[0, 0], [cw, 0], [cw, ch], [0, ch]], np.float32)
    matrix = cv2.getPerspectiveTransform(quad.astype(np.float32), target)
    crop = cv2.warpPerspective(
        image, matrix, (cw, ch), borderMode=cv2.BORDER_REPLICATE, flags=cv2.INTER_CUBIC
    )
    if ch >= 1.5 * cw:
        crop = np.ascontiguousarray(np.rot90(crop))
    return crop


def _is_light_on_dark(crop: np.ndarray) -> bool:
    """Whether the crop's ink is lighter than its background (Otsu split; the
    class touching the border more is the background)."""
    gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    if gray.size < 16 or int(gray.max()) - int(gray.min()) < 24:
        return False
    _, binary = cv2.threshold(gray, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    border = np.concatenate([binary[0], binary[-1], binary[:, 0], binary[:, -1]])
    return float(border.mean()) < 0.5 and float(binary.mean()) < 0.5


def _rec_input(bgr: np.ndarray) -> np.ndarray:
    """3 x 48 x W float input of the recogniser (aspect kept, W a multiple of 8, >= 16)."""
    h, w = bgr.shape[:2]
    width = max(16, math.ceil(REC_HEIGHT * w / max(h, 1) / REC_STRIDE) * REC_STRIDE)
    interp = cv2.INTER_AREA if h > REC_HEIGHT else cv2.INTER_LINEAR
    resized = cv2.resize(bgr, (width, REC_HEIGHT), interpolation=interp)
    return (resized.astype(np.float32) * (2.0 / 255.0) - 1.0).transpose(2, 0, 1)


def _cls_input(bgr: np.ndarray) -> np.ndarray:
    ch, cw = CLS_SHAPE
    h, w = bgr.shape[:2]
    width = min(cw, max(1, math.ceil(ch * w / max(h, 1))))
    resized = cv2.resize(bgr, (width, ch)).astype(np.float32) * (2.0 / 255.0) - 1.0
    out = np.zeros((3, ch, cw), np.float32)
    out[:, :, :width] = resized.transpose(2, 0, 1)
    return out


def _ink_columns(rec_input: np.ndarray) -> np.ndarray:
    """Per pixel column of the recogniser's input: 1 with ink, 0 without, and the
    text's height in pixels as the last element (ink: the Otsu class in the minority)."""
    gray = ((rec_input.mean(axis=0) + 1.0) * 127.5).astype(np.uint8)
    _, ink = cv2.threshold(gray, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    if ink.mean() > 0.5:
        ink = 1 - ink
    rows = np.nonzero(ink.sum(axis=1) > 0)[0]
    height = int(rows[-1] - rows[0] + 1) if rows.size else REC_HEIGHT
    return np.append((ink.sum(axis=0) > 0).astype(np.int32), height)


_CLOSING = set(",.;:!?)]}%")
_OPENING = set("([{$#@")


def _no_space_expected(a: str, b: str) -> bool:
    """Pairs that rarely have a space between them in Latin text: before closing
    punctuation, after opening signs, in numbers (1,299 / 3.14) and host names."""
    return (
        b in _CLOSING
        or a in _OPENING
        or (a == "." and (b.isdigit() or b.islower()))
        or (a == "," and b.isdigit())
    )


def _widest_gap(columns: np.ndarray, frame_a: int, frame_b: int) -> float:
    """The widest run of ink-free columns from frame ``frame_a`` to frame ``frame_b``
    (inclusive), as a share of the text's height."""
    height = float(columns[-1])
    segment = columns[frame_a * REC_STRIDE : min((frame_b + 1) * REC_STRIDE, columns.size - 1)]
    widest = run = 0
    for has_ink in segment:
        run = 0 if has_ink else run + 1
        widest = max(widest, run)
    return widest / max(height, 1.0)


_CJK_RANGES = ((0x3000, 0x30FF), (0x3400, 0x9FFF), (0xAC00, 0xD7AF), (0xF900, 0xFAFF))


def _tidy(text: str) -> str:
    """Full-width punctuation (the Chinese-trained recogniser's habit) to ASCII in text
    without CJK characters; runs of spaces to one."""
    if not any(lo <= ord(c) <= hi for c in text for lo, hi in _CJK_RANGES):
        text = unicodedata.normalize("NFKC", text)
    return " ".join(text.split())


def _merge_quads(quads: Sequence[np.ndarray], angle: float) -> np.ndarray:
    """One polygon around several quads of a line, rotated by ``angle``."""
    if len(quads) == 1:
        return quads[0]
    points = np.concatenate(quads).astype(np.float32)
    upright = _rotate_points(points, -angle, (0.0, 0.0))
    x0, y0 = upright[:, 0].min(), upright[:, 1].min()
    x1, y1 = upright[:, 0].max(), upright[:, 1].max()
    corners = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)
    return _rotate_points(corners, angle, (0.0, 0.0))


# -- Tesseract ------------------------------------------------------------------------------


def tesseract_binary() -> str | None:
    return shutil.which("tesseract")


def tesseract_lines(rgb: np.ndarray, opts: OcrOptions) -> list[Line]:
    """Lines from ``tesseract - - tsv`` (words grouped by block, paragraph and line)."""
    binary = tesseract_binary()
    if binary is None:
        raise ModelUnavailable(
            "tesseract", "the tesseract engine is not installed; apt-get install tesseract-ocr"
        )
    ok, png = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:  # pragma: no cover - encoding a valid array does not fail
        raise OpenSightError("could not encode the image for tesseract")
    env = dict(os.environ, OMP_THREAD_LIMIT="1")
    command = [binary, "-", "-", "-l", opts.lang, "--psm", str(opts.psm), "tsv"]
    try:
        done = subprocess.run(
            command, input=png.tobytes(), capture_output=True, timeout=120, env=env, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise OpenSightError("tesseract took longer than 120 s") from exc
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise OpenSightError(f"tesseract failed: {message[-1] if message else done.returncode}")
    return parse_tesseract_tsv(done.stdout.decode("utf-8", "replace"))


def parse_tesseract_tsv(tsv: str) -> list[Line]:
    groups: dict[tuple[int, int, int, int], list[tuple[str, float, int, int, int, int]]] = {}
    reader = io.StringIO(tsv)
    header = reader.readline().rstrip("\n").split("\t")
    col = {name: i for i, name in enumerate(header)}
    needed = ("level", "page_num", "block_num", "par_num", "line_num", "conf", "text")
    if any(name not in col for name in needed):
        return []
    for raw in reader:
        cells = raw.rstrip("\n").split("\t")
        if len(cells) < len(header) or cells[col["level"]] != "5":
            continue
        text = cells[col["text"]].strip()
        conf = float(cells[col["conf"]])
        if not text or conf < 0:
            continue
        key = tuple(int(cells[col[n]]) for n in ("page_num", "block_num", "par_num", "line_num"))
        left, top, width, height = (int(cells[col[n]]) for n in ("left", "top", "width", "height"))
        groups.setdefault(key, []).append((text, conf, left, top, width, height))  # type: ignore[arg-type]
    lines = []
    for words in groups.values():
        text = " ".join(w[0] for w in words)
        conf = float(np.average([w[1] for w in words], weights=[len(w[0]) for w in words])) / 100
        x0 = min(w[2] for w in words)
        y0 = min(w[3] for w in words)
        x1 = max(w[2] + w[4] for w in words)
        y1 = max(w[3] + w[5] for w in words)
        polygon = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)
        lines.append(Line(text, conf, polygon))
    return lines


register(OcrAnalyzer())
