"""VisualSnoop's error shape: ``{"status": <HTTP status>, "message": "..."}``, always JSON.

The client calls ``.json()`` on every reply and reads ``message`` when a call fails,
so no error may be HTML or problem+json. Native errors keep their status, except
that a bad request (invalid field, undecodable image) is VisualSnoop's plain 400
rather than the native 422.
"""

from __future__ import annotations

import math
from typing import Any

from ...errors import OpenSightError

#: Native error slugs whose status differs in VisualSnoop.
_STATUS = {"validation_error": 400, "invalid_image": 400}


class BadRequest(OpenSightError):
    type, title, status = "bad_request", "Bad request", 400


class MethodNotAllowed(OpenSightError):
    type, title, status = "method_not_allowed", "Method not allowed", 405


def status_of(exc: OpenSightError) -> int:
    return _STATUS.get(exc.type, exc.status)


def error_body(status: int, message: str) -> dict[str, Any]:
    return {"status": status, "message": message}


def render(exc: OpenSightError) -> tuple[int, dict[str, Any], dict[str, str]]:
    """(status, body, headers) of a native or VisualSnoop error."""
    status = status_of(exc)
    headers: dict[str, str] = {}
    retry_after = exc.extra.get("retry_after")
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(float(retry_after))))
    if "allow" in exc.extra:
        headers["Allow"] = str(exc.extra["allow"])
    if status == 401:
        headers["WWW-Authenticate"] = 'VSHMAC realm="opensight"'
    return status, error_body(status, exc.detail), headers
