"""A seeded, labelled evaluation set for the ``quality`` analyzer, built from real photos.

Everything comes from scikit-image's bundled photographs (no download): the
photos it ships, whole, plus seeded crops of those with a scene layout, give the
clean *bases* (64 with the default settings). Each :class:`Case` has a name, a
label set and a ``make()`` that builds the RGB image on demand; ``labels`` is a
subset of :data:`VOCABULARY` and says what was done to the image, not what any
analyzer measured:

* ``clean`` -- the bases as they are, and as JPEG at quality 75..95;
* ``blurry`` -- Gaussian blur (sigma 2, 3, 5 px as seen at 512 px) and motion blur
  (a line kernel of 9, 15 or 25 px at a random angle), plus scikit-image's
  ``clock``, a real photo taken while moving the camera;
* ``dark`` -- luma scaled by 0.08..0.18; ``bright`` -- compressed towards white,
  ``255 - (255 - x) * a`` with ``a`` in 0.10..0.18;
* ``noisy`` -- Gaussian noise, per channel, of sigma 28, 38 or 50 grey levels as
  seen at 640 px (scaled up with the image so it survives the analyzer's
  downscaling);
* ``blocky`` -- JPEG at quality 5..20, two per base (the 8 x 8 grid kept at
  full size);
* ``close`` -- extreme close-ups: tiny crops (3..8 % of the side) taken inside
  hand-annotated single surfaces of the photos (:data:`SURFACES`: a wall, a
  sleeve, the sky, a saucer, the fundus, a floor...), upscaled (bicubic) to
  the photo's size, plus the texture photos ``grass``, ``gravel`` and ``brick``,
  whole and cropped (a frame filled by one surface is ``close``; see
  ``docs/analyzers/quality.md``);
* hard negatives, labelled clean: night-like scenes (a photo darkened to
  0.06..0.12 except a bright elliptical subject), shallow depth of field (a
  sharp centre pasted onto a sigma-8 blurred copy), documents (scikit-image's
  ``page`` and ``text`` plus rendered text pages), and the fundus, deep-field
  and moon photos among the bases.

Crops for ``close`` whose median luma falls outside 55..200 are redrawn, so a
close-up is never also dark or bright. Nothing here calls the analyzer.
``quick=True`` keeps every other base (one crop per source) and one strength per
degradation: about 140 images.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache

import cv2
import numpy as np
from PIL import Image

VOCABULARY = ("blurry", "dark", "bright", "noisy", "blocky", "close")

#: Photos used whole as clean bases (scikit-image names; motorcycle_* are the stereo pair).
PHOTOS = (
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
    "motorcycle_left",
    "motorcycle_right",
    "page",
    "text",
)
#: Photos with a scene layout that seeded crops are taken from (moon, the documents
#: and the textures are used whole only: a crop of a plain surface is a close-up; the
#: fundus photo too: it is soft at full size, so a crop of it is blurry).
CROP_SOURCES = (
    "astronaut",
    "camera",
    "coffee",
    "chelsea",
    "rocket",
    "immunohistochemistry",
    "hubble_deep_field",
    "coins",
    "motorcycle_left",
    "motorcycle_right",
)
TEXTURES = ("grass", "gravel", "brick")

Box = tuple[float, float, float, float]
#: Hand-annotated single surfaces, (x0, y0, x1, y1) as fractions of the photo.
SURFACES: dict[str, tuple[Box, ...]] = {
    "astronaut": (
        (0.14, 0.00, 0.30, 0.10),  # the wall behind her
        (0.60, 0.00, 0.74, 0.12),
        (0.08, 0.56, 0.22, 0.68),  # the orange suit
        (0.57, 0.55, 0.68, 0.64),
    ),
    "camera": ((0.60, 0.02, 0.95, 0.20), (0.75, 0.55, 0.98, 0.75)),  # sky, lawn
    "coffee": (
        (0.72, 0.00, 0.98, 0.25),  # the table
        (0.00, 0.55, 0.10, 0.95),
        (0.16, 0.45, 0.28, 0.60),  # the saucer
        (0.38, 0.28, 0.56, 0.42),  # the crema
    ),
    "chelsea": (
        (0.28, 0.02, 0.50, 0.25),  # fur
        (0.05, 0.45, 0.25, 0.70),
        (0.86, 0.30, 0.99, 0.60),  # the background
    ),
    "retina": ((0.25, 0.55, 0.45, 0.75), (0.55, 0.35, 0.80, 0.55), (0.30, 0.12, 0.55, 0.25)),
    "motorcycle_left": (
        (0.05, 0.80, 0.30, 0.98),  # the floor
        (0.35, 0.88, 0.70, 0.99),
    ),
    "immunohistochemistry": ((0.12, 0.12, 0.30, 0.30),),
    "moon": ((0.55, 0.30, 0.90, 0.50), (0.05, 0.70, 0.35, 0.95)),
    "coins": ((0.00, 0.25, 0.06, 0.35), (0.86, 0.55, 0.94, 0.68)),
    "clock": ((0.00, 0.00, 0.25, 0.30),),  # the wall
    "cell": ((0.05, 0.05, 0.40, 0.40),),
}

MIN_CROP_PIXELS = 48_000


@dataclass(frozen=True)
class Case:
    name: str
    labels: frozenset[str]
    make: Callable[[], np.ndarray]
    """Builds the H x W x 3 uint8 image on demand (the set is too big to hold at once)."""


@cache
def photo(name: str) -> np.ndarray:
    """A scikit-image photo as H x W x 3 uint8 (grey photos replicated)."""
    from skimage import data

    if name.startswith("motorcycle_"):
        left, right, _ = data.stereo_motorcycle()
        arr = left if name == "motorcycle_left" else right
    else:
        arr = getattr(data, name)()
    arr = np.asarray(arr)
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    out = np.ascontiguousarray(arr[..., :3].astype(np.uint8))
    out.setflags(write=False)
    return out


# --- degradations --------------------------------------------------------------------------


def scale512(rgb: np.ndarray) -> float:
    """Pixels of this image per pixel of a 512 px one (never below 1)."""
    return max(1.0, max(rgb.shape[:2]) / 512)


def gaussian_blur(rgb: np.ndarray, sigma512: float) -> np.ndarray:
    return cv2.GaussianBlur(rgb, (0, 0), sigma512 * scale512(rgb))


def motion_kernel(length: float, angle_deg: float) -> np.ndarray:
    """A normalised line kernel (anti-aliased by 4x supersampling)."""
    size = math.ceil(length) | 1
    big = size * 4
    canvas = np.zeros((big, big), np.float32)
    c = (big - 1) / 2.0
    dx = math.cos(math.radians(angle_deg)) * (length * 4 - 1) / 2.0
    dy = -math.sin(math.radians(angle_deg)) * (length * 4 - 1) / 2.0
    p0 = (round((c - dx) * 16), round((c - dy) * 16))
    p1 = (round((c + dx) * 16), round((c + dy) * 16))
    cv2.line(canvas, p0, p1, 1.0, thickness=2, lineType=cv2.LINE_AA, shift=4)
    kernel = cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA)
    return kernel / float(kernel.sum())


def motion_blur(rgb: np.ndarray, length512: float, angle_deg: float) -> np.ndarray:
    kernel = motion_kernel(length512 * scale512(rgb), angle_deg)
    return cv2.filter2D(rgb, -1, kernel, borderType=cv2.BORDER_REFLECT)


def darken(rgb: np.ndarray, factor: float) -> np.ndarray:
    return np.clip(rgb.astype(np.float32) * factor + 0.5, 0, 255).astype(np.uint8)


def brighten(rgb: np.ndarray, factor: float) -> np.ndarray:
    out = 255.0 - (255.0 - rgb.astype(np.float32)) * factor
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def add_noise(rgb: np.ndarray, sigma640: float, seed: int) -> np.ndarray:
    sigma = sigma640 * max(1.0, max(rgb.shape[:2]) / 640)
    rng = np.random.default_rng(seed)
    noisy = rgb.astype(np.float32) + rng.normal(0.0, sigma, rgb.shape).astype(np.float32)
    return np.clip(noisy + 0.5, 0, 255).astype(np.uint8)


def jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=int(quality))
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def crop(rgb: np.ndarray, y: int, x: int, h: int, w: int) -> np.ndarray:
    return np.ascontiguousarray(rgb[y : y + h, x : x + w])


def shallow_depth_of_field(rgb: np.ndarray, share: float = 0.55) -> np.ndarray:
    """A sharp centre (``share`` of each side) pasted onto a sigma-8 blurred copy."""
    height, width = rgb.shape[:2]
    out = gaussian_blur(rgb, 8.0)
    ch, cw = int(height * share), int(width * share)
    y, x = (height - ch) // 2, (width - cw) // 2
    out[y : y + ch, x : x + cw] = rgb[y : y + ch, x : x + cw]
    return out


def night(rgb: np.ndarray, factor: float, cx: float, cy: float, radius: float) -> np.ndarray:
    """Darken to ``factor`` except a soft ellipse (the lit subject) kept as it was."""
    height, width = rgb.shape[:2]
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    d = np.hypot((xx / width - cx) / radius, (yy / height - cy) / radius)
    keep = np.clip((1.15 - d) / 0.3, 0.0, 1.0)[..., None]
    out = rgb.astype(np.float32) * (factor + (1.0 - factor) * keep)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def text_page(seed: int) -> np.ndarray:
    """A rendered page of text: dark ink on light paper."""
    rng = np.random.default_rng(seed)
    height, width = int(rng.integers(500, 900)), int(rng.integers(600, 900))
    paper = int(rng.integers(225, 252))
    page = np.full((height, width, 3), paper, np.uint8)
    fonts = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_COMPLEX, cv2.FONT_HERSHEY_DUPLEX)
    font = fonts[int(rng.integers(len(fonts)))]
    scale = float(rng.uniform(0.55, 0.9))
    step = int(34 * scale + rng.integers(6, 14))
    words = [
        *("the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while"),
        *("sphinx", "of", "black", "quartz", "judge", "vow"),
    ]
    ink = int(rng.integers(0, 60))
    for y in range(int(rng.integers(40, 80)), height - 30, step):
        line = " ".join(rng.choice(words, size=int(rng.integers(4, 9))))
        cv2.putText(page, line, (30, y), font, scale, (ink, ink, ink), 1 + int(scale > 0.7))
    return page


def surface_closeup(
    rgb: np.ndarray, box: Box, fraction: float, rng: np.random.Generator
) -> np.ndarray | None:
    """A ``fraction``-of-the-side square crop inside ``box``, upscaled to ``rgb``'s size."""
    height, width = rgb.shape[:2]
    x0, y0 = int(box[0] * width), int(box[1] * height)
    x1, y1 = int(box[2] * width), int(box[3] * height)
    side = max(6, round(fraction * max(height, width)))
    side = min(side, x1 - x0, y1 - y0)
    if side < 6:
        return None
    for _ in range(20):
        y = int(rng.integers(y0, y1 - side + 1))
        x = int(rng.integers(x0, x1 - side + 1))
        patch = crop(rgb, y, x, side, side)
        median = float(np.median(cv2.cvtColor(patch, cv2.COLOR_RGB2GRAY)))
        if 55 <= median <= 200:  # a close-up, not also a dark or bright frame
            return cv2.resize(patch, (width, height), interpolation=cv2.INTER_CUBIC)
    return None


