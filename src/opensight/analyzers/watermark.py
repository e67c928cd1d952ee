"""Visible watermarks: tiled patterns, banners, and overlaid text or logos.

Classical image analysis, plus the OCR analyzer's shipped text detector for single marks.

A visible watermark is an alpha blend of a constant-colour mark over the photo,
``out = (1 - a) * photo + a * colour`` (``a``: the mark's coverage times its opacity).
Three detectors look for what such a blend leaves behind, measured on an RGB copy downscaled
(``cv2.INTER_AREA``) to at most ``working_size`` (512) pixels a side; a fourth, the text
detector, runs at ``text_side`` (800).

Per image the result is::

    {"detections": [{"name": "pattern", "confidence": 0.97, "box": [0, 0, 1200, 800]}],
     "watermarked": true}

``name`` is ``pattern``, ``banner``, ``text`` or ``logo``; ``box`` is ``[x, y, w, h]`` in the
image's pixels (the whole image for a pattern); ``confidence`` is 0..1, 0.5 at the decision
threshold. Only detections with ``confidence >= min_confidence`` are returned, and
``watermarked`` is true when there is one.

**pattern** -- a mark repeated on a grid. The grey image is band-passed (minus a Gaussian blur,
sigma 2 px) and locally contrast-normalised; its power spectrum is *whitened* (divided by its
own blur, sigma 3 frequency bins) so the smooth spectrum of the photo flattens while the
spectral lines of an exact repetition stay; the inverse transform is an autocorrelation in
which a tiling shows as sharp peaks on a 2-D lattice. Each peak is scored as an isolated
maximum (its height above the highest mean of two opposite neighbours 4 px away, so ridges
from long straight edges do not count), in robust z units. The best pair of non-collinear
peaks is kept as lattice basis ``d1, d2``; the score is the mean z at ``d1, d2, d1 + d2,
d1 - d2, 2 d1, 2 d2`` (those inside the image): a real lattice has all of them, texture and
text lines (1-D repetitions) do not. Detected when the score is at least
``pattern_threshold``.

**banner** -- a band across the full width at the top or bottom, tinted by a constant colour,
with text on it. For every row boundary in the outer 38 % of the height the rows 2 px on
either side are compared column by column: under a band ``inside = (1 - b) * outside + b *
band_colour``, so ``inside - outside`` is a linear function of ``outside`` (slope ``-b``)
across the whole width. The fit must explain at least 80 % of the difference at 2 px and
60 % at 4 px (the tint persists into the band, unlike a thin line), be a step (the
difference at 2 px and at 4 px similar, unlike a gradient), and have ``0.2 < b < 0.93``
where the row has enough variation to tell (an opaque bar is a letterbox or a dark part of
the photo). The band from that boundary to the image edge (3..25 % of the height) must then
carry a horizontal line of text (found as by **text**, below) in its middle, 0.15..0.7 of
its height tall; letterbox bars, horizons, rows of coins or stars are not banners.

**text** and **logo** -- single marks. Thin bright (or dark) structures are found with a
white (black) top-hat, and normalised by how far each pixel could move towards white
(black): ``rho = (pixel - opening) / (255 - opening)``. Under a white mark of opacity ``a``
this is ``a`` on every stroke *whatever the photo under it*, so the letters of one mark are
plateaus of one level. Components at several levels (0.08..0.45) and two scales are grouped
when they are neighbours along a line (within 2 heights sideways and 0.6 up or down, so the
lines of a paragraph stay apart), of similar height and of the same ``rho`` (within 40 %);
a group of 4 or more in a straight horizontal row (up to 40 degrees in the centre of the
image) is a line of text. Only lines where marks are put are considered -- the corners, along
the bottom and the centre -- and not when the text sits on a board of its own colour (a
sign: the ring just around the letters differs from the ring beyond by more than 25 grey
levels) or when the image is a document (three or more stacked lines of text). The rest is
scored by ``mark_score`` (opaque ink, a board, crowding and uneven levels count against) and
reported from ``text_threshold``. A compact line (width < 2.5 x height: initials in a shape)
is named ``logo``.

**text detector** (option ``text_side``, default 800; 0 turns it off) -- the stroke grouping
above misses most faint marks and logos. PP-OCRv4's DB text detector (the ONNX file shipped
in the ``rapidocr-onnxruntime`` wheel, a core dependency: nothing is downloaded) finds ~75 %
of them, initials inside a logo's ring included, but also scene text. Each box it finds at
``text_side`` px is scored as an overlay by a logistic model (``_watermark_text``) over cues
of an alpha blend rather than scene content: the strokes' top-hat level ``rho`` (an overlay's
opacity, 0.15..0.6; opaque ink reads 0.6..0.9), how well ``out = (1 - a) * background + a *
colour`` fits the strokes in RGB, a board around the text (a sign), the ring's uniformity,
texture inside vs around, where the box is (corner, bottom, centre), its size, shape and
tilt, the detector's own score, and the recogniser's confidence and length (texture that
looks like text reads as junk). A box is reported from ``overlay_threshold`` (logit 0); the
classical marks then count only from ``classical_marks`` confidence (0.6). When the detector
is not installed the classical marks are reported as before.

Limits: see ``docs/analyzers/watermark.md`` for the measured precision and recall per kind.
Single faint marks over busy texture (grass, gravel) are mostly missed; a mark on a flat
area cannot be told from a sign or caption on a flat board except by where it is; logos
without letters are found only when their outline breaks into letter-like parts.

All options are numbers and are read from ``context.options_for("watermark")``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from ..errors import ValidationFailed
from ..images import DecodedImage
from . import _watermark_text
from ._options import numeric_options
from .base import AnalysisContext, Analyzer
from .ocr import ProbabilityMemo, probability_memo
from .registry import register


@dataclass(frozen=True)
class WatermarkOptions:
    working_size: int = 512
    """Longest side of the copy everything is measured on."""
    min_confidence: float = 0.5
    """Detections below this confidence are not reported."""
    pattern_threshold: float = 9.0
    """Mean lattice z-score at which a tiling is detected (confidence 0.5)."""
    banner_fit: float = 0.8
    """Share of the band boundary's difference the tint model must explain."""
    text_min_parts: int = 4
    """Letters (components) a text line needs."""
    board_contrast: float = 25.0
    """Grey levels between the ring around a text line and the ring beyond that make it a sign."""
    text_threshold: float = 1.0
    """``mark_score`` at which a text line is reported as a mark (confidence 0.5)."""
    text_side: int = 800
    """Long side the OCR text detector sees (0: no detector, the classical marks only)."""
    overlay_threshold: float = 0.0
    """Overlay logit at which a detected text box is reported as a mark (confidence 0.5)."""
    classical_marks: float = 0.6
    """With the text detector, classical text/logo marks need at least this confidence."""

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> WatermarkOptions:
        opts = numeric_options("watermark", cls(), options)
        if opts.working_size < 128:
            raise ValidationFailed("watermark option working_size must be >= 128")
        if opts.min_confidence > 1:
            raise ValidationFailed("watermark option min_confidence must be in 0..1")
        if opts.text_side and not 128 <= opts.text_side <= 2048:
            raise ValidationFailed("watermark option text_side must be 0 or 128..2048")
        return opts


