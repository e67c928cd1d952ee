"""Checks on what a VisualSnoop request carries besides its signature: query
parameters (only the ones each endpoint knows, each once) and raw image bodies."""

from __future__ import annotations

from collections.abc import Iterable

from ...errors import UnsupportedMediaType
from .errors import BadRequest

DEFAULT_COUNT = 20
MAX_COUNT = 1000

#: Body types that are certainly not an image: the caller sent a form or a document.
_NOT_IMAGES = ("multipart/", "application/x-www-form-urlencoded", "application/json", "text/")


def query(items: Iterable[tuple[str, str]], allowed: Iterable[str]) -> dict[str, str]:
    """The query as a dict; 400 for a parameter this endpoint does not take or a repeat."""
    known = set(allowed)
    out: dict[str, str] = {}
    for name, value in items:
        if name not in known:
            takes = ", ".join(sorted(known)) or "no query parameters"
            raise BadRequest(f"unknown query parameter {name!r}; this endpoint takes {takes}")
        if name in out:
            raise BadRequest(f"query parameter {name!r} is given more than once")
        out[name] = value
    return out


def session(params: dict[str, str]) -> None:
    value = params.get("session")
    if value is not None and value != "init":
        raise BadRequest(f"session must be 'init', not {value!r}")


def count(value: str | None) -> int:
    """``count`` of ``GET /images``: 1 to 1000, default 20."""
    if value is None or value == "":
        return DEFAULT_COUNT
    if not value.isdigit() or not 1 <= int(value) <= MAX_COUNT:
        raise BadRequest(f"count must be a whole number from 1 to {MAX_COUNT}, not {value!r}")
    return int(value)


def start(value: str | None) -> str | None:
    """``start`` of ``GET /images``: an image id; empty means the newest image."""
    return value or None


def content_type(value: str) -> None:
    """The body is the image itself (the client sends it with no content type): refuse
    forms and documents up front, before reading them."""
    kind = value.split(";", 1)[0].strip().lower()
    if kind and any(kind.startswith(prefix) for prefix in _NOT_IMAGES):
        raise UnsupportedMediaType(
            f"send the image bytes themselves as the body, not {kind!r} "
            "(no content type, image/* or application/octet-stream)"
        )


def image_body(data: bytes) -> bytes:
    if not data:
        raise BadRequest("the body is empty; send the image bytes as the request body")
    return data
