"""A seeded, generated set of watermarked and clean photographs (for the ``watermark`` analyzer).

Nothing is downloaded: the photographs are scikit-image's bundled ones (colour and grey, plus
crops of the large ones), and every watermark is drawn here with Pillow, using the DejaVu
fonts under ``/usr/share/fonts`` (``FONT_FAMILY``; any TrueType font there when DejaVu is
missing, Pillow's own default font when there is none). A
watermark is always an alpha blend of a constant-colour mark, ``out = (1 - a) * photo + a *
colour``, where ``a`` is the mark's anti-aliased coverage times its opacity.

Positives (``Sample.kind``):

* ``text`` -- one line of semi-transparent text (opacity 0.15..0.6; white, black, grey or a
  colour; sometimes with a faint drop shadow) in a corner, at the bottom centre, or large in
  the centre (sometimes rotated).
* ``logo`` -- a simple shape (ring, disc, square, triangle, star) with initials or a word,
  drawn into one RGBA mark, opacity 0.15..0.6, in a corner or the centre.
* ``banner`` -- a band across the full width at the top or bottom (band opacity 0.35..0.8,
  black, white or a colour) with near-opaque text in it.
* ``pattern`` -- a text or logo mark repeated on a grid over the whole image (opacity
  0.15..0.6, often rotated, rows sometimes staggered), at least three repeats each way (a
  mark that would shrink below ~9 px to fit becomes an upright "PROOF").

A mark whose mean contrast with what it covers would be below ``MIN_CONTRAST`` (12 grey
levels) is drawn white or black instead, as a designer would; ``params["visibility"]`` records
how much each text, logo or pattern mark stands out (see ``visibility``).

Negatives (``Sample.kind is None``; ``Sample.group`` says which):

* ``clean`` -- the photographs as they are.
* ``natural_text`` -- scikit-image's ``text()`` (handwriting on a board, photographed) and
  ``page()`` (a scanned book page), resized and cropped.
* ``sign`` -- a photo with an opaque sign (a uniform board with text) composited *into the
  scene*: inside the frame, not hugging a corner, slightly rotated and blurred like the rest
  of the photo. Decision: an opaque board with text is scene content (a shop sign, a label, a
  page held up), not an overlay -- nothing of the photo shows through it -- so it is a
  negative. A fully opaque caption *in a corner* would be ambiguous and is not in the set.
* ``letterbox`` -- black bars across the top and bottom (video frames), without text: a
  full-width band that is not a banner.

Every image is resized to a random long side (400..1200 px) first and, 80 % of the time,
saved as JPEG (quality 70..95) after the overlay, like images found on the web.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

KINDS = ("text", "logo", "banner", "pattern")
NEGATIVE_GROUPS = ("clean", "natural_text", "sign", "letterbox")

FONT_DIRS = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"))
FONT_FAMILY = "DejaVu"
"""Marks are drawn with the DejaVu fonts when they are installed (``.ci/run`` installs them),
so a seed gives the same set on every machine: installing another font package (Liberation
comes with Tesseract's install in CI) would otherwise change which font each mark gets."""

TEXTS = (
    "© 2024 Jane Doe",
    "SAMPLE",
    "PREVIEW",
    "Photo: M. Rossi",
    "stockimages.example",
    "DO NOT COPY",
    "@pixelhunter",
    "www.photostudio.net",
    "CONFIDENTIAL",
    "Draft",
    "© OpenSight Demo",
    "shutterpix",
    "PROOF",
    "© A. Ivanova 2023",
    "licensed to ACME",
)
SIGN_TEXTS = (
    "OPEN",
    "EXIT",
    "Main Street",
    "NO PARKING",
    "Cafe 24h",
    "PLATFORM 3",
    "Keep Out",
    "SALE -50%",
    "Museum",
    "Lab 2.14",
)

COLOUR_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry")
GREY_PHOTOS = ("camera", "coins", "moon", "clock", "brick", "grass", "gravel", "cell")


@dataclass
class Sample:
    """One generated image and what it contains."""

    rgb: np.ndarray
    """H x W x 3 uint8 (after the JPEG round trip, when there was one)."""
    kind: str | None
    """One of ``KINDS`` for a watermarked image, None for a negative."""
    group: str
    """``kind`` for positives, one of ``NEGATIVE_GROUPS`` for negatives."""
    base: str
    """Which photograph it was made from."""
    box: tuple[int, int, int, int] | None = None
    """The watermark's bounding box ``(x, y, w, h)`` (the whole image for ``pattern``)."""
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def positive(self) -> bool:
        return self.kind is not None


# ------------------------------------------------------------------ photographs


@cache
def base_photos() -> dict[str, np.ndarray]:
    """The bundled photographs as RGB uint8 (grey ones stacked), plus crops of the large ones."""
    from skimage import data

    photos: dict[str, np.ndarray] = {}
    for name in (*COLOUR_PHOTOS, *GREY_PHOTOS):
        try:
            photos[name] = _rgb(getattr(data, name)())
        except Exception:  # pragma: no cover - a photo that needs a download (pooch)
            continue
    large = {
        "hubble_deep_field": (data.hubble_deep_field, None),
        "hubble_crop": (data.hubble_deep_field, np.s_[100:612, 200:712]),
        "retina": (data.retina, None),
        "retina_crop": (data.retina, np.s_[350:1050, 300:1100]),
        "motorcycle": (lambda: data.stereo_motorcycle()[0], None),
        "motorcycle_crop": (lambda: data.stereo_motorcycle()[0], np.s_[60:460, 150:650]),
    }
    for name, (load, crop) in large.items():
        try:
            arr = _rgb(load())
        except Exception:  # pragma: no cover
            continue
        photos[name] = np.ascontiguousarray(arr[crop] if crop is not None else arr)
    return photos


@cache
def text_photos() -> dict[str, np.ndarray]:
    """scikit-image's photographs of natural text: handwriting on a board and a book page."""
    from skimage import data

    return {"text": _rgb(data.text()), "page": _rgb(data.page())}


def _rgb(arr: np.ndarray) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.dtype != np.uint8:
        arr = (
            (np.clip(arr, 0, 1) * 255).astype(np.uint8) if arr.max() <= 1 else arr.astype(np.uint8)
        )
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    return np.ascontiguousarray(arr[..., :3])


def resize_long(rgb: np.ndarray, long_side: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    scale = long_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    resample = Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BICUBIC
    return np.asarray(Image.fromarray(rgb).resize(size, resample), dtype=np.uint8)


def prepare_base(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random crop (70..100 % of each side) resized to a random long side of 400..1200 px."""
    h, w = rgb.shape[:2]
    ch, cw = int(h * rng.uniform(0.7, 1.0)), int(w * rng.uniform(0.7, 1.0))
    y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    return resize_long(
        np.ascontiguousarray(rgb[y : y + ch, x : x + cw]), int(rng.integers(400, 1201))
    )


def jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=int(quality))
    buffer.seek(0)
    return np.asarray(Image.open(buffer).convert("RGB"), dtype=np.uint8)


# ------------------------------------------------------------------ fonts and marks


@cache
def font_paths() -> tuple[Path, ...]:
    """The ``FONT_FAMILY`` fonts on this machine, else every TrueType/OpenType font (sorted;
    symbol/maths fonts left out)."""
    found: list[Path] = []
    for root in FONT_DIRS:
        if root.is_dir():
            found += [p for p in root.rglob("*") if p.suffix.lower() in (".ttf", ".otf")]
    fonts = sorted(p for p in found if "math" not in p.name.lower())
    family = tuple(p for p in fonts if p.name.startswith(FONT_FAMILY))
    return family or tuple(fonts)


def load_font(size: float, rng: np.random.Generator | None = None, index: int | None = None) -> Any:
    """A font of ``size`` px: a random (or the ``index``-th) system font, else Pillow's own."""
    paths = font_paths()
    size = max(6, int(size))
    if paths:
        i = index if index is not None else int(rng.integers(len(paths))) if rng else 0
        return ImageFont.truetype(str(paths[i % len(paths)]), size)
    return ImageFont.load_default(size=size)  # pragma: no cover - no system fonts


def text_mask(text: str, font: Any, angle: float = 0.0) -> Image.Image:
    """An 'L' coverage mask of ``text`` (anti-aliased), cropped to its ink, optionally rotated."""
    left, top, right, bottom = font.getbbox(text)
    pad = 2
    mask = Image.new("L", (right - left + 2 * pad, bottom - top + 2 * pad), 0)
    ImageDraw.Draw(mask).text((pad - left, pad - top), text, fill=255, font=font)
    if angle:
        mask = mask.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)
    bbox = mask.getbbox()
    return mask.crop(bbox) if bbox else mask


def logo_mask(size: int, rng: np.random.Generator, word: str | None = None) -> Image.Image:
    """An 'L' mask: a simple shape of ``size`` px with initials in it, or a word beside it."""
    s = max(16, int(size))
    shape = str(rng.choice(["ring", "disc", "square", "triangle", "star"]))
    width = max(2, s // 10)
    mask = Image.new("L", (s, s), 0)
    draw = ImageDraw.Draw(mask)
    box = (width, width, s - width - 1, s - width - 1)
    inner_text = 0  # the initials are knocked out of filled shapes, drawn in hollow ones
    if shape == "ring":
        draw.ellipse(box, outline=255, width=width)
        inner_text = 255
    elif shape == "disc":
        draw.ellipse(box, fill=255)
    elif shape == "square":
        draw.rounded_rectangle(box, radius=s // 6, outline=255, width=width)
        inner_text = 255
    elif shape == "triangle":
        draw.polygon([(s / 2, width), (s - width, s - width), (width, s - width)], fill=255)
    else:
        c, r_out, r_in = s / 2, s / 2 - width, s / 5
        points = [
            (
                c + (r_out if i % 2 == 0 else r_in) * math.sin(math.pi * i / 5),
                c - (r_out if i % 2 == 0 else r_in) * math.cos(math.pi * i / 5),
            )
            for i in range(10)
        ]
        draw.polygon(points, fill=255)
    initials = "".join(rng.choice(list("ABCDEFGHKLMNPRSTVWXZ"), size=2))
    font = load_font(int(s * (0.32 if shape != "triangle" else 0.25)), rng)
    left, top, right, bottom = draw.textbbox((0, 0), initials, font=font)
    cy = s * (0.6 if shape == "triangle" else 0.5)
    draw.text(
        (s / 2 - (left + right) / 2, cy - (top + bottom) / 2),
        initials,
        fill=inner_text,
        font=font,
    )
    if not word:
        return mask
    word_mask = text_mask(word, load_font(int(s * 0.45), rng))
    gap = s // 5
    out = Image.new("L", (s + gap + word_mask.width, max(s, word_mask.height)), 0)
    out.paste(mask, (0, (out.height - s) // 2))
    out.paste(word_mask, (s + gap, (out.height - word_mask.height) // 2))
    return out


def blend(
    rgb: np.ndarray,
    mask: Image.Image | np.ndarray,
    xy: tuple[int, int],
    colour: Sequence[float],
    opacity: float,
) -> np.ndarray:
    """Alpha-blend a constant ``colour`` through ``mask`` (coverage 0..255) at ``xy`` (clipped)."""
    m = np.asarray(mask, dtype=np.float32) / 255.0 * float(opacity)
    out = rgb.astype(np.float32)
    h, w = out.shape[:2]
    x, y = int(xy[0]), int(xy[1])
    x0, y0, x1, y1 = max(0, x), max(0, y), min(w, x + m.shape[1]), min(h, y + m.shape[0])
    if x1 <= x0 or y1 <= y0:
        return rgb.copy()
    a = m[y0 - y : y1 - y, x0 - x : x1 - x, None]
    out[y0:y1, x0:x1] = (1 - a) * out[y0:y1, x0:x1] + a * np.asarray(colour, np.float32)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def visibility(
    rgb: np.ndarray,
    mask: Image.Image | np.ndarray,
    xy: tuple[int, int],
    colour: Sequence[float],
    opacity: float,
) -> float:
    """How much a mark stands out: its mean colour change over what it covers, divided by
    the spread (std) of what it covers, plus 5. About 1 and below: hard to see even for a person."""
    m = np.asarray(mask, dtype=np.float32) / 255.0
    h, w = rgb.shape[:2]
    x, y = int(xy[0]), int(xy[1])
    x0, y0, x1, y1 = max(0, x), max(0, y), min(w, x + m.shape[1]), min(h, y + m.shape[0])
    if x1 <= x0 or y1 <= y0:
        return 0.0
    cover = m[y0 - y : y1 - y, x0 - x : x1 - x] > 0.7
    region = rgb[y0:y1, x0:x1].astype(np.float32)
    if not cover.any():
        return 0.0
    change = opacity * np.linalg.norm(region[cover] - np.asarray(colour, np.float32), axis=1)
    spread = float(region.mean(axis=2).std())
    return round(float(change.mean() / math.sqrt(3)) / (spread + 5.0), 3)


def mark_colour(rng: np.random.Generator) -> tuple[tuple[int, int, int], str]:
    """White (60 %), black (20 %), grey (10 %) or a saturated colour (10 %)."""
    u = rng.random()
    if u < 0.6:
        return (255, 255, 255), "white"
    if u < 0.8:
        return (0, 0, 0), "black"
    if u < 0.9:
        g = int(rng.integers(110, 200))
        return (g, g, g), "grey"
    hue = rng.random()
    r, g, b = (int(255 * max(0.0, min(1.0, abs(hue * 6 - k) - 1))) for k in (3, 2, 4))
    return (255 - r, g, b), "colour"


MIN_CONTRAST = 12.0
"""Grey levels: a mark whose mean contrast with what it covers is lower gets the opposite tone."""


def visible_colour(
    rgb: np.ndarray, box: tuple[int, int, int, int], colour: tuple[int, int, int], opacity: float
) -> tuple[int, int, int]:
    """``colour``, or white/black instead when it would hardly show (a designer would switch)."""
    x, y, w, h = box
    region = rgb[max(0, y) : max(0, y) + max(1, h), max(0, x) : max(0, x) + max(1, w)]
    mean = region.reshape(-1, 3).mean(axis=0) if region.size else rgb.reshape(-1, 3).mean(axis=0)
    contrast = opacity * float(np.linalg.norm(np.asarray(colour, float) - mean)) / math.sqrt(3)
    if contrast >= MIN_CONTRAST:
        return colour
    return (0, 0, 0) if float(mean.mean()) > 127 else (255, 255, 255)


def _visible(
    rgb: np.ndarray,
    box: tuple[int, int, int, int],
    colour: tuple[int, int, int],
    name: str,
    opacity: float,
) -> tuple[tuple[int, int, int], str]:
    chosen = visible_colour(rgb, box, colour, opacity)
    if chosen == tuple(colour):
        return chosen, name
    return chosen, "white" if chosen[0] == 255 else "black"


def _place(
    size: tuple[int, int], image: tuple[int, int], where: str, rng: np.random.Generator
) -> tuple[int, int]:
    """Top-left corner of a ``size`` (w, h) mark at ``where`` in an ``image`` (w, h)."""
    mw, mh = size
    w, h = image
    margin = int(min(w, h) * rng.uniform(0.01, 0.05))
    if where == "centre":
        return (w - mw) // 2 + int(rng.integers(-w // 20, w // 20 + 1)), (h - mh) // 2 + int(
            rng.integers(-h // 20, h // 20 + 1)
        )
    if where == "bottom":
        return (w - mw) // 2, h - mh - margin
    x = margin if where.endswith("left") else w - mw - margin
    y = margin if where.startswith("top") else h - mh - margin
    return x, y


CORNERS = ("top-left", "top-right", "bottom-left", "bottom-right")


# ------------------------------------------------------------------ overlays


def add_text(
    rgb: np.ndarray,
    rng: np.random.Generator,
    *,
    opacity: float | None = None,
    where: str | None = None,
    text: str | None = None,
    colour: tuple[int, int, int] | None = None,
) -> tuple[np.ndarray, tuple[int, int, int, int], dict[str, Any]]:
    """One line of semi-transparent text; returns (image, box, params)."""
    h, w = rgb.shape[:2]
    side = min(h, w)
    opacity = float(rng.uniform(0.15, 0.6)) if opacity is None else opacity
    where = where or str(rng.choice([*CORNERS, "bottom", "centre", "centre"]))
    text = text or str(rng.choice(TEXTS))
    colour_name = "given"
    if colour is None:
        colour, colour_name = mark_colour(rng)
    angle = 0.0
    if where == "centre":
        target = w * rng.uniform(0.35, 0.8)
        if rng.random() < 0.5:
            angle = float(rng.uniform(-35, 35))
        index = int(rng.integers(max(1, len(font_paths()))))
        probe = text_mask(text, load_font(100, index=index))
        font = load_font(min(side * 0.25, 100 * target / max(probe.width, 1)), index=index)
    else:
        font = load_font(max(11, int(side * rng.uniform(0.03, 0.075))), rng)
    mask = text_mask(text, font, angle)
    mask = _fit(mask, w, h)
    xy = _place(mask.size, (w, h), where, rng)
    colour, colour_name = _visible(rgb, (*xy, *mask.size), colour, colour_name, opacity)
    out = rgb
    shadow = rng.random() < 0.3
    if shadow:  # a faint drop shadow in the opposite tone, 1..2 px down-right
        off = max(1, side // 400)
        dark = (0, 0, 0) if sum(colour) > 382 else (255, 255, 255)
        out = blend(out, mask, (xy[0] + off, xy[1] + off), dark, opacity * 0.5)
    vis = visibility(rgb, mask, xy, colour, opacity)
    out = blend(out, mask, xy, colour, opacity)
    params = {"opacity": round(opacity, 3), "where": where, "colour": colour_name, "angle": angle}
    params["visibility"] = vis
    params.update(text=text, font_px=font.size, shadow=shadow)
    return out, (xy[0], xy[1], mask.width, mask.height), params


def add_logo(
    rgb: np.ndarray,
    rng: np.random.Generator,
    *,
    opacity: float | None = None,
    where: str | None = None,
) -> tuple[np.ndarray, tuple[int, int, int, int], dict[str, Any]]:
    """A shape-plus-initials (or -word) mark, semi-transparent."""
    h, w = rgb.shape[:2]
    side = min(h, w)
    opacity = float(rng.uniform(0.15, 0.6)) if opacity is None else opacity
    where = where or str(rng.choice([*CORNERS, "bottom-right", "centre"]))
    big = where == "centre"
    size = int(side * (rng.uniform(0.2, 0.4) if big else rng.uniform(0.08, 0.18)))
    word = (
        str(rng.choice(["studio", "PHOTO", "pix", "Lumen", "arte"])) if rng.random() < 0.5 else None
    )
    mask = _fit(logo_mask(size, rng, word), w, h)
    colour, colour_name = mark_colour(rng)
    xy = _place(mask.size, (w, h), where, rng)
    colour, colour_name = _visible(rgb, (*xy, *mask.size), colour, colour_name, opacity)
    out = blend(rgb, mask, xy, colour, opacity)
    params = {"opacity": round(opacity, 3), "where": where, "colour": colour_name, "word": word}
    params["visibility"] = visibility(rgb, mask, xy, colour, opacity)
    return out, (xy[0], xy[1], mask.width, mask.height), params


def add_banner(
    rgb: np.ndarray,
    rng: np.random.Generator,
    *,
    where: str | None = None,
    band_opacity: float | None = None,
) -> tuple[np.ndarray, tuple[int, int, int, int], dict[str, Any]]:
    """A full-width band at the top or bottom with near-opaque text in it."""
    h, w = rgb.shape[:2]
    where = where or ("bottom" if rng.random() < 0.7 else "top")
    band_opacity = float(rng.uniform(0.35, 0.8)) if band_opacity is None else band_opacity
    band_h = max(16, int(h * rng.uniform(0.06, 0.14)))
    margin = 0 if rng.random() < 0.7 else int(h * rng.uniform(0.0, 0.03))
    y = margin if where == "top" else h - band_h - margin
    u = rng.random()
    if u < 0.5:
        band, ink = (0, 0, 0), (255, 255, 255)
    elif u < 0.85:
        band, ink = (255, 255, 255), (0, 0, 0)
    else:
        band = tuple(int(v) for v in rng.integers(0, 256, 3))
        ink = (255, 255, 255) if sum(band) < 400 else (0, 0, 0)
    band_mask = Image.new("L", (w, band_h), 255)
    out = blend(rgb, band_mask, (0, y), band, band_opacity)
    text = str(rng.choice(TEXTS))
    font = load_font(max(10, int(band_h * rng.uniform(0.45, 0.65))), rng)
    mask = _fit(text_mask(text, font), int(w * 0.9), band_h)
    align = str(rng.choice(["left", "centre", "right"]))
    tx = {
        "left": band_h // 3,
        "centre": (w - mask.width) // 2,
        "right": w - mask.width - band_h // 3,
    }
    text_opacity = float(rng.uniform(0.75, 1.0))
    out = blend(out, mask, (tx[align], y + (band_h - mask.height) // 2), ink, text_opacity)
    params = {"where": where, "band_opacity": round(band_opacity, 3), "band_px": band_h}
    params.update(text=text, text_opacity=round(text_opacity, 3), margin=margin)
    return out, (0, y, w, band_h), params


def add_pattern(
    rgb: np.ndarray,
    rng: np.random.Generator,
    *,
    opacity: float | None = None,
    text: str | None = None,
    angle: float | None = None,
    colour: tuple[int, int, int] | None = None,
) -> tuple[np.ndarray, tuple[int, int, int, int], dict[str, Any]]:
    """A text (70 %) or logo mark tiled over the whole image on a regular grid."""
    h, w = rgb.shape[:2]
    side = min(h, w)
    opacity = float(rng.uniform(0.15, 0.6)) if opacity is None else opacity
    angle = float(rng.choice([0.0, rng.uniform(-45, 45)])) if angle is None else angle
    colour_name = "given"
    if colour is None:
        colour, colour_name = mark_colour(rng)
    if text is not None or rng.random() < 0.7:
        text = text or str(rng.choice(TEXTS))
        font = load_font(max(11, int(side * rng.uniform(0.035, 0.08))), rng)
        mask = text_mask(text, font, angle)
        glyph_px = float(font.size)
    else:
        mask = logo_mask(int(side * rng.uniform(0.08, 0.15)), rng)
        glyph_px = mask.height / 3
        if angle:
            mask = mask.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)
    # At least three repeats each way: the steps are at most a third of the image.
    gap_x, gap_y = rng.uniform(1.2, 2.2), rng.uniform(1.3, 2.8)
    natural = mask.height
    mask = _fit(mask, int(w / 3 / gap_x) - 4, int(h / 3 / gap_y) - 4)
    if glyph_px * mask.height / natural < 9:  # shrunk to a smudge: a short upright word instead
        text, angle, gap_x, gap_y = "PROOF", 0.0, 1.25, 1.4
        mask = _fit(
            text_mask(text, load_font(max(11, side // 20), index=0)),
            int(w / 3 / gap_x) - 4,
            int(h / 3 / gap_y) - 4,
        )
    step_x = int(mask.width * gap_x) + 4
    step_y = int(mask.height * gap_y) + 4
    stagger = rng.random() < 0.5
    tiled = np.zeros((h, w), np.float32)
    m = np.asarray(mask, np.float32)
    x_start, y_start = -int(rng.integers(0, step_x)), -int(rng.integers(0, step_y))
    for row, y in enumerate(range(y_start, h, step_y)):
        shift = step_x // 2 if stagger and row % 2 else 0
        for x in range(x_start - shift, w, step_x):
            x0, y0, x1, y1 = max(0, x), max(0, y), min(w, x + m.shape[1]), min(h, y + m.shape[0])
            if x1 > x0 and y1 > y0:
                region = tiled[y0:y1, x0:x1]
                np.maximum(region, m[y0 - y : y1 - y, x0 - x : x1 - x], out=region)
    colour, colour_name = _visible(rgb, (0, 0, w, h), colour, colour_name, opacity)
    out = blend(rgb, tiled.astype(np.uint8), (0, 0), colour, opacity)
    params = {"opacity": round(opacity, 3), "angle": round(angle, 1), "colour": colour_name}
    params["visibility"] = visibility(rgb, tiled.astype(np.uint8), (0, 0), colour, opacity)
    params.update(step=(step_x, step_y), stagger=stagger, text=text)
    return out, (0, 0, w, h), params


def add_sign(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An opaque board with text, composited into the scene (a negative: see the module doc)."""
    h, w = rgb.shape[:2]
    side = min(h, w)
    text = str(rng.choice(SIGN_TEXTS))
    font = load_font(max(12, int(side * rng.uniform(0.04, 0.09))), rng)
    mask = text_mask(text, font)
    pad = max(4, font.size // 3)
    board_w, board_h = mask.width + 2 * pad, mask.height + 2 * pad
    if board_w > w * 0.8:
        return rgb.copy()
    # The board stands out from where it is put (a sign is seen because it contrasts).
    x0, y0 = int(w * 0.12), int(h * 0.12)
    x = int(rng.integers(x0, max(x0 + 1, w - x0 - board_w)))
    y = int(rng.integers(y0, max(y0 + 1, h - y0 - board_h)))
    local = float(rgb[y : y + board_h, x : x + board_w].mean())
    light = local < 110 or (local < 170 and rng.random() < 0.5)
    board = (
        tuple(int(v) for v in rng.integers(190, 256, 3))
        if light
        else tuple(int(v) for v in rng.integers(0, 70, 3))
    )
    ink = tuple(int(v) for v in (rng.integers(0, 60, 3) if light else rng.integers(200, 256, 3)))
    sign = Image.new("RGB", (board_w, board_h), board)
    frame = (
        tuple(max(0, v - 60) for v in board) if light else tuple(min(255, v + 60) for v in board)
    )
    ImageDraw.Draw(sign).rectangle(
        (0, 0, board_w - 1, board_h - 1), outline=frame, width=max(1, pad // 4)
    )
    shade = np.linspace(1.0, rng.uniform(0.8, 1.0), board_w, dtype=np.float32)[None, :, None]
    sign_arr = np.clip(np.asarray(sign, np.float32) * shade, 0, 255).astype(np.uint8)
    sign_arr = blend(sign_arr, mask, (pad, pad), ink, 1.0)
    sign_img = Image.fromarray(sign_arr).convert("RGBA")
    sign_img = sign_img.rotate(float(rng.uniform(-8, 8)), Image.Resampling.BICUBIC, expand=True)
    sign_img = sign_img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 1.0))))
    canvas = Image.fromarray(rgb).convert("RGBA")
    canvas.alpha_composite(sign_img, (max(0, x), max(0, y)))
    return np.asarray(canvas.convert("RGB"), dtype=np.uint8)


def add_letterbox(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h = rgb.shape[0]
    bar = max(4, int(h * rng.uniform(0.06, 0.15)))
    out = rgb.copy()
    level = int(rng.integers(0, 20))
    out[:bar] = level
    out[h - bar :] = level
    return out


def _fit(mask: Image.Image, w: int, h: int) -> Image.Image:
    """Shrink ``mask`` to fit in (w, h) (keeping its aspect ratio); never enlarge."""
    scale = min(1.0, (w - 2) / max(mask.width, 1), (h - 2) / max(mask.height, 1))
    if scale >= 1.0:
        return mask
    size = (max(1, int(mask.width * scale)), max(1, int(mask.height * scale)))
    return mask.resize(size, Image.Resampling.LANCZOS)


# ------------------------------------------------------------------ the set

ADDERS = {"text": add_text, "logo": add_logo, "banner": add_banner, "pattern": add_pattern}

#: Images per group in the full set (quick: a quarter, at least 4 each).
FULL_COUNTS = {
    "text": 60,
    "logo": 60,
    "banner": 60,
    "pattern": 60,
    "clean": 120,
    "natural_text": 40,
    "sign": 40,
    "letterbox": 20,
}


def counts(quick: bool = False) -> dict[str, int]:
    return {k: max(4, v // 4) if quick else v for k, v in FULL_COUNTS.items()}


def generate(seed: int = 0, quick: bool = False) -> Iterator[Sample]:
    """Every sample of the set, in a fixed order for a given ``seed``."""
    photos = base_photos()
    names = sorted(photos)
    for group, n in counts(quick).items():
        rng = np.random.default_rng([seed, sum(map(ord, group))])
        for i in range(n):
            if group == "natural_text":
                base = ("text", "page")[i % 2]
                src = text_photos()[base]
                rgb = prepare_base(src, rng)
            else:
                base = names[(i + int(rng.integers(len(names)))) % len(names)]
                rgb = prepare_base(photos[base], rng)
            box: tuple[int, int, int, int] | None = None
            params: dict[str, Any] = {}
            if group in ADDERS:
                rgb, box, params = ADDERS[group](rgb, rng)
            elif group == "sign":
                rgb = add_sign(rgb, rng)
            elif group == "letterbox":
                rgb = add_letterbox(rgb, rng)
            if rng.random() < 0.8:
                quality = int(rng.integers(70, 96))
                rgb = jpeg(rgb, quality)
                params["jpeg"] = quality
            kind = group if group in KINDS else None
            yield Sample(rgb=rgb, kind=kind, group=group, base=base, box=box, params=params)