DEFAULTS = WatermarkOptions()


class WatermarkAnalyzer(Analyzer):
    name = "watermark"
    version = "1.1.0"
    description = "Visible watermarks: tiled patterns, banners, overlaid text and logos."

    def analyze(
        self, images: Sequence[DecodedImage], context: AnalysisContext
    ) -> list[dict[str, Any]]:
        opts = WatermarkOptions.from_mapping(context.options_for(self.name))
        return [detect(image.rgb, opts, probability_memo(image)) for image in images]


def detect(
    rgb: np.ndarray, opts: WatermarkOptions = DEFAULTS, memo: ProbabilityMemo | None = None
) -> dict[str, Any]:
    """Watermarks in an H x W x 3 uint8 RGB image (see the module docstring); ``memo``: the
    image's ``ocr.probability_memo``, so ``ocr`` and this share the text detector's map."""
    height, width = rgb.shape[:2]
    if min(height, width) < 32:
        return {"detections": [], "watermarked": False}
    small = _downscale(np.ascontiguousarray(rgb[..., :3], dtype=np.uint8), opts.working_size)
    scale = width / small.shape[1]
    gray = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32)

    found: list[tuple[str, float, tuple[float, float, float, float]]] = []
    tiled = _confidence(pattern_score(gray), opts.pattern_threshold, 2.5)
    found.append(("pattern", tiled, (0.0, 0.0, float(gray.shape[1]), float(gray.shape[0]))))

    lines = text_lines(gray, opts)
    if not _is_document(lines):  # a page is all text, but not an overlay
        banner = banner_candidates(small, gray, lines, opts)
        found += banner
        if tiled < opts.min_confidence:  # else each tile would be reported as a mark too
            shown = [b[2] for b in banner if b[1] >= opts.min_confidence]
            marks = _marks(lines, gray.shape, opts, exclude=shown)
            overlays = _overlays(rgb, scale, opts, exclude=shown, memo=memo)
            if overlays is not None:  # the detector ran: classical marks only when sure
                marks = [m for m in marks if m[1] >= opts.classical_marks]
                marks = _suppress(marks + overlays)
            found += marks
    elif tiled < opts.min_confidence and not _detector_sees_page(rgb, opts, memo):
        # Rows of coins, bricks or cells look like a page to the stroke grouping: where the
        # text detector reads no page, its overlay boxes still count (the stroke marks and
        # banners, which the same rows would fool, do not).
        found += _suppress(_overlays(rgb, scale, opts, memo=memo) or [])

    detections = []
    for name, confidence, box in sorted(found, key=lambda f: -f[1]):
        if confidence < opts.min_confidence:
            continue
        x, y, w, h = box
        bx = [round(x * scale), round(y * scale), round(w * scale), round(h * scale)]
        bx[2] = min(bx[2], width - bx[0])
        bx[3] = min(bx[3], height - bx[1])
        detections.append({"name": name, "confidence": round(float(confidence), 3), "box": bx})
    return {"detections": detections, "watermarked": bool(detections)}


