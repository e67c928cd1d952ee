"""Dominant colours: a k-means palette in CIE Lab, the mean colour, and a greyscale flag.

Everything is measured on an RGB copy downscaled (``cv2.INTER_AREA``) so its longest side is
at most ``working_size`` pixels (128 by default, about 12 000 pixels): a palette is about
areas, not details, and it keeps a 1 MP image at about 2 ms.

Per image the result is::

    {"palette": [{"hex": "#aabbcc", "rgb": [170, 187, 204], "name": "lightsteelblue",
                  "share": 0.41}, ...],
     "grayscale": false,
     "mean": {"hex": "#7d6f64", "rgb": [125, 111, 100]},
     "dominant": "#aabbcc"}

* ``palette`` -- at most ``k`` colours (5 by default), largest ``share`` (of the pixels)
  first; shares add up to 1. Pixels are clustered with k-means (OpenCV) in CIE Lab (D65,
  sRGB), where distances follow perceived differences. The initial centres come from a seeded
  k-means++ (NumPy), so a given image always gives the same palette. An image with fewer
  distinct colours than ``k`` gets fewer entries. Each entry's ``rgb`` is the mean sRGB colour
  of its pixels; ``name`` is the nearest of the 148 CSS colour names by CIEDE2000 in Lab
  (where two names share a colour -- aqua/cyan, fuchsia/magenta, gray/grey -- the first in
  alphabetical order is given).
* ``grayscale`` -- true when the chroma (``sqrt(a*a + b*b)`` in Lab) is low everywhere: its
  99.5th percentile is at most ``grayscale_chroma`` (6 by default; a just-noticeable
  difference is about 2, colour photos have 20 and more). Sepia and other tinted
  monochromes are not greyscale.
* ``mean`` -- the mean sRGB colour of the image; ``dominant`` -- the first palette colour.

Options (``context.options_for("colors")``): ``k`` (1..16), ``working_size`` (16..1024),
``grayscale_chroma`` (0..100), ``min_share`` (0..0.5, default 0.01: a cluster with fewer
pixels -- typically edge pixels blended by the downscale -- is merged into its nearest
neighbour, so shares still add up to 1).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np

from ..errors import ValidationFailed
from ..images import DecodedImage
from .base import AnalysisContext, Analyzer
from .registry import register

#: The 148 CSS Color Module Level 4 named colours (alphabetical).
CSS_COLORS: dict[str, str] = {
    "aliceblue": "#f0f8ff",
    "antiquewhite": "#faebd7",
    "aqua": "#00ffff",
    "aquamarine": "#7fffd4",
    "azure": "#f0ffff",
    "beige": "#f5f5dc",
    "bisque": "#ffe4c4",
    "black": "#000000",
    "blanchedalmond": "#ffebcd",
    "blue": "#0000ff",
    "blueviolet": "#8a2be2",
    "brown": "#a52a2a",
    "burlywood": "#deb887",
    "cadetblue": "#5f9ea0",
    "chartreuse": "#7fff00",
    "chocolate": "#d2691e",
    "coral": "#ff7f50",
    "cornflowerblue": "#6495ed",
    "cornsilk": "#fff8dc",
    "crimson": "#dc143c",
    "cyan": "#00ffff",
    "darkblue": "#00008b",
    "darkcyan": "#008b8b",
    "darkgoldenrod": "#b8860b",
    "darkgray": "#a9a9a9",
    "darkgreen": "#006400",
    "darkgrey": "#a9a9a9",
    "darkkhaki": "#bdb76b",
    "darkmagenta": "#8b008b",
    "darkolivegreen": "#556b2f",
    "darkorange": "#ff8c00",
    "darkorchid": "#9932cc",
    "darkred": "#8b0000",
    "darksalmon": "#e9967a",
    "darkseagreen": "#8fbc8f",
    "darkslateblue": "#483d8b",
    "darkslategray": "#2f4f4f",
    "darkslategrey": "#2f4f4f",
    "darkturquoise": "#00ced1",
    "darkviolet": "#9400d3",
    "deeppink": "#ff1493",
    "deepskyblue": "#00bfff",
    "dimgray": "#696969",
    "dimgrey": "#696969",
    "dodgerblue": "#1e90ff",
    "firebrick": "#b22222",
    "floralwhite": "#fffaf0",
    "forestgreen": "#228b22",
    "fuchsia": "#ff00ff",
    "gainsboro": "#dcdcdc",
    "ghostwhite": "#f8f8ff",
    "gold": "#ffd700",
    "goldenrod": "#daa520",
    "gray": "#808080",
    "green": "#008000",
    "greenyellow": "#adff2f",
    "grey": "#808080",
    "honeydew": "#f0fff0",
    "hotpink": "#ff69b4",
    "indianred": "#cd5c5c",
    "indigo": "#4b0082",
    "ivory": "#fffff0",
    "khaki": "#f0e68c",
    "lavender": "#e6e6fa",
    "lavenderblush": "#fff0f5",
    "lawngreen": "#7cfc00",
    "lemonchiffon": "#fffacd",
    "lightblue": "#add8e6",
    "lightcoral": "#f08080",
    "lightcyan": "#e0ffff",
    "lightgoldenrodyellow": "#fafad2",
    "lightgray": "#d3d3d3",
    "lightgreen": "#90ee90",
    "lightgrey": "#d3d3d3",
    "lightpink": "#ffb6c1",
    "lightsalmon": "#ffa07a",
    "lightseagreen": "#20b2aa",
    "lightskyblue": "#87cefa",
    "lightslategray": "#778899",
    "lightslategrey": "#778899",
    "lightsteelblue": "#b0c4de",
    "lightyellow": "#ffffe0",
    "lime": "#00ff00",
    "limegreen": "#32cd32",
    "linen": "#faf0e6",
    "magenta": "#ff00ff",
    "maroon": "#800000",
    "mediumaquamarine": "#66cdaa",
    "mediumblue": "#0000cd",
    "mediumorchid": "#ba55d3",
    "mediumpurple": "#9370db",
    "mediumseagreen": "#3cb371",
    "mediumslateblue": "#7b68ee",
    "mediumspringgreen": "#00fa9a",
    "mediumturquoise": "#48d1cc",
    "mediumvioletred": "#c71585",
    "midnightblue": "#191970",
    "mintcream": "#f5fffa",
    "mistyrose": "#ffe4e1",
    "moccasin": "#ffe4b5",
    "navajowhite": "#ffdead",
    "navy": "#000080",
    "oldlace": "#fdf5e6",
    "olive": "#808000",
    "olivedrab": "#6b8e23",
    "orange": "#ffa500",
    "orangered": "#ff4500",
    "orchid": "#da70d6",
    "palegoldenrod": "#eee8aa",
    "palegreen": "#98fb98",
    "paleturquoise": "#afeeee",
    "palevioletred": "#db7093",
    "papayawhip": "#ffefd5",
    "peachpuff": "#ffdab9",
    "peru": "#cd853f",
    "pink": "#ffc0cb",
    "plum": "#dda0dd",
    "powderblue": "#b0e0e6",
    "purple": "#800080",
    "rebeccapurple": "#663399",
    "red": "#ff0000",
    "rosybrown": "#bc8f8f",
    "royalblue": "#4169e1",
    "saddlebrown": "#8b4513",
    "salmon": "#fa8072",
    "sandybrown": "#f4a460",
    "seagreen": "#2e8b57",
    "seashell": "#fff5ee",
    "sienna": "#a0522d",
    "silver": "#c0c0c0",
    "skyblue": "#87ceeb",
    "slateblue": "#6a5acd",
    "slategray": "#708090",
    "slategrey": "#708090",
    "snow": "#fffafa",
    "springgreen": "#00ff7f",
    "steelblue": "#4682b4",
    "tan": "#d2b48c",
    "teal": "#008080",
    "thistle": "#d8bfd8",
    "tomato": "#ff6347",
    "turquoise": "#40e0d0",
    "violet": "#ee82ee",
    "wheat": "#f5deb3",
    "white": "#ffffff",
    "whitesmoke": "#f5f5f5",
    "yellow": "#ffff00",
    "yellowgreen": "#9acd32",
}


@dataclass(frozen=True)
class ColorsOptions:
    k: int = 5
    """At most this many palette colours."""
    working_size: int = 128
    """Longest side of the copy that is clustered."""
    grayscale_chroma: float = 6.0
    """Greyscale when the 99.5th percentile of the Lab chroma is at most this."""
    min_share: float = 0.01
    """Clusters with fewer pixels than this share are merged into their nearest neighbour."""

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> ColorsOptions:
        limits = {
            "k": (1, 16),
            "working_size": (16, 1024),
            "grayscale_chroma": (0.0, 100.0),
            "min_share": (0.0, 0.5),
        }
        changes: dict[str, Any] = {}
        for key, (low, high) in limits.items():
            if key not in options:
                continue
            value = options[key]
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise ValidationFailed(f"colors option {key!r} must be a number")
            try:
                number = float(value)
            except ValueError:
                raise ValidationFailed(f"colors option {key!r} must be a number") from None
            if not math.isfinite(number) or not low <= number <= high:
                raise ValidationFailed(f"colors option {key!r} must be in {low}..{high}")
            if isinstance(low, int):
                if number != int(number):
                    raise ValidationFailed(f"colors option {key!r} must be a whole number")
                changes[key] = int(number)
            else:
                changes[key] = number
        return replace(cls(), **changes)


DEFAULTS = ColorsOptions()

_KMEANS_CRITERIA = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 10, 0.5)
"""At most 10 Lloyd iterations, or until no centre moves by more than 0.5 (Lab units)."""
_SEED = 20240611


class ColorsAnalyzer(Analyzer):
    name = "colors"
    version = "1.0.0"
    description = "Dominant colour palette (k-means in CIE Lab), mean colour, greyscale flag."

    def analyze(
        self, images: Sequence[DecodedImage], context: AnalysisContext
    ) -> list[dict[str, Any]]:
        opts = ColorsOptions.from_mapping(context.options_for(self.name))
        return [palette(image.rgb, opts) for image in images]


def palette(rgb: np.ndarray, opts: ColorsOptions = DEFAULTS) -> dict[str, Any]:
    """Palette, greyscale flag and mean colour of an H x W x 3 uint8 RGB image."""
    small = _downscale(np.ascontiguousarray(rgb[..., :3], dtype=np.uint8), opts.working_size)
    pixels = small.reshape(-1, 3)
    lab = to_lab(pixels)
    chroma = np.hypot(lab[:, 1], lab[:, 2])
    grayscale = bool(np.percentile(chroma, 99.5) <= opts.grayscale_chroma)

    clusters, count = _kmeans(lab, opts.k)
    labels = _merge_small(lab, clusters, count, opts.min_share)
    sizes = np.bincount(labels, minlength=count).astype(np.float64)
    # A colour is the mean of its cluster's own pixels (not of those merged into it).
    own = np.bincount(clusters, minlength=count).astype(np.float64)
    sums = np.stack(
        [
            np.bincount(clusters, weights=pixels[:, c].astype(np.float64), minlength=count)
            for c in range(3)
        ],
        axis=1,
    )
    used = np.flatnonzero(sizes > 0)
    means = sums[used] / np.maximum(own[used, None], 1.0)
    shares = sizes[used] / sizes.sum()
    order = np.argsort(-shares, kind="stable")
    colours = np.clip(np.rint(means[order]), 0, 255).astype(np.uint8)
    names = nearest_names(colours)
    entries = [
        {
            "hex": to_hex(colour),
            "rgb": [int(v) for v in colour],
            "name": name,
            "share": round(float(share), 4),
        }
        for colour, name, share in zip(colours, names, shares[order], strict=True)
    ]
    mean = np.clip(np.rint(pixels.mean(axis=0)), 0, 255).astype(np.uint8)
    return {
        "palette": entries,
        "grayscale": grayscale,
        "mean": {"hex": to_hex(mean), "rgb": [int(v) for v in mean]},
        "dominant": entries[0]["hex"],
    }


def to_lab(rgb: np.ndarray) -> np.ndarray:
    """N x 3 sRGB (uint8 or 0..255 floats) -> N x 3 float32 CIE Lab (D65)."""
    arr = np.asarray(rgb, dtype=np.float32).reshape(1, -1, 3) / 255.0
    return cv2.cvtColor(arr, cv2.COLOR_RGB2Lab).reshape(-1, 3)


def to_hex(rgb: Sequence[int] | np.ndarray) -> str:
    r, g, b = (int(v) for v in rgb)
    return f"#{r:02x}{g:02x}{b:02x}"


def nearest_names(colours: np.ndarray) -> list[str]:
    """The nearest CSS colour name (CIEDE2000 in Lab) of each N x 3 sRGB colour."""
    if len(colours) == 0:
        return []
    names, table = _css_lab()
    distance = ciede2000(to_lab(colours)[:, None, :], table[None, :, :])
    return [names[i] for i in np.argmin(distance, axis=1)]


_CSS_LAB: tuple[list[str], np.ndarray] | None = None


def _css_lab() -> tuple[list[str], np.ndarray]:
    global _CSS_LAB
    if _CSS_LAB is None:
        names = list(CSS_COLORS)
        rgb = np.array([[int(h[i : i + 2], 16) for i in (1, 3, 5)] for h in CSS_COLORS.values()])
        _CSS_LAB = (names, to_lab(rgb).astype(np.float64))
    return _CSS_LAB


def ciede2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 colour difference (kL = kC = kH = 1) between broadcastable Lab arrays."""
    lab1 = np.asarray(lab1, dtype=np.float64)
    lab2 = np.asarray(lab2, dtype=np.float64)
    l1, a1, b1 = lab1[..., 0], lab1[..., 1], lab1[..., 2]
    l2, a2, b2 = lab2[..., 0], lab2[..., 1], lab2[..., 2]
    c_bar = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2.0
    g = 0.5 * (1.0 - np.sqrt(c_bar**7 / (c_bar**7 + 25.0**7)))
    a1p, a2p = (1.0 + g) * a1, (1.0 + g) * a2
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360.0
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360.0
    dlp = l2 - l1
    dcp = c2p - c1p
    dh = h2p - h1p
    dh = np.where(dh > 180.0, dh - 360.0, np.where(dh < -180.0, dh + 360.0, dh))
    dh = np.where(c1p * c2p == 0, 0.0, dh)
    dhp = 2.0 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh) / 2.0)
    l_bar = (l1 + l2) / 2.0
    cp_bar = (c1p + c2p) / 2.0
    h_sum = h1p + h2p
    h_bar = np.where(
        c1p * c2p == 0,
        h_sum,
        np.where(
            np.abs(h1p - h2p) <= 180.0,
            h_sum / 2.0,
            np.where(h_sum < 360.0, (h_sum + 360.0) / 2.0, (h_sum - 360.0) / 2.0),
        ),
    )
    t = (
        1.0
        - 0.17 * np.cos(np.radians(h_bar - 30.0))
        + 0.24 * np.cos(np.radians(2.0 * h_bar))
        + 0.32 * np.cos(np.radians(3.0 * h_bar + 6.0))
        - 0.20 * np.cos(np.radians(4.0 * h_bar - 63.0))
    )
    d_theta = 30.0 * np.exp(-(((h_bar - 275.0) / 25.0) ** 2))
    r_c = 2.0 * np.sqrt(cp_bar**7 / (cp_bar**7 + 25.0**7))
    s_l = 1.0 + 0.015 * (l_bar - 50.0) ** 2 / np.sqrt(20.0 + (l_bar - 50.0) ** 2)
    s_c = 1.0 + 0.045 * cp_bar
    s_h = 1.0 + 0.015 * cp_bar * t
    r_t = -np.sin(np.radians(2.0 * d_theta)) * r_c
    dl, dc, dhh = dlp / s_l, dcp / s_c, dhp / s_h
    return np.sqrt(dl * dl + dc * dc + dhh * dhh + r_t * dc * dhh)