# --- the set -------------------------------------------------------------------------------


def bases(seed: int = 0, crops_per_source: int = 5) -> list[tuple[str, Callable[[], np.ndarray]]]:
    """The clean photos: every photo whole, then seeded crops of the scene photos."""
    out: list[tuple[str, Callable[[], np.ndarray]]] = [
        (name, (lambda name=name: photo(name))) for name in PHOTOS
    ]
    rng = np.random.default_rng(seed)
    for source in CROP_SOURCES:
        height, width = photo(source).shape[:2]
        large = max(height, width) > 800
        for index in range(crops_per_source):
            for _ in range(50):
                lo, hi = (0.3, 0.7) if large else (0.5, 0.85)
                side = rng.uniform(lo, hi)
                aspect = rng.uniform(0.75, 1.33)
                h = min(height, int(side * height * math.sqrt(aspect)))
                w = min(width, int(side * width / math.sqrt(aspect)))
                if h * w >= MIN_CROP_PIXELS:
                    break
            y = int(rng.integers(0, height - h + 1))
            x = int(rng.integers(0, width - w + 1))
            out.append(
                (
                    f"{source}@crop{index}",
                    (lambda s=source, y=y, x=x, h=h, w=w: crop(photo(s), y, x, h, w)),
                )
            )
    return out