# ---------------------------------------------------------------------------- pattern


def pattern_score(gray: np.ndarray) -> float:
    """Mean lattice z-score of the whitened autocorrelation (see the module docstring)."""
    h, w = gray.shape
    if min(h, w) < 48:
        return 0.0
    band = np.asarray(gray - cv2.GaussianBlur(gray, (0, 0), 2.0), dtype=np.float32)
    band = band / np.sqrt(cv2.GaussianBlur(band * band, (0, 0), 10.0) + 1.0)
    band = band - float(band.mean())
    spectrum = cv2.dft(band, flags=cv2.DFT_COMPLEX_OUTPUT)
    power = np.fft.fftshift(spectrum[..., 0] ** 2 + spectrum[..., 1] ** 2)
    smooth = cv2.GaussianBlur(power, (0, 0), 3.0, borderType=cv2.BORDER_REFLECT)
    white = np.fft.ifftshift(power / (smooth + 1e-6 * float(smooth.mean()) + 1e-12))
    white = np.ascontiguousarray(white, dtype=np.float32)
    corr = cv2.idft(
        np.dstack([white, np.zeros_like(white)]), flags=cv2.DFT_COMPLEX_OUTPUT | cv2.DFT_SCALE
    )
    cy, cx = h // 2, w // 2
    shifted = np.fft.fftshift(corr[..., 0])
    corr = np.asarray(shifted / max(float(shifted[cy, cx]), 1e-12), dtype=np.float32)

    peak = corr - _strongest_pair_mean(corr, 4)
    dy, dx = np.mgrid[0:h, 0:w]
    dy -= cy
    dx -= cx
    region = (dy * dy + dx * dx >= 100) & (np.abs(dy) <= 0.8 * cy) & (np.abs(dx) <= 0.8 * cx)
    values = peak[region]
    median = float(np.median(values))
    spread = 1.4826 * float(np.median(np.abs(values - median))) + 1e-12
    z = (peak - median) / spread

    local_max = z == cv2.dilate(z, np.ones((5, 5), np.uint8))
    half = (dy > 0) | ((dy == 0) & (dx > 0))
    ok = local_max & region & half & (np.abs(dy) <= h / 3) & (np.abs(dx) <= w / 3)
    index = np.flatnonzero(ok)
    top = index[np.argsort(-z.ravel()[index])[:24]]
    peaks = [(int(dy.ravel()[i]), int(dx.ravel()[i])) for i in top]

    def z_at(vy: int, vx: int) -> float | None:
        if abs(vy) > 0.8 * cy or abs(vx) > 0.8 * cx or vy * vy + vx * vx < 100:
            return None
        y, x = cy + vy, cx + vx
        return float(z[y - 1 : y + 2, x - 1 : x + 2].max())

    best = 0.0
    for i, (y1, x1) in enumerate(peaks):
        for y2, x2 in peaks[i + 1 :]:
            cross = abs(y1 * x2 - x1 * y2) / (math.hypot(y1, x1) * math.hypot(y2, x2))
            if cross < 0.4:
                continue
            points = (
                (y1, x1),
                (y2, x2),
                (y1 + y2, x1 + x2),
                (y1 - y2, x1 - x2),
                (2 * y1, 2 * x1),
                (2 * y2, 2 * x2),
            )
            scores = [s for s in (z_at(a, b) for a, b in points) if s is not None]
            if len(scores) >= 4:
                best = max(best, float(np.mean(np.minimum(scores, 30.0))))
    return best