def _merge_small(lab: np.ndarray, labels: np.ndarray, count: int, min_share: float) -> np.ndarray:
    """Give the pixels of clusters smaller than ``min_share`` to the nearest larger cluster
    (edge pixels blended by the downscale would otherwise show up as colours of their own)."""
    sizes = np.bincount(labels, minlength=count)
    big = sizes >= min_share * len(labels)
    if big.all() or not big.any():
        return labels
    centres = (
        np.stack(
            [np.bincount(labels, weights=lab[:, c], minlength=count) for c in range(3)], axis=1
        )
        / np.maximum(sizes, 1)[:, None]
    )
    keep = np.flatnonzero(big)
    small = ~big[labels]
    out = labels.copy()
    out[small] = keep[_nearest(lab[small].astype(np.float32), centres[keep].astype(np.float32))]
    return out


def _downscale(rgb: np.ndarray, working_size: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    scale = working_size / max(h, w)
    if scale >= 1.0:
        return rgb
    k = int(1.0 / scale)
    if k >= 2 and h >= k and w >= k:  # an integer box reduction first (OpenCV's fast path)
        rgb = cv2.resize(
            np.ascontiguousarray(rgb[: h // k * k, : w // k * k]),
            (w // k, h // k),
            interpolation=cv2.INTER_AREA,
        )
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if (rgb.shape[1], rgb.shape[0]) != size:
        rgb = cv2.resize(np.ascontiguousarray(rgb), size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(rgb)


def _kmeans(lab: np.ndarray, k: int) -> tuple[np.ndarray, int]:
    """Labels (N,) and the number of clusters; deterministic (seeded k-means++ start)."""
    data = np.ascontiguousarray(lab, dtype=np.float32)
    centres = _kmeans_pp(data, k)
    if len(centres) <= 1:
        return np.zeros(len(data), np.int32), 1
    initial = _nearest(data, centres).astype(np.int32).reshape(-1, 1)
    _, labels, _ = cv2.kmeans(
        data,
        len(centres),
        initial,
        _KMEANS_CRITERIA,
        1,
        cv2.KMEANS_USE_INITIAL_LABELS,
    )
    return labels.ravel().astype(np.int64), len(centres)


def _nearest(data: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Index of the nearest centre (squared Euclidean) of each row of ``data``."""
    cross = data @ centres.T
    return np.argmin((centres * centres).sum(axis=1)[None, :] - 2.0 * cross, axis=1)


def _kmeans_pp(data: np.ndarray, k: int) -> np.ndarray:
    """k-means++ centres with a fixed seed; fewer when there are fewer distinct colours."""
    rng = np.random.default_rng(_SEED)
    centres = [data[int(rng.integers(len(data)))]]
    nearest = ((data - centres[0]) ** 2).sum(axis=1)
    for _ in range(1, k):
        total = float(nearest.sum())
        if total <= 1e-6:
            break
        pick = int(np.searchsorted(np.cumsum(nearest, dtype=np.float64), rng.random() * total))
        centres.append(data[min(pick, len(data) - 1)])
        nearest = np.minimum(nearest, ((data - centres[-1]) ** 2).sum(axis=1))
    return np.asarray(centres, dtype=np.float32)


register(ColorsAnalyzer())
