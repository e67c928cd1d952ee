"""What the file says about itself: format, size, frames, camera, time, GPS, colour profile."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from ..images import DecodedImage, parse_exif_datetime
from .base import AnalysisContext, Analyzer
from .registry import register

try:  # LittleCMS may be missing from unusual Pillow builds
    from PIL import ImageCms
except ImportError:  # pragma: no cover - depends on the Pillow build
    ImageCms = None  # type: ignore[assignment]


class MetadataAnalyzer(Analyzer):
    name = "metadata"
    version = "1.0.0"
    description = "Format, dimensions, frames, EXIF camera and time, GPS and colour profile."

    def analyze(
        self, images: Sequence[DecodedImage], context: AnalysisContext
    ) -> list[dict[str, Any]]:
        return [describe_image(image) for image in images]


def describe_image(image: DecodedImage) -> dict[str, Any]:
    exif = dict(image.exif)
    return {
        "format": image.format.lower(),
        "width": image.width,
        "height": image.height,
        "mode": image.mode,
        "frames": image.frames,
        "animated": image.frames > 1,
        "has_alpha": image.has_alpha,
        "orientation": image.orientation,
        "camera": _camera(exif),
        "taken_at": _taken_at(exif),
        "has_gps": bool(image.gps),
        "gps": dict(image.gps) if image.gps else None,
        "color_profile": color_profile_name(image.icc_profile),
        "exif": exif,
    }


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip("\x00 ").strip()
    return text or None


def _camera(exif: dict[str, Any]) -> dict[str, str | None] | None:
    camera = {
        "make": _text(exif.get("Make")),
        "model": _text(exif.get("Model")),
        "lens": _text(exif.get("LensModel")),
    }
    return camera if any(camera.values()) else None


def _taken_at(exif: dict[str, Any]) -> str | None:
    for key in ("DateTimeOriginal", "DateTime"):
        value = exif.get(key)
        if isinstance(value, str):
            parsed = parse_exif_datetime(value)
            if parsed:
                return parsed
    return None


def color_profile_name(icc: bytes | None) -> str | None:
    """The ICC profile's description (e.g. 'sRGB IEC61966-2.1'), 'embedded', or None."""
    if not icc:
        return None
    if ImageCms is None:  # pragma: no cover
        return "embedded"
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        name = ImageCms.getProfileDescription(profile)
    except Exception:
        return "embedded"
    return _text(name) or "embedded"


register(MetadataAnalyzer())
