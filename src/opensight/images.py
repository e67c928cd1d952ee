"""Decode an image once, safely, into the form every analyzer shares.

Limits are enforced before any pixel is decoded: byte size first, then the
pixel count read from the header, so a decompression bomb costs nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

import cv2
import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from .errors import ImageTooLarge, InvalidImage, UnsupportedMediaType

try:  # HEIC/HEIF (iPhone photos); optional at import so a broken wheel only loses HEIC
    import pillow_heif

    pillow_heif.register_heif_opener()
    HEIF_AVAILABLE = True
except Exception:  # pragma: no cover - depends on the platform wheel
    HEIF_AVAILABLE = False

# We do our own pixel check (below) so Pillow's warning/error thresholds must not fire first.
Image.MAX_IMAGE_PIXELS = None

SUPPORTED_FORMATS = {"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "HEIF", "HEIC", "MPO"}
DEFAULT_MAX_BYTES = 25 * 1024 * 1024
DEFAULT_MAX_PIXELS = 60_000_000


@dataclass(frozen=True)
class ImageLimits:
    max_bytes: int = DEFAULT_MAX_BYTES
    max_pixels: int = DEFAULT_MAX_PIXELS


@dataclass
class DecodedImage:
    """An image decoded once: upright 8-bit RGB pixels plus what the file said about itself."""

    rgb: np.ndarray
    """H x W x 3 uint8, EXIF orientation applied."""
    format: str
    sha256: str
    """Of the original bytes."""
    byte_size: int
    mode: str
    """The file's own colour mode before conversion (e.g. CMYK, I;16, P)."""
    frames: int = 1
    exif: dict[str, Any] = field(default_factory=dict)
    gps: dict[str, Any] | None = None
    icc_profile: bytes | None = None
    orientation: int = 1
    has_alpha: bool = False
    source: str | None = None
    """Where it came from (file path or URL), for reports only."""

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @cached_property
    def gray(self) -> np.ndarray:
        """H x W uint8 luma (ITU-R 601), shared by analyzers that need it."""
        r, g, b = (self.rgb[..., i].astype(np.float32) for i in range(3))
        return np.clip(0.299 * r + 0.587 * g + 0.114 * b + 0.5, 0, 255).astype(np.uint8)

    @cached_property
    def pil(self) -> Image.Image:
        return Image.fromarray(self.rgb, "RGB")

    @classmethod
    def from_array(cls, rgb: np.ndarray, format: str = "PNG") -> DecodedImage:
        """An image made in memory (tests, benches, warm-up): ``rgb`` is H x W x 3 uint8;
        the hash is of the pixels since there are no file bytes."""
        rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
        return cls(
            rgb=rgb, format=format, sha256=sha256_hex(rgb.tobytes()), byte_size=rgb.size, mode="RGB"
        )

    def info(self) -> dict[str, Any]:
        return {
            "sha256": self.sha256,
            "width": self.width,
            "height": self.height,
            "format": self.format.lower(),
            "bytes": self.byte_size,
        }


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def probe(data: bytes, limits: ImageLimits = ImageLimits()) -> Image.Image:
    """Open the header only and enforce the limits; raise a typed error otherwise."""
    if len(data) == 0:
        raise InvalidImage("the image is empty (0 bytes)")
    if len(data) > limits.max_bytes:
        raise ImageTooLarge(f"the image is {len(data)} bytes; the limit is {limits.max_bytes}")
    try:
        img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as exc:
        raise UnsupportedMediaType(
            "not a recognised image (supported: JPEG, PNG, WebP, GIF, BMP, TIFF, HEIC/HEIF)"
        ) from exc
    except Image.DecompressionBombError as exc:  # pragma: no cover - limit disabled above
        raise ImageTooLarge(str(exc)) from exc
    except Exception as exc:
        raise InvalidImage(f"the image header is corrupt: {exc}") from exc
    fmt = (img.format or "").upper()
    if fmt not in SUPPORTED_FORMATS:
        raise UnsupportedMediaType(f"image format {fmt or 'unknown'} is not supported")
    width, height = img.size
    if width <= 0 or height <= 0:
        raise InvalidImage(f"the image has an invalid size {width}x{height}")
    if width * height > limits.max_pixels:
        raise ImageTooLarge(
            f"the image is {width}x{height} = {width * height} pixels; "
            f"the limit is {limits.max_pixels}"
        )
    return img


@dataclass(frozen=True)
class ImageHeader:
    """What the header says, limits already enforced: enough to store an image."""

    format: str
    width: int
    """Upright (EXIF orientation applied)."""
    height: int
    sha256: str
    byte_size: int


def inspect(data: bytes, limits: ImageLimits = ImageLimits()) -> ImageHeader:
    """Validate ``data`` from its header only (no pixel decode): for storing an image
    whose pixels a worker decodes later, so each job decodes once."""
    img = probe(data, limits)
    fmt = (img.format or "").upper()
    width, height = img.size
    try:
        orientation = int(img.getexif().get(ExifTags.Base.Orientation, 1) or 1)
    except Exception:
        orientation = 1
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    return ImageHeader(
        format="HEIF" if fmt == "HEIC" else fmt,
        width=width,
        height=height,
        sha256=sha256_hex(data),
        byte_size=len(data),
    )


