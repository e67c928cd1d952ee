"""Classical image-quality checks: blur (focus and motion), exposure, noise, contrast,
JPEG blocking, extreme close-ups and resolution.

Most things are measured on a grey copy downscaled (``cv2.INTER_AREA``) so its
longest side is at most ``working_size`` pixels: what matters is what a viewer
or a recogniser sees at a normal size, and it keeps a 1 MP image at a few ms.
JPEG blocking and noise are measured on the full-size luma (the 8 x 8 grid only
exists there; resampling hides noise); close-ups on 128 and 32 px thumbnails.

Per image the result is ``{"score", "label", "issues", "measures"}``:

* ``score`` -- 0..1, higher is better: 0.8 x the worst of seven components
  (sharpness, exposure, noise, contrast, blocking, close-up, resolution) + 0.2 x
  their mean. Each component is 0.5 exactly at its issue's threshold, so an
  image with any issue scores below 0.6. ``label`` -- ``low`` (< 0.4),
  ``medium`` (< 0.7) or ``high``: an image with an issue is never ``high``.
* ``issues`` -- any of ``blurry``, ``dark``, ``bright``, ``noisy``,
  ``low_contrast``, ``blocky``, ``close``, ``low_resolution``; each is only
  reported when clearly true. ``blurry``, ``dark``, ``bright`` and ``close``
  are CloudSight's words for the same things.

How each issue is decided (option names in brackets, defaults in ``DEFAULTS``;
``docs/analyzers/quality.md`` has the calibration and the measured precision
and recall):

* **blurry** -- out of focus *or* moved. Focus: the grey image is cut into
  blocks of ``block`` px; in each block with some contrast the RMS of the
  Laplacian is divided by the block's standard deviation, a contrast-free
  measure of how much fine detail its edges have. ``sharpness`` is the mean of
  the sharpest ``peak_fraction`` of those blocks, so a sharp subject on a
  deliberately blurred background (shallow depth of field) is sharp; below
  ``blur_threshold`` the image is blurry. Motion: a moving camera smears detail
  along one direction only, and edges across it stay crisp enough to fool the
  focus measure. So the second derivative is also taken along 12 directions
  (0, 15, ... 165 degrees, from the Hessian summed over the textured blocks):
  ``detail_min`` is the square root of the weakest direction's energy over the
  blocks' variance, ``isotropy`` the weakest energy over the strongest.
  Blurry when ``detail_min * isotropy ** 0.25 < motion_detail`` *and*
  ``isotropy < motion_isotropy``: detail is missing along one direction and
  present across it. Not reported on dark or bright images (the exposure is
  the thing to fix, and detail measures are unreliable when the luma is
  squeezed into a few levels) nor on close-ups (``close`` says why there is
  no detail).
* **dark** -- the median luma is below ``dark_median`` *and* the bright tail
  (99.5th percentile) is below ``dark_tail``: a night sky with a moon or a
  fundus photo on black has a bright tail and is not dark.
* **bright** -- the median luma is above ``bright_median`` *and* the dark tail
  (0.5th percentile) is above ``bright_tail``: a white page with black text is
  not bright.
* **noisy** -- Immerkaer's noise estimate, taken in the calmest blocks
  (``noise_quantile``) so texture is not mistaken for noise, is above
  ``noise_threshold`` grey levels as seen at the working size. It is measured
  on a strided copy of the full-size luma (striding keeps white noise white;
  resampling would smooth it away) and divided by the downscale factor.
  Blocks with clipped pixels are left out: clipping hides noise.
* **low_contrast** -- the 1st..99th percentile luma range is below
  ``low_contrast_range`` (not reported with dark, bright or close, which
  explain it).
* **blocky** -- JPEG blocking, on the full-size luma: the mean absolute step
  between neighbouring pixels (each capped at 16 grey levels, so edges do not
  swamp it) is folded by position modulo 8. ``blockiness`` is the step across
  the grid lines minus the largest step at any other position, over
  ``(mean other step + 0.5) ** 0.3``, in the direction (rows or columns) where
  it is larger; blocky above ``blockiness_threshold``. The grid is taken where
  a decoder puts it (from the top-left corner), so a JPEG cropped off its grid
  or resized after decoding is not measured.
* **close** -- CloudSight's "the subject fills the frame so that nothing can
  be recognised": the frame is one surface, with no layout. Measured on a
  128 px grey thumbnail cut into an 8-cell grid (along the longest side) and
  on a 32 px one:

  - ``layout``: the standard deviation of the cells' mean colour (luma and Lab
    chroma, in grey levels) over the exposure headroom
    ``max(16, min(mean, 255 - mean))`` -- how much the frame's regions differ;
  - ``thumbnail_sharpness``: RMS Laplacian over standard deviation of the
    32 px thumbnail. Any normal photo, even a blurred one, shows crisp region
    edges at that size; a surface magnified 10x or more (a lens too close to
    focus, or a digital zoom) is soft even there;
  - ``structure = sqrt(layout) * thumbnail_sharpness``;
  - ``texture_ratio``: layout over the mean within-cell standard deviation,
    and ``texture_evenness``: the 10th percentile of the cells' standard
    deviations over their mean.

  Close when the frame is *magnified* (``structure < close_structure`` and
  ``layout < close_layout``, or ``thumbnail_sharpness < close_soft``), *plain*
  (``layout < close_plain``), or *a texture filling the frame*
  (``texture_ratio < close_texture_ratio`` and ``texture_evenness >=
  close_texture_evenness``: grass, gravel, a brick wall; star fields, coins on
  a cloth and documents have empty parts and are not). Not assessed on dark
  or bright images, on flat ones (standard deviation below 0.25 at 128 px:
  that is ``low_contrast``) or below 16 px.
* **low_resolution** -- fewer than ``min_pixels`` pixels.

All options are numbers and are read from ``context.options_for("quality")``.
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
from ._options import numeric_options
from .base import AnalysisContext, Analyzer
from .registry import register

_LUMA_OPTIONS = {"dark_median", "dark_tail", "bright_median", "bright_tail", "low_contrast_range"}


@dataclass(frozen=True)
class QualityOptions:
    working_size: int = 640
    """Longest side of the grey copy everything is measured on."""
    block: int = 32
    """Block size (px at the working size) for local sharpness and noise."""
    blur_threshold: float = 1.8
    peak_fraction: float = 0.05
    """Share of the textured blocks whose sharpness must be high (the subject)."""
    texture_fraction: float = 0.025
    """A block counts for sharpness when its std is above this share of the luma range."""
    motion_detail: float = 0.45
    """Motion blur: ``detail_min * isotropy ** 0.25`` below this..."""
    motion_isotropy: float = 0.35
    """...and ``isotropy`` (weakest over strongest direction) below this."""
    dark_median: float = 48.0
    dark_tail: float = 80.0
    bright_median: float = 207.0
    bright_tail: float = 175.0
    noise_threshold: float = 12.0
    noise_quantile: float = 0.2
    low_contrast_range: float = 32.0
    blockiness_threshold: float = 1.25
    """JPEG blocking: grid-line step excess (grey levels, texture-discounted) above this."""
    close_structure: float = 1.2
    """Magnified close-up: ``sqrt(layout) * thumbnail_sharpness`` below this..."""
    close_layout: float = 0.3
    """...with ``layout`` below this; or ``thumbnail_sharpness`` below ``close_soft``."""
    close_plain: float = 0.05
    """Plain close-up: ``layout`` below this."""
    close_soft: float = 1.0
    close_texture_ratio: float = 0.3
    """Texture close-up: ``texture_ratio`` below this..."""
    close_texture_evenness: float = 0.75
    """...and ``texture_evenness`` at least this."""
    min_pixels: int = 40_000
    """Below this many pixels (about 200 x 200) an image is low resolution."""

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> QualityOptions:
        opts = numeric_options("quality", cls(), options)
        for key in _LUMA_OPTIONS:
            if getattr(opts, key) > 255:
                raise ValidationFailed(f"quality option {key!r} is a luma level, 0..255")
        if opts.working_size < 16 or opts.block < 4:
            raise ValidationFailed("quality options working_size >= 16 and block >= 4 are required")
        return opts


DEFAULTS = QualityOptions()

_NOISE_KERNEL = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
_NOISE_SCALE = math.sqrt(math.pi / 2.0) / 6.0
_D2 = np.array([1, -2, 1], np.float32)
_S2 = np.array([1, 2, 1], np.float32)
_D1 = np.array([-1, 0, 1], np.float32)
_ANGLES = [(math.cos(t), math.sin(t)) for t in np.deg2rad(np.arange(0.0, 180.0, 15.0))]
_MIN_SIDE = 8
"""Below this (working) side, blur, noise and contrast are not assessed."""
_CLOSE_MIN_SIDE = 16
"""Below this (working) side, close-ups are not assessed."""
_GRID = 8
"""Cells along the longest side of the layout grid."""
_STEP_CLIP = np.uint8(16)
"""Steps between neighbouring pixels count up to this many grey levels for blocking."""
_LINES_SAMPLED = 512
"""Blocking is measured on at most about this many rows (and as many columns)."""


class QualityAnalyzer(Analyzer):
    name = "quality"
    version = "1.1.0"
    description = (
        "Blur (focus and motion), exposure, noise, contrast, JPEG blocking, close-ups "
        "and resolution checks (classical, fast)."
    )

    def analyze(
        self, images: Sequence[DecodedImage], context: AnalysisContext
    ) -> list[dict[str, Any]]:
        opts = QualityOptions.from_mapping(context.options_for(self.name))
        return [assess(image, opts) for image in images]


def assess(image: DecodedImage, opts: QualityOptions = DEFAULTS) -> dict[str, Any]:
    """Quality of one image (see the module docstring)."""
    height, width = image.rgb.shape[:2]
    full = full_gray(image)
    blockiness = _blockiness(full)
    gray = _downscale(full, opts.working_size)
    h, w = gray.shape
    assess_detail = min(h, w) >= _MIN_SIDE

    hist = np.bincount(gray.ravel(), minlength=256).astype(np.float64)
    p_low, p01, p50, p99, p_high = _percentiles(hist, (0.005, 0.01, 0.50, 0.99, 0.995))
    mean = float(np.dot(hist, np.arange(256)) / max(hist.sum(), 1.0))
    luma_range = p99 - p01

    detail: _Detail | None = None
    noise: float | None = None
    if assess_detail:
        detail = _detail(gray, opts, luma_range)
        noise = _noise(full, opts)
    framing = _framing(image.rgb, gray) if min(h, w) >= _CLOSE_MIN_SIDE else None

    # darkness < 1 <=> median and bright tail both below their limits (likewise brightness)
    darkness = max((p50 + 1) / (opts.dark_median + 1), (p_high + 1) / (opts.dark_tail + 1))
    brightness = max(
        (256 - p50) / (256 - opts.bright_median), (256 - p_low) / (256 - opts.bright_tail)
    )
    exposure_issue = darkness < 1 or brightness < 1

    # Each component is 0.5 exactly at its issue's threshold, better above.
    c_focus = c_motion = c_close = 1.0
    if detail is not None:
        if detail.sharpness is not None:
            c_focus = _above(detail.sharpness, opts.blur_threshold, 3)
        if detail.detail_min is not None and detail.isotropy is not None:
            c_motion = max(
                _above(detail.detail_min * detail.isotropy**0.25, opts.motion_detail, 3),
                _above(detail.isotropy, opts.motion_isotropy, 3),
            )
    if framing is not None:
        magnified = min(
            max(
                _above(framing.structure, opts.close_structure, 3),
                _above(framing.layout, opts.close_layout, 3),
            ),
            _above(framing.thumbnail_sharpness, opts.close_soft, 3),
        )
        plain = _above(framing.layout, opts.close_plain, 3)
        texture = max(
            _above(framing.texture_ratio, opts.close_texture_ratio, 3),
            _above(opts.close_texture_evenness, max(framing.texture_evenness, 1e-6), 3),
        )
        c_close = min(magnified, plain, texture)
    close = c_close < 0.5 and not exposure_issue
    blurry = min(c_focus, c_motion) < 0.5 and not exposure_issue and not close

    issues: list[str] = []
    if blurry:
        issues.append("blurry")
    if darkness < 1:
        issues.append("dark")
    elif brightness < 1:
        issues.append("bright")
    if noise is not None and noise > opts.noise_threshold:
        issues.append("noisy")
    if assess_detail and luma_range < opts.low_contrast_range and not exposure_issue and not close:
        issues.append("low_contrast")
    if blockiness is not None and blockiness > opts.blockiness_threshold:
        issues.append("blocky")
    if close:
        issues.append("close")
    pixels = width * height
    if pixels < opts.min_pixels:
        issues.append("low_resolution")

    c_sharp = min(c_focus, c_motion)
    c_exposure = min(_above(darkness, 1.0, 3), _above(brightness, 1.0, 3))
    c_noise = 1.0 if noise is None else _above(opts.noise_threshold, max(noise, 1e-6), 3)
    c_contrast = 1.0 if not assess_detail else _above(luma_range + 1, opts.low_contrast_range, 3)
    c_blocking = (
        1.0 if blockiness is None else _above(opts.blockiness_threshold, max(blockiness, 1e-6), 3)
    )
    c_resolution = _above(float(pixels), float(max(opts.min_pixels, 1)), 2)
    components = (c_sharp, c_exposure, c_noise, c_contrast, c_blocking, c_close, c_resolution)
    score = 0.8 * min(components) + 0.2 * sum(components) / len(components)
    score = float(min(1.0, max(0.0, score)))

    return {
        "score": round(score, 4),
        "label": label_for(score),
        "issues": issues,
        "measures": {
            "sharpness": _r(detail.sharpness if detail else None),
            "sharpness_median": _r(detail.sharpness_median if detail else None),
            "detail_min": _r(detail.detail_min if detail else None),
            "isotropy": _r(detail.isotropy if detail else None),
            "brightness": round(mean / 255.0, 4),
            "luma_p0_5": int(p_low),
            "luma_p50": int(p50),
            "luma_p99_5": int(p_high),
            "contrast": round(luma_range / 255.0, 4),
            "noise": _r(noise),
            "blockiness": _r(blockiness),
            "layout": _r(framing.layout if framing else None),
            "thumbnail_sharpness": _r(framing.thumbnail_sharpness if framing else None),
            "structure": _r(framing.structure if framing else None),
            "texture_ratio": _r(framing.texture_ratio if framing else None),
            "texture_evenness": _r(framing.texture_evenness if framing else None),
            "megapixels": round(pixels / 1e6, 3),
        },
    }


def label_for(score: float) -> str:
    if score >= 0.7:
        return "high"
    if score >= 0.4:
        return "medium"
    return "low"


def full_gray(image: DecodedImage) -> np.ndarray:
    """uint8 luma at full size (``DecodedImage.gray`` when another analyzer made it)."""
    gray = image.__dict__.get("gray")
    if gray is None:
        gray = cv2.cvtColor(np.ascontiguousarray(image.rgb), cv2.COLOR_RGB2GRAY)
    return np.ascontiguousarray(gray)


def working_gray(image: DecodedImage, working_size: int) -> np.ndarray:
    """uint8 luma, longest side at most ``working_size`` (INTER_AREA), never upscaled."""
    return _downscale(full_gray(image), working_size)


def _downscale(gray: np.ndarray, size: int) -> np.ndarray:
    h, w = gray.shape[:2]
    scale = size / max(h, w)
    if scale >= 1.0:
        return np.ascontiguousarray(gray)
    target = (max(1, round(w * scale)), max(1, round(h * scale)))
    # An integer box reduction first (OpenCV's fast path), then the fractional rest.
    k = int(1.0 / scale)
    if k >= 2 and h >= k and w >= k:
        gray = cv2.resize(
            np.ascontiguousarray(gray[: h // k * k, : w // k * k]),
            (w // k, h // k),
            interpolation=cv2.INTER_AREA,
        )
    if gray.shape[1] != target[0] or gray.shape[0] != target[1]:
        gray = cv2.resize(np.ascontiguousarray(gray), target, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(gray)


def _percentiles(hist: np.ndarray, qs: Sequence[float]) -> list[float]:
    cdf = np.cumsum(hist)
    total = cdf[-1]
    return [float(np.searchsorted(cdf, q * total, side="left")) for q in qs]


def _block_means(arr: np.ndarray, block: int) -> np.ndarray:
    """Means over a grid of (about) ``block``-sized tiles; the ragged edge is dropped."""
    h, w = arr.shape
    bh, bw = min(block, h), min(block, w)
    gh, gw = h // bh, w // bw
    cropped = np.ascontiguousarray(arr[: gh * bh, : gw * bw])
    return cv2.resize(cropped, (gw, gh), interpolation=cv2.INTER_AREA)


@dataclass(frozen=True)
class _Detail:
    sharpness: float | None
    sharpness_median: float | None
    detail_min: float | None
    isotropy: float | None


def _detail(gray: np.ndarray, opts: QualityOptions, luma_range: float) -> _Detail:
    """Focus sharpness (peak blocks, Laplacian) and directional detail (Hessian)."""
    g = gray.astype(np.float32)
    # Sobel second derivatives (3 x 3); their sum is cv2.Laplacian(ksize=3).
    ixx = cv2.sepFilter2D(g, cv2.CV_32F, _D2, _S2)
    iyy = cv2.sepFilter2D(g, cv2.CV_32F, _S2, _D2)
    lap = ixx + iyy
    block = opts.block
    mean = _block_means(g, block)
    var = np.maximum(_block_means(g * g, block) - mean * mean, 0.0)
    std = np.sqrt(var)
    textured = std > max(2.0, opts.texture_fraction * luma_range)
    if int(textured.sum()) < 2:
        whole_std = float(g.std())
        if whole_std < 1.0:
            return _Detail(None, None, None, None)  # flat: no detail to be sharp or blurred
        whole = float(np.sqrt(float(np.mean(lap * lap)))) / whole_std
        return _Detail(whole, whole, None, None)

    lap_energy = _block_means(lap * lap, block)
    ratios = np.sqrt(lap_energy[textured]) / std[textured]
    k = min(ratios.size, max(2, math.ceil(opts.peak_fraction * ratios.size)))
    top = np.partition(ratios, ratios.size - k)[ratios.size - k :]
    sharpness, median = float(top.mean()), float(np.median(ratios))

    # Energy of the second derivative along direction (c, s), summed over the textured
    # blocks: c^4 <xx^2> + s^4 <yy^2> + 4c^2s^2 <xy^2> + 4c^3s <xx xy> + 4cs^3 <yy xy>
    # + 2c^2s^2 <xx yy>, from six sums of products.
    ixy = cv2.sepFilter2D(g, cv2.CV_32F, _D1, _D1)
    weight = textured.astype(np.float32)

    def total(a: np.ndarray) -> float:
        return float((_block_means(a, block) * weight).sum())

    xx, yy, xy2 = total(ixx * ixx), total(iyy * iyy), total(ixy * ixy)
    xx_xy, yy_xy, xx_yy = total(ixx * ixy), total(iyy * ixy), total(ixx * iyy)
    energies = [
        c**4 * xx
        + s**4 * yy
        + 4 * c * c * s * s * xy2
        + 4 * c**3 * s * xx_xy
        + 4 * c * s**3 * yy_xy
        + 2 * c * c * s * s * xx_yy
        for c, s in _ANGLES
    ]
    weakest, strongest = max(min(energies), 0.0), max(energies)
    variance = float(var[textured].sum())
    detail_min = math.sqrt(weakest / variance) if variance > 0 else None
    isotropy = weakest / strongest if strongest > 0 else None
    return _Detail(sharpness, median, detail_min, isotropy)


def _noise(full: np.ndarray, opts: QualityOptions) -> float:
    """Immerkaer (1996) fast noise sigma, in the calmest unclipped blocks, at working scale.

    Measured on a strided copy of the full-size luma (striding keeps white noise white,
    where resampling would smooth it and hide it), then divided by the downscale factor:
    the sigma that averaging down to the working size leaves.
    """
    h, w = full.shape
    factor = max(1.0, max(h, w) / opts.working_size)
    step = max(1, round(factor))
    sample = np.ascontiguousarray(full[::step, ::step])
    g = sample.astype(np.float32)
    response = np.abs(cv2.filter2D(g, cv2.CV_32F, _NOISE_KERNEL, borderType=cv2.BORDER_REFLECT))
    sigma = _block_means(response, opts.block) * _NOISE_SCALE
    level = _block_means(g, opts.block)
    unclipped = _block_means(cv2.inRange(sample, 3, 252).astype(np.float32), opts.block)
    mid = (level > 16) & (level < 239)
    usable = sigma[mid & (unclipped > 0.99 * 255)]  # clipping hides noise
    if usable.size == 0:
        usable = sigma[mid]
    if usable.size == 0:
        usable = sigma.ravel()
    quantile = min(max(opts.noise_quantile, 0.0), 1.0)
    return float(np.quantile(usable, quantile)) / factor


def _blockiness(gray: np.ndarray) -> float | None:
    """How far the step across the 8 x 8 JPEG grid lines exceeds every other step.

    Per direction: the mean absolute step between neighbouring pixels (capped at
    ``_STEP_CLIP`` grey levels), folded by position modulo 8; the grid-line phase
    minus the largest other phase, over ``(mean other phase + 0.5) ** 0.3``. The
    larger of the two directions.
    """
    rows, cols = gray.shape
    if rows < 32 or cols < 32:
        return None
    # Steps between neighbouring columns (on sampled rows), then between rows (sampled cols).
    across_cols = np.ascontiguousarray(gray[:: -(-rows // _LINES_SAMPLED)])
    across_rows = np.ascontiguousarray(gray[:, :: -(-cols // _LINES_SAMPLED)])
    excess = []
    for steps, axis in (
        (cv2.absdiff(across_cols[:, 1:], across_cols[:, :-1]), 0),
        (cv2.absdiff(across_rows[1:, :], across_rows[:-1, :]), 1),
    ):
        steps = np.minimum(steps, _STEP_CLIP)  # an edge is not blocking: cap its weight
        profile = cv2.reduce(steps, axis, cv2.REDUCE_AVG, dtype=cv2.CV_32F).ravel()
        n = profile.size // 8 * 8
        phases = profile[:n].reshape(-1, 8).mean(axis=0)
        grid = float(phases[7])  # between pixels 8k+7 and 8k+8
        others = phases[:7]
        excess.append((grid - float(others.max())) / (float(others.mean()) + 0.5) ** 0.3)
    return max(excess)


@dataclass(frozen=True)
class _Framing:
    layout: float
    thumbnail_sharpness: float
    structure: float
    texture_ratio: float
    texture_evenness: float


def _framing(rgb: np.ndarray, gray: np.ndarray) -> _Framing | None:
    """Layout and thumbnail measures behind ``close`` (see the module docstring)."""
    small = _downscale(gray, 128).astype(np.float32)
    if float(small.std()) < 0.25:
        return None  # nearly flat: nothing to frame (low contrast, if anything)
    h, w = small.shape
    if h >= w:
        gh, gw = _GRID, max(1, round(_GRID * w / h))
    else:
        gh, gw = max(1, round(_GRID * h / w)), _GRID
    cell_mean = cv2.resize(small, (gw, gh), interpolation=cv2.INTER_AREA)
    cell_sq = cv2.resize(small * small, (gw, gh), interpolation=cv2.INTER_AREA)
    cell_std = np.sqrt(np.maximum(cell_sq - cell_mean * cell_mean, 0.0))
    step = max(1, max(rgb.shape[:2]) // 256)  # cell means: a sparse sample is plenty
    sample = np.ascontiguousarray(rgb[::step, ::step])
    colours = cv2.resize(sample, (gw, gh), interpolation=cv2.INTER_AREA)
    lab = cv2.cvtColor(colours.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
    ab = lab[..., 1:].reshape(-1, 2) * 2.55  # Lab units -> about grey levels
    spread = math.hypot(float(cell_mean.std()), math.sqrt(float(ab.var(axis=0).sum())))
    level = float(small.mean())
    layout = spread / max(16.0, min(level, 255.0 - level))
    texture = float(cell_std.mean())
    texture_ratio = spread / max(texture, 0.5)
    evenness = float(np.quantile(cell_std, 0.1)) / max(texture, 1e-3)

    thumb = _downscale(small, 32)
    if min(thumb.shape) < 4:
        return None
    lap = cv2.Laplacian(thumb, cv2.CV_32F, ksize=3)[1:-1, 1:-1]
    thumb_sharpness = math.sqrt(float(np.mean(lap * lap))) / max(float(thumb.std()), 1e-3)
    structure = math.sqrt(layout) * thumb_sharpness
    return _Framing(layout, thumb_sharpness, structure, texture_ratio, evenness)


def _above(value: float, threshold: float, steepness: float) -> float:
    """0.5 at ``value == threshold``, towards 1 above and 0 below (log-logistic)."""
    if value <= 0:
        return 0.0
    if threshold <= 0:
        return 1.0
    return 1.0 / (1.0 + (threshold / value) ** steepness)


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


register(QualityAnalyzer())
