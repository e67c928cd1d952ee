"""Classical image-quality checks: blur, exposure, noise, contrast, resolution.

Everything is measured on a grey copy downscaled (``cv2.INTER_AREA``) so its
longest side is at most ``working_size`` pixels: what matters is what a viewer
or a recogniser sees at a normal size, and it keeps a 1 MP image at a few ms.

Per image the result is ``{"score", "label", "issues", "measures"}``:

* ``score`` -- 0..1, higher is better: 0.8 x the worst of five components
  (sharpness, exposure, noise, contrast, resolution) + 0.2 x their mean. Each
  component is 0.5 exactly at its issue's threshold, so an image with any
  issue scores below 0.6. ``label`` -- ``low`` (< 0.4), ``medium`` (< 0.7) or
  ``high``: an image with an issue is never ``high``.
* ``issues`` -- any of ``blurry``, ``dark``, ``bright``, ``noisy``,
  ``low_contrast``, ``low_resolution``; each is only reported when clearly true.

How each issue is decided (option names in brackets, defaults in ``DEFAULTS``):

* **blurry** -- the grey image is cut into blocks of ``block`` px; in each block
  with some contrast the RMS of the Laplacian is divided by the block's
  standard deviation, a contrast-free measure of how much fine detail its edges
  have. ``sharpness`` is the mean of the sharpest ``peak_fraction`` of those
  blocks, so a sharp subject on a deliberately blurred background (shallow
  depth of field) is sharp. Blurry when ``sharpness < blur_threshold``.
  On scikit-image's photos: clean 2.9..8.9; Gaussian-blurred with sigma 1.5 px
  (at ~512 px) 0.95..1.85, sigma 3 px 0.5..1.25 (0.9..1.6 after JPEG q85;
  heavy JPEG blocking, q60, can lift a few to 2.4); a sharp centre on a
  sigma-8 background keeps its centre's value.
* **dark** -- the median luma is below ``dark_median`` *and* the bright tail
  (99.5th percentile) is below ``dark_tail``: a night sky with a moon or a
  fundus photo on black has a bright tail and is not dark. (Photos x 0.15 have
  a tail <= 38; Hubble's deep field 190, a fundus photo 200.)
* **bright** -- the median luma is above ``bright_median`` *and* the dark tail
  (0.5th percentile) is above ``bright_tail``: a white page with black text is
  not bright. (Photos pushed to 0.15 x + 217 have a dark tail >= 217.)
* **noisy** -- Immerkaer's noise estimate, taken in the calmest blocks
  (``noise_quantile``) so texture is not mistaken for noise, is above
  ``noise_threshold`` grey levels at the working size.
* **low_contrast** -- the 1st..99th percentile luma range is below
  ``low_contrast_range`` (not reported with dark/bright, which explain it).
* **low_resolution** -- fewer than ``min_pixels`` pixels.

All options are numbers and are read from ``context.options_for("quality")``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import cv2
import numpy as np

from ..errors import ValidationFailed
from ..images import DecodedImage
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
    dark_median: float = 48.0
    dark_tail: float = 80.0
    bright_median: float = 207.0
    bright_tail: float = 175.0
    noise_threshold: float = 14.0
    noise_quantile: float = 0.2
    low_contrast_range: float = 32.0
    min_pixels: int = 40_000
    """Below this many pixels (about 200 x 200) an image is low resolution."""

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> QualityOptions:
        known = {f.name: f.type for f in fields(cls)}
        changes: dict[str, Any] = {}
        for key, value in options.items():
            if key not in known:
                continue  # other, unrelated options (e.g. for a front end) are ignored
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise ValidationFailed(f"quality option {key!r} must be a number")
            try:
                number = float(value)
            except ValueError:
                raise ValidationFailed(f"quality option {key!r} must be a number") from None
            if not math.isfinite(number) or number < 0:
                raise ValidationFailed(f"quality option {key!r} must be a finite number >= 0")
            if key in _LUMA_OPTIONS and number > 255:
                raise ValidationFailed(f"quality option {key!r} is a luma level, 0..255")
            changes[key] = int(number) if known[key] == "int" else number
        opts = replace(cls(), **changes)
        if opts.working_size < 16 or opts.block < 4:
            raise ValidationFailed("quality options working_size >= 16 and block >= 4 are required")
        return opts


DEFAULTS = QualityOptions()

_NOISE_KERNEL = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
_NOISE_SCALE = math.sqrt(math.pi / 2.0) / 6.0
_MIN_SIDE = 8
"""Below this (working) side, blur, noise and contrast are not assessed."""


class QualityAnalyzer(Analyzer):
    name = "quality"
    version = "1.0.0"
    description = "Blur, exposure, noise, contrast and resolution checks (classical, fast)."

    def analyze(
        self, images: Sequence[DecodedImage], context: AnalysisContext
    ) -> list[dict[str, Any]]:
        opts = QualityOptions.from_mapping(context.options_for(self.name))
        return [assess(image, opts) for image in images]


def assess(image: DecodedImage, opts: QualityOptions = DEFAULTS) -> dict[str, Any]:
    """Quality of one image (see the module docstring)."""
    height, width = image.rgb.shape[:2]
    gray = working_gray(image, opts.working_size)
    h, w = gray.shape
    assess_detail = min(h, w) >= _MIN_SIDE

    hist = np.bincount(gray.ravel(), minlength=256).astype(np.float64)
    p_low, p01, p50, p99, p_high = _percentiles(hist, (0.005, 0.01, 0.50, 0.99, 0.995))
    mean = float(np.dot(hist, np.arange(256)) / max(hist.sum(), 1.0))
    luma_range = p99 - p01

    sharpness: float | None = None
    sharpness_median: float | None = None
    noise: float | None = None
    if assess_detail:
        sharpness, sharpness_median = _sharpness(gray, opts, luma_range)
        noise = _noise(gray, opts)

    issues: list[str] = []
    if sharpness is not None and sharpness < opts.blur_threshold:
        issues.append("blurry")
    # darkness < 1 <=> median and bright tail both below their limits (likewise brightness)
    darkness = max((p50 + 1) / (opts.dark_median + 1), (p_high + 1) / (opts.dark_tail + 1))
    brightness = max(
        (256 - p50) / (256 - opts.bright_median), (256 - p_low) / (256 - opts.bright_tail)
    )
    if darkness < 1:
        issues.append("dark")
    elif brightness < 1:
        issues.append("bright")
    if noise is not None and noise > opts.noise_threshold:
        issues.append("noisy")
    exposure_issue = darkness < 1 or brightness < 1
    if assess_detail and luma_range < opts.low_contrast_range and not exposure_issue:
        issues.append("low_contrast")
    pixels = width * height
    if pixels < opts.min_pixels:
        issues.append("low_resolution")

    # Each component is 0.5 exactly at its issue's threshold, better above.
    c_sharp = 1.0 if sharpness is None else _above(sharpness, opts.blur_threshold, 3)
    c_exposure = min(_above(darkness, 1.0, 3), _above(brightness, 1.0, 3))
    c_noise = 1.0 if noise is None else _above(opts.noise_threshold, max(noise, 1e-6), 3)
    c_contrast = 1.0 if not assess_detail else _above(luma_range + 1, opts.low_contrast_range, 3)
    c_resolution = _above(float(pixels), float(max(opts.min_pixels, 1)), 2)
    components = (c_sharp, c_exposure, c_noise, c_contrast, c_resolution)
    score = 0.8 * min(components) + 0.2 * sum(components) / len(components)
    score = float(min(1.0, max(0.0, score)))

    return {
        "score": round(score, 4),
        "label": label_for(score),
        "issues": issues,
        "measures": {
            "sharpness": _r(sharpness),
            "sharpness_median": _r(sharpness_median),
            "brightness": round(mean / 255.0, 4),
            "luma_p0_5": int(p_low),
            "luma_p50": int(p50),
            "luma_p99_5": int(p_high),
            "contrast": round(luma_range / 255.0, 4),
            "noise": _r(noise),
            "megapixels": round(pixels / 1e6, 3),
        },
    }


def label_for(score: float) -> str:
    if score >= 0.7:
        return "high"
    if score >= 0.4:
        return "medium"
    return "low"


def working_gray(image: DecodedImage, working_size: int) -> np.ndarray:
    """uint8 luma, longest side at most ``working_size`` (INTER_AREA), never upscaled."""
    gray = image.__dict__.get("gray")  # DecodedImage.gray, if another analyzer made it
    if gray is None:
        gray = cv2.cvtColor(np.ascontiguousarray(image.rgb), cv2.COLOR_RGB2GRAY)
    h, w = gray.shape[:2]
    scale = working_size / max(h, w)
    if scale >= 1.0:
        return np.ascontiguousarray(gray)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    # An integer box reduction first (OpenCV's fast path), then the fractional rest.
    k = int(1.0 / scale)
    if k >= 2 and h >= k and w >= k:
        gray = cv2.resize(
            np.ascontiguousarray(gray[: h // k * k, : w // k * k]),
            (w // k, h // k),
            interpolation=cv2.INTER_AREA,
        )
    if gray.shape[1] != size[0] or gray.shape[0] != size[1]:
        gray = cv2.resize(np.ascontiguousarray(gray), size, interpolation=cv2.INTER_AREA)
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


def _sharpness(
    gray: np.ndarray, opts: QualityOptions, luma_range: float
) -> tuple[float | None, float | None]:
    g = gray.astype(np.float32)
    lap = cv2.Laplacian(g, cv2.CV_32F, ksize=3)
    mean = _block_means(g, opts.block)
    var = np.maximum(_block_means(g * g, opts.block) - mean * mean, 0.0)
    lap_energy = _block_means(lap * lap, opts.block)
    std = np.sqrt(var)
    textured = std > max(2.0, opts.texture_fraction * luma_range)
    if int(textured.sum()) >= 2:
        ratios = np.sqrt(lap_energy[textured]) / std[textured]
        k = min(ratios.size, max(2, math.ceil(opts.peak_fraction * ratios.size)))
        top = np.partition(ratios, ratios.size - k)[ratios.size - k :]
        return float(top.mean()), float(np.median(ratios))
    whole_std = float(g.std())
    if whole_std < 1.0:
        return None, None  # flat: there is no detail to be sharp or blurred
    whole = float(np.sqrt(float(np.mean(lap * lap)))) / whole_std
    return whole, whole


def _noise(gray: np.ndarray, opts: QualityOptions) -> float:
    """Immerkaer (1996) fast noise sigma, in the calmest unclipped blocks."""
    g = gray.astype(np.float32)
    response = np.abs(cv2.filter2D(g, cv2.CV_32F, _NOISE_KERNEL, borderType=cv2.BORDER_REFLECT))
    sigma = _block_means(response, opts.block) * _NOISE_SCALE
    level = _block_means(g, opts.block)
    usable = sigma[(level > 16) & (level < 239)]  # clipped blocks hide noise
    if usable.size == 0:
        usable = sigma.ravel()
    return float(np.quantile(usable, min(max(opts.noise_quantile, 0.0), 1.0)))


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
