"""Overlaid text and logos found by the OCR text detector (for the ``watermark`` analyzer).

PP-OCRv4's DB detector (shipped in the ``rapidocr-onnxruntime`` wheel, the same one the
``ocr`` analyzer runs) finds faint, thin-stroke text far more reliably than hand-made stroke
grouping: at 800 px it finds about 75 % of the generated single marks, logo initials
included (the classical grouping about 35 %). It finds scene text too, so every box is described by cues that tell an *overlay* from text that
belongs to the scene (see :func:`box_features`) and scored by a logistic model fitted on the
generated set (seeds 0..2; ``bench/watermark_set.py``), never on the reported seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from ..errors import ModelUnavailable

if TYPE_CHECKING:
    from .ocr import ProbabilityMemo

DET_SIDE = 800
"""Long side the detector sees (small images are upscaled at most 2x); the analyzer passes
its ``text_side`` option."""


@dataclass
class TextBox:
    """One detected text box, in the pixels of the image given to :func:`detect_boxes`."""

    quad: np.ndarray
    box: tuple[float, float, float, float]
    score: float
    angle: float


def detector_available() -> bool:
    """Whether the OCR detector can run (its ONNX files ship in the rapidocr wheel)."""
    try:
        from .ocr import rapid_engine

        rapid_engine()
    except (ModelUnavailable, ImportError, OSError):
        return False
    return True


def detect_boxes(
    rgb: np.ndarray,
    side: int = DET_SIDE,
    thresh: float = 0.3,
    box_thresh: float = 0.5,
    memo: ProbabilityMemo | None = None,
) -> list[TextBox]:
    """DB text boxes of ``rgb`` (H x W x 3 uint8), detected at ``side`` px on the long side.

    The probability map is the ``ocr`` analyzer's (same canvas and scale rules), taken from
    ``memo`` (the image's ``ocr.probability_memo``) when ``ocr`` already computed it at
    this scale -- its coarse look at a large photo is the same 800 px map."""
    from .ocr import _box_score, order_quad, rapid_engine

    engine = rapid_engine()
    h, w = rgb.shape[:2]
    scale = min(2.0, side / max(h, w))
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    prob, margin = engine.probability(bgr, scale, memo)
    mask = cv2.dilate((prob > thresh).astype(np.uint8), np.ones((2, 2), np.uint8))
    contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    out: list[TextBox] = []
    for contour in contours[:300]:
        rect = cv2.minAreaRect(contour)
        if min(rect[1]) < 3:
            continue
        score = _box_score(prob, contour.reshape(-1, 2).astype(np.float32))
        if score < box_thresh:
            continue
        (cx, cy), (bw, bh), theta = rect
        grow = bw * bh * 1.5 / max(2.0 * (bw + bh), 1e-6)
        pts = (cv2.boxPoints(((cx, cy), (bw + 2 * grow, bh + 2 * grow), theta)) - margin) / scale
        pts[:, 0] = np.clip(pts[:, 0], 0, w)
        pts[:, 1] = np.clip(pts[:, 1], 0, h)
        quad = order_quad(pts)
        x0, y0 = float(pts[:, 0].min()), float(pts[:, 1].min())
        x1, y1 = float(pts[:, 0].max()), float(pts[:, 1].max())
        if x1 - x0 < 4 or y1 - y0 < 4:
            continue
        top = quad[1] - quad[0]
        angle = math.degrees(math.atan2(float(top[1]), float(top[0])))
        out.append(TextBox(quad, (x0, y0, x1 - x0, y1 - y0), score, angle))
    return out


FEATURES = (
    "score",
    "corner",
    "bottom",
    "centre",
    "nowhere",
    "border",
    "height",
    "aspect",
    "tilt",
    "board",
    "ring_std",
    "level",
    "level_cv",
    "ink",
    "alpha_fit",
    "alpha_slope",
    "bg_std",
    "texture",
)


def mark_zone(box: tuple[float, float, float, float], shape: tuple[int, ...]) -> str | None:
    """Where marks are put: a corner, along the bottom, or the centre (else None); the
    classical detector in ``watermark`` uses the same zones."""
    H, W = shape[:2]
    x, y, w, h = box
    cx, cy = (x + w / 2) / W, (y + h / 2) / H
    if (cx < 0.35 or cx > 0.65) and (cy < 0.25 or cy > 0.75):
        return "corner"
    if cy > 0.8 and 0.2 < cx < 0.8:
        return "bottom"
    if 0.3 < cx < 0.7 and 0.3 < cy < 0.7:
        return "centre"
    return None


def _ring(
    g: np.ndarray, box: tuple[float, float, float, float], near: float, far: float
) -> np.ndarray:
    H, W = g.shape[:2]
    x, y, w, h = box
    x0, y0 = int(max(0, x - far)), int(max(0, y - far))
    x1, y1 = int(min(W, x + w + far)), int(min(H, y + h + far))
    region = g[y0:y1, x0:x1]
    keep = np.ones(region.shape[:2], bool)
    ix0, iy0 = int(max(0, x - near)) - x0, int(max(0, y - near)) - y0
    ix1, iy1 = int(min(W, x + w + near)) - x0, int(min(H, y + h + near)) - y0
    keep[max(iy0, 0) : max(iy1, 0), max(ix0, 0) : max(ix1, 0)] = False
    values = region[keep]
    return values if values.size else region.reshape(-1)


def box_features(
    rgb: np.ndarray, gray: np.ndarray, grad: np.ndarray, tb: TextBox
) -> dict[str, float]:
    """Cues that tell an alpha-blended overlay from scene text and texture (``FEATURES``).

    ``rgb``/``gray``/``grad`` are the image the box was detected in (float32 grey, gradient
    magnitude)."""
    H, W = gray.shape
    x, y, w, h = tb.box
    side = float(min(quad_sides(tb.quad)))
    longest = float(max(quad_sides(tb.quad)))
    zone = mark_zone(tb.box, gray.shape)
    f: dict[str, float] = {
        "score": tb.score,
        "corner": float(zone == "corner"),
        "bottom": float(zone == "bottom"),
        "centre": float(zone == "centre"),
        "nowhere": float(zone is None),
        "border": min(x, y, W - x - w, H - y - h) / min(H, W),
        "height": side / min(H, W),
        "aspect": math.log(max(longest / max(side, 1.0), 1.0)),
        "tilt": min(abs(tb.angle) % 180.0, 180.0 - abs(tb.angle) % 180.0) / 45.0,
    }
    inner = _ring(gray, tb.box, 0.05 * side, 0.3 * side)
    outer = _ring(gray, tb.box, 0.7 * side, 1.6 * side)
    f["board"] = min(abs(float(inner.mean()) - float(outer.mean())), 80.0) / 20.0
    f["ring_std"] = min(float(inner.std()), 60.0) / 20.0
    # Strokes against their local background: a white (black) top-hat normalised by the room
    # left towards white (black); under an overlay of opacity a this is a on every stroke.
    pad = int(0.5 * side) + 2
    x0, y0 = max(0, int(x) - pad), max(0, int(y) - pad)
    x1, y1 = min(W, int(x + w) + pad), min(H, int(y + h) + pad)
    crop = gray[y0:y1, x0:x1]
    colour = rgb[y0:y1, x0:x1].astype(np.float32)
    inside = np.zeros(crop.shape, bool)
    inside[int(y) - y0 : int(y + h) - y0, int(x) - x0 : int(x + w) - x0] = True
    k = max(3, int(0.45 * side) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    opened = cv2.morphologyEx(crop, cv2.MORPH_OPEN, kernel)
    closed = cv2.morphologyEx(crop, cv2.MORPH_CLOSE, kernel)
    best: tuple[float, np.ndarray, np.ndarray, np.ndarray] | None = None
    for residual, room, background in (
        (crop - opened, 255.0 - opened, opened),
        (closed - crop, closed, closed),
    ):
        r = residual[inside]
        strength = float(np.sort(r)[-max(1, r.size // 10) :].mean()) if r.size else 0.0
        if best is None or strength > best[0]:
            best = (strength, residual, room, background)
    assert best is not None
    _, residual, room, background = best
    r = residual[inside]
    cut = max(6.0, 0.5 * float(np.percentile(r, 97))) if r.size else 6.0
    strokes = inside & (residual > cut)
    n = int(strokes.sum())
    f["ink"] = n / max(int(inside.sum()), 1)
    if n >= 8:
        rho = residual[strokes] / np.maximum(room[strokes], 12.0)
        top = np.sort(rho)[n // 2 :]
        level = float(np.median(top))
        f["level"] = level
        f["level_cv"] = min(float(top.std()) / max(level, 1e-3), 2.0)
        # out = (1 - a) * background + a * colour on the strokes: one slope across channels.
        bright = background is opened
        op = cv2.MORPH_OPEN if bright else cv2.MORPH_CLOSE
        bg = cv2.morphologyEx(colour, op, kernel)
        core = strokes & (residual >= np.percentile(residual[strokes], 50))
        o = colour[core]
        b = bg[core]
        b_c = b - b.mean(axis=0)
        o_c = o - o.mean(axis=0)
        var_b = float((b_c * b_c).sum())
        slope = float((b_c * o_c).sum()) / max(var_b, 1e-6)
        resid = o_c - slope * b_c
        total = float((o_c * o_c).sum())
        f["alpha_fit"] = 1.0 - float((resid * resid).sum()) / max(total, 1e-6)
        f["alpha_slope"] = max(-1.0, min(2.0, slope))
        f["bg_std"] = min(math.sqrt(var_b / max(len(b), 1) / 3.0), 60.0) / 20.0
    else:
        f.update(level=0.0, level_cv=2.0, alpha_fit=0.0, alpha_slope=0.0, bg_std=0.0)
    ring_grad = _ring(grad, tb.box, 0.3 * side, 1.5 * side)
    box_grad = grad[int(y) : int(y + h) + 1, int(x) : int(x + w) + 1]
    f["texture"] = math.log((float(ring_grad.mean()) + 1.0) / (float(box_grad.mean()) + 1.0))
    return f


def quad_sides(quad: np.ndarray) -> tuple[float, float]:
    return (
        float(np.linalg.norm(quad[1] - quad[0])),
        float(np.linalg.norm(quad[2] - quad[1])),
    )


# Logistic model over ``FEATURES`` + ("rec", "chars"): (mean, std, weight) per feature, then
# the bias. Printed by ``python -m bench.fit_watermark_text`` (fitted on seeds 0, 1 and 2 of
# bench/watermark_set.py; the reported seed, 3, is never used).
MODEL: dict[str, tuple[float, float, float]] = {
    "score": (0.8781, 0.08639, 1.027),
    "corner": (0.2626, 0.44, 0.530),
    "bottom": (0.05476, 0.2275, 0.226),
    "centre": (0.3766, 0.4845, 0.195),
    "nowhere": (0.3061, 0.4609, -0.823),
    "border": (0.1141, 0.1244, -0.322),
    "height": (0.1084, 0.07458, -0.673),
    "aspect": (1.409, 1.006, -0.957),
    "tilt": (0.06706, 0.1316, 0.306),
    "board": (0.8615, 0.8576, -0.378),
    "ring_std": (1.677, 0.8058, -0.007),
    "level": (0.6204, 0.1972, -1.038),
    "level_cv": (0.1169, 0.0957, -0.178),
    "ink": (0.2334, 0.1018, 0.247),
    "alpha_fit": (0.3523, 0.2328, 0.756),
    "alpha_slope": (0.6842, 0.396, 0.163),
    "bg_std": (0.7295, 0.4509, -0.387),
    "texture": (-0.6371, 0.6269, 0.342),
    "rec": (0.6719, 0.3965, 2.462),
    "chars": (1.859, 1.334, -1.283),
}
BIAS = -2.207


def overlay_boxes(
    rgb: np.ndarray, side: int = DET_SIDE, memo: ProbabilityMemo | None = None
) -> list[tuple[TextBox, float]]:
    """Every DB text box of ``rgb`` with its overlay logit (> 0: more likely an overlay).

    Boxes are in ``rgb``'s pixels; features are measured on a copy at the detector's scale
    (at most ``side`` px on the long side). ``memo``: see :func:`detect_boxes`."""
    from .ocr import OcrOptions, _Crop, crop_quad, rapid_engine

    boxes = detect_boxes(rgb, side, memo=memo)
    if not boxes:
        return []
    h, w = rgb.shape[:2]
    scale = min(1.0, side / max(h, w))
    small = (
        cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        if scale < 1
        else rgb
    )
    gray = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32)
    grad = cv2.magnitude(cv2.Sobel(gray, cv2.CV_32F, 1, 0), cv2.Sobel(gray, cv2.CV_32F, 0, 1))
    bgr = np.ascontiguousarray(small[..., ::-1])
    engine, rec_options = rapid_engine(), OcrOptions()
    out = []
    for tb in boxes:
        scaled = TextBox(tb.quad * scale, tuple(v * scale for v in tb.box), tb.score, tb.angle)
        f = box_features(small, gray, grad, scaled)
        crop = _Crop(0, crop_quad(bgr, scaled.quad))
        engine.recognise([crop], rec_options)
        f["rec"] = crop.confidence
        f["chars"] = math.log1p(len(crop.text.strip()))
        out.append((tb, overlay_logit(f)))
    return out


def overlay_logit(f: dict[str, float]) -> float:
    return BIAS + sum(wt * (f[k] - mu) / sd for k, (mu, sd, wt) in MODEL.items())