def _strongest_pair_mean(arr: np.ndarray, k: int) -> np.ndarray:
    """Per pixel, the highest mean of two opposite neighbours at distance ``k`` (8 directions)."""
    out: np.ndarray | None = None
    half = k // 2
    for sy, sx in ((0, k), (k, 0), (k, k), (k, -k), (half, k), (k, half), (half, -k), (k, -half)):
        mean = 0.5 * (np.roll(arr, (sy, sx), (0, 1)) + np.roll(arr, (-sy, -sx), (0, 1)))
        out = mean if out is None else np.maximum(out, mean)
    assert out is not None
    return out


# ---------------------------------------------------------------------------- text lines

_LEVELS = (0.08, 0.16, 0.3, 0.45)
_SCALES = ((1.0, 7), (0.5, 11))
"""(fraction of the working size, top-hat diameter in px)."""


@dataclass
class _Line:
    """A group of same-level components: a candidate line of text (working-size pixels)."""

    box: tuple[float, float, float, float]
    parts: int
    height: float
    straight: float
    angle: float
    level: float
    level_cv: float
    height_cv: float
    crowding: float
    inner: float
    outer: float


def text_lines(gray: np.ndarray, opts: WatermarkOptions) -> list[_Line]:
    """Candidate text lines in both polarities, at two scales and four plateau levels."""
    lines: list[_Line] = []
    for fraction, diameter in _SCALES:
        g = gray if fraction == 1.0 else _resize(gray, fraction)
        factor = gray.shape[1] / g.shape[1]
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (diameter, diameter))
        opened = cv2.morphologyEx(g, cv2.MORPH_OPEN, kernel)
        closed = cv2.morphologyEx(g, cv2.MORPH_CLOSE, kernel)
        for residual, room in ((g - opened, 255.0 - opened), (closed - g, closed)):
            level_map = residual / np.maximum(room, 12.0)
            for level in _LEVELS:
                for line in _lines_at(g, residual, level_map, level, opts):
                    x, y, w, h = line.box
                    line.box = (x * factor, y * factor, w * factor, h * factor)
                    line.height *= factor
                    lines.append(line)
    return lines