def cases(seed: int = 0, quick: bool = False) -> Iterator[Case]:
    """Every labelled case, in a fixed order for a given seed."""
    rng = np.random.default_rng(seed + 1)
    base_list = bases(seed, crops_per_source=1 if quick else 5)
    if quick:
        base_list = base_list[::2]

    def case(name: str, labels: tuple[str, ...], make: Callable[[], np.ndarray]) -> Case:
        return Case(name, frozenset(labels), make)

    blur_sigmas = (3.0,) if quick else (2.0, 3.0, 5.0)
    motion_lengths = (15.0,) if quick else (9.0, 15.0, 25.0)
    noise_sigmas = (38.0,) if quick else (28.0, 38.0, 50.0)
    for name, make in base_list:
        yield case(f"{name}", (), make)
        q_clean = int(rng.integers(75, 96))
        yield case(f"{name}|jpeg{q_clean}", (), lambda m=make, q=q_clean: jpeg(m(), q))
        for sigma in blur_sigmas:
            yield case(
                f"{name}|gauss{sigma:g}", ("blurry",), lambda m=make, s=sigma: gaussian_blur(m(), s)
            )
        for length in motion_lengths:
            angle = float(rng.uniform(0.0, 180.0))
            yield case(
                f"{name}|motion{length:g}@{angle:.0f}",
                ("blurry",),
                lambda m=make, n=length, a=angle: motion_blur(m(), n, a),
            )
        factor = float(rng.uniform(0.08, 0.18))
        yield case(f"{name}|dark{factor:.2f}", ("dark",), lambda m=make, f=factor: darken(m(), f))
        factor = float(rng.uniform(0.10, 0.18))
        yield case(
            f"{name}|bright{factor:.2f}", ("bright",), lambda m=make, f=factor: brighten(m(), f)
        )
        for sigma in noise_sigmas:
            noise_seed = int(rng.integers(1 << 30))
            yield case(
                f"{name}|noise{sigma:g}",
                ("noisy",),
                lambda m=make, s=sigma, k=noise_seed: add_noise(m(), s, k),
            )
        for quality in (int(rng.integers(5, 13)), int(rng.integers(13, 21)))[: 1 if quick else 2]:
            yield case(f"{name}|jpeg{quality}", ("blocky",), lambda m=make, q=quality: jpeg(m(), q))

    # Real motion blur.
    yield case("clock", ("blurry",), lambda: photo("clock"))

    # Close-ups: tiny crops inside single surfaces, upscaled; and plain textures.
    fractions = (0.05,) if quick else (0.03, 0.05, 0.08)
    for source, boxes in SURFACES.items():
        for b, box in enumerate(boxes):
            for fraction in fractions:
                sub = np.random.default_rng([seed, b, int(fraction * 1000), len(source)])
                image = surface_closeup(photo(source), box, fraction, sub)
                if image is not None:
                    yield case(f"{source}#surface{b}@{fraction:g}", ("close",), lambda i=image: i)
    for texture in TEXTURES:
        yield case(texture, ("close",), lambda t=texture: photo(t))
        height, width = photo(texture).shape[:2]
        for index in range(1 if quick else 3):
            side = float(rng.uniform(0.45, 0.75))
            h, w = int(side * height), int(side * width)
            y = int(rng.integers(0, height - h + 1))
            x = int(rng.integers(0, width - w + 1))
            yield case(
                f"{texture}@crop{index}",
                ("close",),
                lambda t=texture, y=y, x=x, h=h, w=w: crop(photo(t), y, x, h, w),
            )

    # Hard negatives: naturally dark scenes, shallow depth of field, documents.
    for source in ("astronaut", "coffee", "chelsea", "camera", "motorcycle_left", "rocket"):
        factor = float(rng.uniform(0.06, 0.12))
        cx, cy = float(rng.uniform(0.35, 0.65)), float(rng.uniform(0.35, 0.65))
        radius = float(rng.uniform(0.15, 0.25))
        yield case(
            f"{source}|night{factor:.2f}",
            (),
            lambda s=source, f=factor, x=cx, y=cy, r=radius: night(photo(s), f, x, y, r),
        )
        if source != "rocket":
            yield case(f"{source}|dof", (), lambda s=source: shallow_depth_of_field(photo(s)))
    for index in range(2 if quick else 5):
        yield case(f"document{index}", (), lambda k=index: text_page(seed * 100 + k))
