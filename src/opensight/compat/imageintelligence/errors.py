"""Image Intelligence error bodies: ``{"statusCode", "error", "message"}``.

The published v2 spec names the statuses (400 malformed request, 401 bad credentials,
404, 500) but no error body; this one is what its JavaScript-era clients read (a status
code, a stable upper-case code, a human message) and is documented in
docs/compat/imageintelligence.md.
"""

from __future__ import annotations

from typing import Any

from ...errors import OpenSightError

_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "TOO_MANY_REQUESTS",
    500: "INTERNAL_SERVER_ERROR",
    503: "SERVICE_UNAVAILABLE",
}


class ApiError(Exception):
    """An error in this API's own shape (raised by the translators and the router)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.status, self.message)


def error_body(status: int, message: str) -> dict[str, Any]:
    return {"statusCode": status, "error": _CODES.get(status, "ERROR"), "message": message}


def from_native(exc: OpenSightError) -> ApiError:
    """A native error as this API reports it: validation problems are 400 here (the spec's
    "malformed request"), a revoked key is a 401 like any dead credential."""
    status = exc.status
    if status == 422:
        status = 400
    elif status == 403:
        status = 401
    headers: dict[str, str] = {}
    retry_after = exc.extra.get("retry_after")
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, int(float(retry_after) + 0.999)))
    return ApiError(status, exc.detail, headers)


def unauthorized(message: str) -> ApiError:
    return ApiError(401, message, {"WWW-Authenticate": 'Bearer realm="imageintelligence"'})