def _lines_at(
    g: np.ndarray, residual: np.ndarray, level_map: np.ndarray, level: float, opts: WatermarkOptions
) -> list[_Line]:
    on = (residual > 5.0) & (level_map > level)
    n, labels, stats, centres = cv2.connectedComponentsWithStats(on.view(np.uint8), connectivity=8)
    if n <= 3:
        return []
    x, y, w, h, area = (stats[:, i] for i in range(5))
    fill = area / np.maximum(w * h, 1)
    keep = (
        (h >= 5)
        & (h <= 0.4 * g.shape[0])
        & (area >= 8)
        & (w <= 4 * h)
        & (fill > 0.08)
        & (fill < 0.95)
    )
    keep[0] = False
    ids = np.flatnonzero(keep)
    if len(ids) < opts.text_min_parts or len(ids) > 1500:
        return []  # none, or texture everywhere
    # Mean level per component, summed over its pixels only (the mask, not the whole image).
    sums = np.bincount(labels[on], weights=level_map[on], minlength=n)
    levels = sums / np.maximum(area, 1).astype(np.float64)
    cx, cy = centres[ids, 0], centres[ids, 1]
    hh = h[ids].astype(np.float64)
    lv = levels[ids]
    hmax = np.maximum(hh[:, None], hh[None, :])
    hmin = np.minimum(hh[:, None], hh[None, :])
    lmax = np.maximum(lv[:, None], lv[None, :])
    lmin = np.minimum(lv[:, None], lv[None, :])
    # Neighbours along a line of text: up to 2 heights apart sideways, 0.6 up or down (so the
    # lines of a paragraph stay apart; text rotated up to about 35 degrees still links).
    near = (np.abs(cx[:, None] - cx[None, :]) < 2.0 * hmax) & (
        np.abs(cy[:, None] - cy[None, :]) < 0.6 * hmax
    )
    link = near & (hmax < 2.2 * hmin) & (lmin > 0.6 * lmax)
    groups = _connected_groups(link)
    out = []
    for members in groups:
        if len(members) < opts.text_min_parts:
            continue
        pts = np.stack([cx[members], cy[members]], axis=1)
        centred = pts - pts.mean(axis=0)
        evals, evecs = np.linalg.eigh(centred.T @ centred / len(members))
        height = float(np.median(hh[members]))
        angle = math.degrees(math.atan2(evecs[1, 1], evecs[0, 1])) % 180.0
        angle = min(angle, 180.0 - angle)
        gx = x[ids][members]
        gy = y[ids][members]
        x0, y0 = float(gx.min()), float(gy.min())
        x1 = float((gx + w[ids][members]).max())
        y1 = float((gy + h[ids][members]).max())
        box = (x0, y0, x1 - x0, y1 - y0)
        near = (cx > x0 - height) & (cx < x1 + height) & (cy > y0 - height) & (cy < y1 + height)
        line = _Line(
            box=box,
            parts=len(members),
            height=height,
            straight=math.sqrt(max(float(evals[0]), 0.0)) / height,
            angle=angle,
            level=float(np.median(lv[members])),
            level_cv=float(lv[members].std() / max(lv[members].mean(), 1e-6)),
            height_cv=float(hh[members].std() / hh[members].mean()),
            crowding=float(near.sum() - len(members)) / len(members),
            inner=0.0,
            outer=0.0,
        )
        if _is_line(line, opts, 40.0):  # the rings are read only for marks (``_marks``)
            line.inner = _ring_mean(g, box, 0.1 * height, 0.35 * height)
            line.outer = _ring_mean(g, box, 0.7 * height, 1.6 * height)
        out.append(line)
    return out


def _connected_groups(link: np.ndarray) -> list[np.ndarray]:
    n = len(link)
    parent = np.arange(n)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = int(parent[i])
        return i

    rows, cols = np.nonzero(np.triu(link, 1))
    for i, j in zip(rows.tolist(), cols.tolist(), strict=True):
        a, b = find(i), find(j)
        if a != b:
            parent[a] = b
    roots = np.array([find(i) for i in range(n)])
    return [np.flatnonzero(roots == r) for r in np.unique(roots)]


def _ring_mean(
    g: np.ndarray, box: tuple[float, float, float, float], near: float, far: float
) -> float:
    """Mean grey level between ``near`` and ``far`` px around ``box`` (clipped to the image)."""
    H, W = g.shape
    x, y, w, h = box
    x0, y0 = int(max(0, x - far)), int(max(0, y - far))
    x1, y1 = int(min(W, x + w + far)), int(min(H, y + h + far))
    region = g[y0:y1, x0:x1]
    keep = np.ones(region.shape, bool)
    ix0, iy0 = int(max(0, x - near)) - x0, int(max(0, y - near)) - y0
    ix1, iy1 = int(min(W, x + w + near)) - x0, int(min(H, y + h + near)) - y0
    keep[max(iy0, 0) : max(iy1, 0), max(ix0, 0) : max(ix1, 0)] = False
    values = region[keep]
    return float(values.mean()) if values.size else float(region.mean()) if region.size else 0.0


