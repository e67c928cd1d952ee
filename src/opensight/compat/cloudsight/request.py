"""Parse a CloudSight image request (form fields or JSON) into checked values.

Fields (the python client's and the other official clients' names):
``image_request[image]`` (file) xor ``image_request[remote_image_url]``,
``image_request[locale]`` (required), ``[language]``, ``[device_id]``,
``[latitude]``, ``[longitude]``, ``[altitude]``, ``[ttl]`` (seconds or
``max``), ``focus[x]``, ``focus[y]`` (the Java clients write ``focus[X]``).
Unknown or repeated fields are refused, like missing ones, with Rails-style
field errors (``{"locale": ["can't be blank"]}``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import CloudSightError, field_errors

FILE_FIELD = "image_request[image]"
LOCALE_FIELD = "image_request[locale]"

#: form field -> short name used in errors and ``api_data``
FIELDS = {
    "image_request[remote_image_url]": "remote_image_url",
    LOCALE_FIELD: "locale",
    "image_request[language]": "language",
    "image_request[device_id]": "device_id",
    "image_request[latitude]": "latitude",
    "image_request[longitude]": "longitude",
    "image_request[altitude]": "altitude",
    "image_request[ttl]": "ttl",
    "focus[x]": "focus_x",
    "focus[y]": "focus_y",
}
#: A language tag such as en, en-US or pt_BR (the caption analyzer's own rule).
_LOCALE = re.compile(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8}){0,3}$")
MAX_URL_LENGTH = 4096


@dataclass(frozen=True)
class ImageRequest:
    locale: str
    ttl_seconds: float
    ttl_max: bool
    remote_image_url: str | None = None
    language: str | None = None
    device_id: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    altitude: float | None = None
    focus: tuple[float, float] | None = None
    """As sent: relative (both in 0..1) or pixels; see :func:`relative_focus`."""

    def api_data(self) -> dict[str, Any]:
        """What the job keeps of the request (rendered back, and shown in the native job)."""
        data: dict[str, Any] = {
            "locale": self.locale,
            "ttl": "max" if self.ttl_max else self.ttl_seconds,
        }
        for name in ("remote_image_url", "language", "device_id", "latitude", "longitude"):
            value = getattr(self, name)
            if value is not None:
                data[name] = value
        if self.altitude is not None:
            data["altitude"] = self.altitude
        if self.focus is not None:
            data["focus"] = {"x": self.focus[0], "y": self.focus[1]}
        return data


def canonical_name(name: str) -> str:
    lowered = name.lower()
    return lowered if lowered in ("focus[x]", "focus[y]") else name


def flatten_json(body: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``{"image_request": {"locale": ...}, "focus": {"x": ...}}`` (or already flat keys)
    as the form's ``(name, value)`` pairs."""
    pairs: list[tuple[str, str]] = []
    for key, value in body.items():
        if key in ("image_request", "focus") and isinstance(value, Mapping):
            pairs.extend((f"{key}[{sub}]", _scalar(f"{key}[{sub}]", v)) for sub, v in value.items())
        else:
            pairs.append((key, _scalar(key, value)))
    return pairs


def _scalar(name: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise field_errors({_short(name): ["must be a string or a number"]})
    return str(value)


def _short(name: str) -> str:
    return FIELDS.get(canonical_name(name), name)


def parse(pairs: Iterable[tuple[str, str]], has_file: bool, max_ttl: float) -> ImageRequest:
    """Check every field; all problems are reported at once, as CloudSight does."""
    errors: dict[str, list[str]] = {}
    values: dict[str, str] = {}

    def add(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    for raw_name, value in pairs:
        name = canonical_name(raw_name)
        if name == FILE_FIELD:
            add("image", "must be a file part")
        elif name not in FIELDS:
            add(raw_name, "is not a known field")
        elif name in values:
            add(FIELDS[name], "is given more than once")
        else:
            values[name] = value.strip()

    def text(name: str, limit: int) -> str | None:
        value = values.get(name)
        if value is None or value == "":
            return None
        if len(value) > limit:
            add(FIELDS[name], f"is too long (maximum is {limit} characters)")
            return None
        return value

    def number(name: str, low: float = -math.inf, high: float = math.inf) -> float | None:
        value = values.get(name)
        if value is None or value == "":
            return None
        try:
            parsed = float(value)
        except ValueError:
            add(FIELDS[name], "is not a number")
            return None
        if not math.isfinite(parsed):
            add(FIELDS[name], "is not a number")
            return None
        if not low <= parsed <= high:
            add(FIELDS[name], f"must be between {low:g} and {high:g}")
            return None
        return parsed

    locale = text(LOCALE_FIELD, 35)
    if locale is None and "locale" not in errors:
        add("locale", "can't be blank")
    elif locale is not None and not _LOCALE.match(locale):
        add("locale", "is not a locale such as en-US")
    language = text("image_request[language]", 35)
    if language is not None and not _LOCALE.match(language):
        add("language", "is not a language such as en or en-US")
    device_id = text("image_request[device_id]", 200)
    latitude = number("image_request[latitude]", -90, 90)
    longitude = number("image_request[longitude]", -180, 180)
    altitude = number("image_request[altitude]")

    url = text("image_request[remote_image_url]", MAX_URL_LENGTH)
    if has_file and url:
        add("image", "give either an image or a remote_image_url, not both")
    elif not has_file and url is None and "remote_image_url" not in errors:
        add("image", "can't be blank (send image_request[image] or [remote_image_url])")

    ttl_max = values.get("image_request[ttl]", "").lower() == "max"
    ttl: float | None = max_ttl
    if not ttl_max and values.get("image_request[ttl]"):
        ttl = number("image_request[ttl]")
        if ttl is not None and not 0 < ttl <= max_ttl:
            add("ttl", f"must be greater than 0 and at most {max_ttl:g} (or max)")

    focus_x = number("focus[x]", 0)
    focus_y = number("focus[y]", 0)
    if ("focus[x]" in values) != ("focus[y]" in values):
        add("focus", "needs both focus[x] and focus[y]")
    focus = (focus_x, focus_y) if focus_x is not None and focus_y is not None else None

    if errors:
        raise field_errors(errors)
    assert locale is not None and ttl is not None
    return ImageRequest(
        locale=locale,
        ttl_seconds=ttl,
        ttl_max=ttl_max or not values.get("image_request[ttl]"),
        remote_image_url=url,
        language=language,
        device_id=device_id,
        latitude=latitude,
        longitude=longitude,
        altitude=altitude,
        focus=focus,
    )


def relative_focus(focus: tuple[float, float], width: int, height: int) -> tuple[float, float]:
    """The focal point as fractions of the image (the caption analyzer's ``focus``).

    CloudSight's clients send either fractions (both values in 0..1: the Go
    client's ``SetFocusRelative``) or pixels (``SetFocusAbsolute``); pixel (1, 1)
    and fraction (1.0, 1.0) differ by a pixel at most, so the rule is unambiguous
    in practice.
    """
    x, y = focus
    if x <= 1 and y <= 1:
        return x, y
    if x > width or y > height:
        raise CloudSightError(422, {"focus": [f"is outside the {width}x{height} image"]})
    return round(x / width, 6), round(y / height, 6)
