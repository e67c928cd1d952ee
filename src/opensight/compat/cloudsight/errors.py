"""CloudSight's error shape: a JSON body with an ``error`` key (every client checks for it).

Field errors are Rails-style, ``{"error": {"locale": ["can't be blank"]}}``
(status 422); everything else is ``{"error": "message"}`` with the native
error's status. Auth failures are always 401 (CloudSight has no 403).
"""

from __future__ import annotations

import math
from typing import Any

from ...errors import (
    Forbidden,
    ImageTooLarge,
    InvalidImage,
    OpenSightError,
    RateLimited,
    Unauthorized,
    UnsupportedMediaType,
    UrlFetchFailed,
    UrlNotAllowed,
)


class CloudSightError(Exception):
    def __init__(
        self,
        status: int,
        error: str | dict[str, list[str]],
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(str(error))
        self.status = status
        self.error = error
        self.headers = headers or {}
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        return {"error": self.error, **self.extra}


def field_errors(errors: dict[str, list[str]], status: int = 422) -> CloudSightError:
    return CloudSightError(status, errors)


def unauthorized(message: str) -> CloudSightError:
    return CloudSightError(401, message, {"WWW-Authenticate": 'CloudSight realm="opensight"'})


def from_native(exc: OpenSightError, field: str | None = None) -> CloudSightError:
    """The CloudSight rendering of a native error; ``field`` names the input it is about."""
    if isinstance(exc, Unauthorized | Forbidden):
        return unauthorized(exc.detail)
    if isinstance(exc, RateLimited):
        retry = exc.extra.get("retry_after")
        headers = {"Retry-After": str(max(1, math.ceil(float(retry))))} if retry else {}
        return CloudSightError(429, exc.detail, headers)
    if isinstance(exc, UrlNotAllowed | UrlFetchFailed):
        field = field or "remote_image_url"
    elif isinstance(exc, ImageTooLarge | InvalidImage | UnsupportedMediaType):
        field = field or "image"
    if field is not None:
        # a field that is not an image is a validation error of that field, as in Rails
        status = 422 if isinstance(exc, UnsupportedMediaType) else exc.status
        return CloudSightError(status, {field: [exc.detail]})
    return CloudSightError(exc.status, exc.detail)