def decode(
    data: bytes, limits: ImageLimits = ImageLimits(), source: str | None = None
) -> DecodedImage:
    """Validate and decode ``data`` into a :class:`DecodedImage` (first frame of animations)."""
    img = probe(data, limits)
    fmt = (img.format or "").upper()
    if fmt == "HEIC":
        fmt = "HEIF"
    mode = img.mode
    frames = int(getattr(img, "n_frames", 1) or 1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exif = img.getexif()
            orientation = int(exif.get(ExifTags.Base.Orientation, 1) or 1)
            fast = _decode_plain(data, img, fmt, orientation)
            if fast is not None:
                rgb, has_alpha = fast, False
            else:
                img.seek(0)
                img.load()
                upright = ImageOps.exif_transpose(img) if orientation != 1 else img
                rgb, has_alpha = _to_rgb8(upright)
    except (OSError, SyntaxError, ValueError, EOFError, IndexError) as exc:
        raise InvalidImage(f"the image data is truncated or corrupt: {exc}") from exc
    if rgb.shape[0] * rgb.shape[1] > limits.max_pixels:  # pragma: no cover - header lied
        raise ImageTooLarge("the decoded image exceeds the pixel limit")
    return DecodedImage(
        rgb=rgb,
        format=fmt,
        sha256=sha256_hex(data),
        byte_size=len(data),
        mode=mode,
        frames=frames,
        exif=_readable_exif(exif),
        gps=_gps(exif),
        icc_profile=img.info.get("icc_profile"),
        orientation=orientation,
        has_alpha=has_alpha,
        source=source,
    )


def _decode_plain(data: bytes, img: Image.Image, fmt: str, orientation: int) -> np.ndarray | None:
    """OpenCV decode of the common case -- complete 8-bit RGB/grey JPEG or PNG, upright,
    opaque -- or None to take Pillow's general path.

    Same libjpeg-turbo/libpng output as Pillow, but it releases the GIL for the whole
    decode and writes straight into the array (Pillow's ``tobytes`` copy holds the
    GIL): measurably better when several requests decode at once. Truncated files are
    left to Pillow, which refuses them (OpenCV would return the partial image).
    """
    if orientation != 1 or img.mode not in ("RGB", "L") or "transparency" in img.info:
        return None
    tail = data[-32:]
    if fmt == "JPEG":
        if b"\xff\xd9" not in tail:
            return None
    elif fmt == "PNG":
        if b"IEND" not in tail:
            return None
    else:
        return None
    flags = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if bgr is None or bgr.shape[:2] != (img.size[1], img.size[0]):
        return None
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _to_rgb8(img: Image.Image) -> tuple[np.ndarray, bool]:
    """Any Pillow mode -> 8-bit RGB; transparency is flattened onto white."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float64)
        maxval = 65535.0 if arr.max(initial=0) > 255 or mode.startswith("I;16") else 255.0
        gray = np.clip(arr / maxval * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.stack([gray] * 3, axis=-1)), False
    if mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min(initial=0)), float(arr.max(initial=1))
        gray = np.clip((arr - lo) / max(hi - lo, 1e-9) * 255.0, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.stack([gray] * 3, axis=-1)), False
    has_alpha = (
        mode in ("RGBA", "LA", "PA", "RGBa", "La")
        or (mode == "P" and "transparency" in img.info)
        or (mode in ("RGB", "L") and "transparency" in img.info)
    )
    if has_alpha:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        rgb_img = Image.alpha_composite(background, rgba).convert("RGB")
    else:
        rgb_img = img.convert("RGB")
    return np.ascontiguousarray(np.asarray(rgb_img, dtype=np.uint8)), has_alpha


_EXIF_KEEP = {
    "Make",
    "Model",
    "LensModel",
    "LensMake",
    "DateTime",
    "DateTimeOriginal",
    "DateTimeDigitized",
    "Software",
    "ExposureTime",
    "FNumber",
    "ISOSpeedRatings",
    "FocalLength",
    "Orientation",
    "Artist",
    "Copyright",
}


def _readable_exif(exif: Image.Exif) -> dict[str, Any]:
    out: dict[str, Any] = {}
    merged: dict[int, Any] = dict(exif)
    with contextlib.suppress(Exception):  # a malformed sub-IFD loses only its tags
        merged.update(exif.get_ifd(ExifTags.IFD.Exif))
    for tag, value in merged.items():
        name = ExifTags.TAGS.get(tag)
        if name not in _EXIF_KEEP:
            continue
        out[name] = _json_safe(value)
    return out


def _gps(exif: Image.Exif) -> dict[str, Any] | None:
    try:
        gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    except Exception:
        return None
    if not gps:
        return None
    result: dict[str, Any] = {}
    lat, lon = gps.get(ExifTags.GPS.GPSLatitude), gps.get(ExifTags.GPS.GPSLongitude)
    try:
        if lat and lon:
            la = _dms(lat) * (-1 if gps.get(ExifTags.GPS.GPSLatitudeRef) in ("S", b"S") else 1)
            lo = _dms(lon) * (-1 if gps.get(ExifTags.GPS.GPSLongitudeRef) in ("W", b"W") else 1)
            result["latitude"], result["longitude"] = round(la, 7), round(lo, 7)
        alt = gps.get(ExifTags.GPS.GPSAltitude)
        if alt is not None:
            result["altitude"] = round(float(alt), 2)
    except (TypeError, ValueError, ZeroDivisionError):
        pass
    return result or {"present": True}


def _dms(value: Any) -> float:
    d, m, s = (float(x) for x in value)
    return d + m / 60.0 + s / 3600.0


def _json_safe(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace").strip("\x00 ")
    if isinstance(value, (int, str, bool)) or value is None:
        return value.strip("\x00 ") if isinstance(value, str) else value
    if isinstance(value, tuple):
        return [_json_safe(v) for v in value]
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def parse_exif_datetime(value: str | None) -> str | None:
    """EXIF 'YYYY:MM:DD HH:MM:SS' -> ISO 8601, or None when unparseable."""
    if not value:
        return None
    try:
        return datetime.strptime(value.strip(), "%Y:%m:%d %H:%M:%S").isoformat()
    except ValueError:
        return None