def _is_line(line: _Line, opts: WatermarkOptions, max_angle: float = 10.0) -> bool:
    return (
        line.parts >= opts.text_min_parts
        and line.straight <= 0.2
        and line.height_cv <= 0.45
        and line.level_cv <= 0.25
        and line.crowding <= 1.0
        and line.angle <= max_angle
    )


def _is_document(lines: list[_Line]) -> bool:
    """Three or more horizontal lines of similar height stacked above each other: a page."""
    rows = [
        (ln.box, ln.height)
        for ln in lines
        if ln.parts >= 6
        and ln.straight <= 0.2
        and ln.angle <= 5
        and ln.level_cv <= 0.25
        and ln.box[2] >= 8 * ln.height
    ]
    return _stacked(rows)


def _detector_sees_page(
    rgb: np.ndarray, opts: WatermarkOptions, memo: ProbabilityMemo | None
) -> bool:
    """Whether the text detector confirms a page: three stacked, level, long text boxes.

    The stroke grouping also finds "lines" in rows of coins, bricks or cells; a page is
    only a page when the detector reads its lines too (the map is shared with ``ocr`` and
    with the overlay scoring, so this costs a contour pass). Without the detector the
    stroke grouping's word stands."""
    if opts.text_side <= 0 or not _watermark_text.detector_available():
        return True
    rows = []
    for tb in _watermark_text.detect_boxes(rgb, int(opts.text_side), memo=memo):
        short, long = sorted(_watermark_text.quad_sides(tb.quad))
        tilt = min(abs(tb.angle) % 180.0, 180.0 - abs(tb.angle) % 180.0)
        if long >= 4 * short and tilt <= 5:
            rows.append((tb.box, tb.box[3]))
    return _stacked(rows)


def _stacked(rows: list[tuple[tuple[float, float, float, float], float]]) -> bool:
    """Three or more of ``(box, height)`` rows of similar height, one below the other."""
    rows = sorted(rows, key=lambda row: row[0][1])
    for i, first in enumerate(rows):
        stack = [first]
        for row in rows[i + 1 :]:
            (lx, ly, lw, _), lh = stack[-1]
            (bx, by, bw, _), bh = row
            gap = by - ly
            overlap = min(lx + lw, bx + bw) - max(lx, bx)
            if (
                0.6 < bh / max(lh, 1e-6) < 1.6
                and 0.8 * lh < gap < 4.0 * lh
                and overlap > 0.3 * min(lw, bw)
            ):
                stack.append(row)
        if len(stack) >= 3:
            return True
    return False


def _marks(
    lines: list[_Line],
    shape: tuple[int, ...],
    opts: WatermarkOptions,
    exclude: Sequence[tuple[float, float, float, float]] = (),
) -> list[tuple[str, float, tuple[float, float, float, float]]]:
    found: list[tuple[str, float, tuple[float, float, float, float]]] = []
    for line in lines:
        zone = _watermark_text.mark_zone(line.box, shape)
        if zone is None or not _is_line(line, opts, 40.0 if zone == "centre" else 10.0):
            continue
        if abs(line.inner - line.outer) > opts.board_contrast:
            continue  # a sign: the letters sit on a board of their own colour
        if any(_inside(line.box, other) for other in exclude):
            continue
        confidence = _confidence(mark_score(line), opts.text_threshold, 0.5)
        name = "logo" if line.box[2] < 2.5 * line.box[3] else "text"
        found.append((name, confidence, line.box))
    return _suppress(found)


def _overlays(
    rgb: np.ndarray,
    scale: float,
    opts: WatermarkOptions,
    exclude: Sequence[tuple[float, float, float, float]] = (),
    memo: ProbabilityMemo | None = None,
) -> list[tuple[str, float, tuple[float, float, float, float]]] | None:
    """Text boxes of the OCR detector scored as overlays (boxes in working-size pixels);
    None when the detector is off or not installed."""
    if opts.text_side <= 0 or not _watermark_text.detector_available():
        return None
    found = []
    for tb, logit in _watermark_text.overlay_boxes(rgb, int(opts.text_side), memo):
        confidence = _confidence(logit, opts.overlay_threshold, 1.0)
        box = (tb.box[0] / scale, tb.box[1] / scale, tb.box[2] / scale, tb.box[3] / scale)
        if any(_inside(box, other) for other in exclude):
            continue
        short, long = sorted(_watermark_text.quad_sides(tb.quad))
        name = "logo" if long < 2.5 * short else "text"
        found.append((name, confidence, box))
    return found


def mark_score(line: _Line) -> float:
    """How much a text line looks like an overlay rather than scene text or texture.

    More letters packed along the line count for it; a high plateau level (opaque ink: signs
    and pages have 0.5..0.8, overlays 0.15..0.6), a board around the letters, crowding by
    other components and uneven levels count against it. The terms come from a logistic fit
    on the generated set (seed 1); the weights and ``text_threshold`` from a grid search for
    the best recall at <= 4 % false positives on seeds 0 and 1 (see
    docs/analyzers/watermark.md)."""
    return (
        1.7 * math.log(line.parts)
        - 0.6 * math.log(max(line.box[2] / line.height, 1.0))
        - (line.level - 0.3) / 0.24
        - min(abs(line.inner - line.outer), 60.0) / 24.0
        - 1.2 * line.crowding
        - line.level_cv / 0.125
    )


def _inside(
    box: tuple[float, float, float, float], outer: tuple[float, float, float, float]
) -> bool:
    x, y, w, h = box
    cx, cy = x + w / 2, y + h / 2
    ox, oy, ow, oh = outer
    return ox <= cx <= ox + ow and oy <= cy <= oy + oh


def _suppress(
    found: list[tuple[str, float, tuple[float, float, float, float]]],
) -> list[tuple[str, float, tuple[float, float, float, float]]]:
    """Keep the most confident of overlapping detections (IoU > 0.3 or one inside the other)."""
    kept: list[tuple[str, float, tuple[float, float, float, float]]] = []
    for item in sorted(found, key=lambda f: -f[1]):
        if all(_iou(item[2], k[2]) <= 0.3 and not _inside(item[2], k[2]) for k in kept):
            kept.append(item)
    return kept


def _iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


# ---------------------------------------------------------------------------- banner


def banner_candidates(
    rgb: np.ndarray, gray: np.ndarray, lines: list[_Line], opts: WatermarkOptions
) -> list[tuple[str, float, tuple[float, float, float, float]]]:
    """Full-width tinted bands at the top or bottom with a line of text on them."""
    H, W = gray.shape
    image = cv2.blur(rgb.astype(np.float32), (3, 1))
    best: tuple[float, tuple[float, float, float, float]] | None = None
    # Only the boundaries a band may start at are fitted (the outer 38 % of the height).
    spans = {
        "bottom": (int(0.62 * H), math.ceil(0.97 * H)),
        "top": (int(0.03 * H), math.ceil(0.38 * H)),
    }
    for side, (lo, hi) in spans.items():
        fit2, fit4 = _row_fits(image, 2, side, lo, hi + 1), _row_fits(image, 4, side, lo, hi + 1)
        ys = fit2["y"]
        rms4 = np.full_like(fit2["rms"], np.inf)
        expl4 = np.zeros_like(fit2["rms"])
        slope4 = np.full_like(fit2["rms"], 9.0)
        at = np.searchsorted(ys, fit4["y"])  # fit4's boundaries are a subset of fit2's
        rms4[at] = fit4["rms"]
        expl4[at] = fit4["explained"]
        slope4[at] = fit4["slope"]
        sharp = fit2["rms"] / np.maximum(rms4, 1e-6)
        where = (
            (ys > 0.62 * H) & (ys < 0.97 * H)
            if side == "bottom"
            else (ys < 0.38 * H) & (ys > 0.03 * H)
        )
        slope = fit2["slope"]
        # A tint, not an opaque bar (letterbox, a dark region of the photo): 0.2 < b < 0.93.
        tinted = np.where(
            fit2["spread"] >= 12.0,
            (slope < -0.2) & (slope > -0.93) & (np.abs(slope - slope4) < 0.25),
            True,
        )
        ok = (
            where
            & (fit2["rms"] > 8.0)
            & (fit2["explained"] > opts.banner_fit)
            & (expl4 > opts.banner_fit - 0.2)
            & (sharp > 0.7)
            & (sharp < 1.3)
            & tinted
        )
        score = np.where(ok, fit2["explained"] * np.minimum(1.0, fit2["rms"] / 30.0), 0.0)
        for i in np.argsort(-score)[:3]:
            if score[i] <= 0:
                break
            y = float(ys[i])
            band = (0.0, y, float(W), H - y) if side == "bottom" else (0.0, 0.0, float(W), y)
            if not 0.03 * H <= band[3] <= 0.25 * H:
                continue
            # A line of text on the band, in proportion to it (not a row of stars or coins).
            middle = (0.0, band[1] + 0.1 * band[3], float(W), 0.8 * band[3])
            text = [
                ln
                for ln in lines
                if _is_line(ln, opts, 10.0)
                and _inside(ln.box, middle)
                and 0.15 * band[3] <= ln.height <= 0.7 * band[3]
            ]
            if not text:
                continue
            strength = float(score[i]) * min(1.0, max(ln.parts for ln in text) / 6.0)
            confidence = 0.5 + 0.5 * max(0.0, min(1.0, (strength - 0.4) / 0.5))
            if best is None or confidence > best[0]:
                best = (confidence, band)
    return [] if best is None else [("banner", best[0], best[1])]


def _row_fits(image: np.ndarray, gap: int, side: str, lo: int, hi: int) -> dict[str, np.ndarray]:
    """Per row boundary ``y`` in ``lo..hi - 1``: how well ``inside - outside = a_c + slope *
    outside`` fits across the width (one slope, an offset per channel), with outside ``gap``
    rows above (side ``bottom``: the band is below) or below (side ``top``)."""
    H, W = image.shape[:2]
    y0, y1 = max(gap, lo), max(max(gap, lo), min(H - gap + 1, hi))
    ys = np.arange(y0, y1)
    above = image[y0 - gap : y1 - gap]
    below = image[y0 + gap - 1 : y1 + gap - 1]
    outside, inside = (above, below) if side == "bottom" else (below, above)
    n = W * 3
    diff = inside - outside
    s_d = diff.sum(axis=1)  # (rows, 3) per-channel sums over the width
    s_o = outside.sum(axis=1)
    s_dd = np.einsum("ijk,ijk->i", diff, diff)
    s_oo = np.einsum("ijk,ijk->i", outside, outside)
    s_do = np.einsum("ijk,ijk->i", diff, outside)
    c_do = s_do - (s_d * s_o).sum(axis=1) / W  # centred per channel
    c_oo = s_oo - (s_o * s_o).sum(axis=1) / W
    c_dd = s_dd - (s_d * s_d).sum(axis=1) / W
    slope = np.clip(c_do / np.maximum(c_oo, 1e-6), -1.2, 0.2)
    residual = np.maximum(c_dd - 2.0 * slope * c_do + slope * slope * c_oo, 0.0)
    return {
        "y": ys,
        "slope": slope,
        "rms": np.sqrt(s_dd / n),
        "explained": 1.0 - residual / np.maximum(s_dd, 1e-6),
        "spread": np.sqrt(np.maximum(c_oo, 0.0) / n),
    }


# ---------------------------------------------------------------------------- helpers


def _confidence(score: float, threshold: float, scale: float) -> float:
    """Logistic: 0.5 at ``threshold``, about 0.73 one ``scale`` above it."""
    return 1.0 / (1.0 + math.exp(-(score - threshold) / scale))


def _resize(gray: np.ndarray, fraction: float) -> np.ndarray:
    h, w = gray.shape
    size = (max(1, round(w * fraction)), max(1, round(h * fraction)))
    return cv2.resize(gray, size, interpolation=cv2.INTER_AREA)


def _downscale(rgb: np.ndarray, working_size: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    scale = working_size / max(h, w)
    if scale >= 1.0:
        return rgb
    k = int(1.0 / scale)
    if k >= 2 and h >= k and w >= k:
        rgb = cv2.resize(
            np.ascontiguousarray(rgb[: h // k * k, : w // k * k]),
            (w // k, h // k),
            interpolation=cv2.INTER_AREA,
        )
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if (rgb.shape[1], rgb.shape[0]) != size:
        rgb = cv2.resize(np.ascontiguousarray(rgb), size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(rgb)


register(WatermarkAnalyzer())
