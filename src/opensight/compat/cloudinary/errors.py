"""Cloudinary's error object, and how native errors map onto it.

``{"error": {"category", "code", "message", "details", "request_id"}}``. The SDK parses
400/401/403/404/500 as ``ErrorResponse`` and 429 as ``RateLimitedResponse``; any other status
would reach its caller as an untyped ``APIError``. So every native status is folded onto
those six: other 4xx (413, 415, 422, 409) become 400 ``user_error`` and every 5xx (including
503 ``model_unavailable`` and ``overloaded``) becomes 500 ``server_error``. The native slug
is kept as ``code`` so nothing is lost.
"""

from __future__ import annotations

from typing import Any

from ...errors import OpenSightError

USER_ERROR = "user_error"
AUTH_ERROR = "auth_error"
SERVER_ERROR = "server_error"
RATE_LIMIT_ERROR = "rate_limit_error"

_CATEGORIES = {400: USER_ERROR, 401: AUTH_ERROR, 403: AUTH_ERROR, 404: USER_ERROR}


class CloudinaryError(Exception):
    """An error to answer in Cloudinary's shape (status already one the SDK types)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        retry_after: float | None = None,
        limits: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        self.retry_after = retry_after
        self.limits = limits

    @property
    def category(self) -> str:
        return category_of(self.status)

    def body(self, request_id: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "error": error_object(self.status, self.code, self.message, self.details, request_id)
        }
        if self.status == 429:
            body["limits"] = self.limits
        return body


def wire_status(native_status: int) -> int:
    """The status Cloudinary's SDK types for a native status."""
    if native_status in (400, 401, 403, 404, 429):
        return native_status
    if 400 <= native_status < 500:
        return 400
    return 500


def category_of(status: int) -> str:
    if status == 429:
        return RATE_LIMIT_ERROR
    return _CATEGORIES.get(status, SERVER_ERROR if status >= 500 else USER_ERROR)


def error_object(
    status: int, code: str, message: str, details: dict[str, Any] | None, request_id: str
) -> dict[str, Any]:
    return {
        "category": category_of(status),
        "code": code,
        "message": message,
        "details": details or {},
        "request_id": request_id,
    }


def from_native(exc: OpenSightError) -> CloudinaryError:
    """A native error as Cloudinary sees it; ``extra`` fields (e.g. ``model``) become details."""
    extra = dict(exc.extra)
    retry_after = extra.pop("retry_after", None)
    return CloudinaryError(
        wire_status(exc.status),
        exc.type,
        exc.detail,
        details=extra or None,
        retry_after=float(retry_after) if retry_after is not None else None,
    )


def from_problem(problem: dict[str, Any]) -> CloudinaryError:
    """A failed job's stored problem+json (``job.error``) as a Cloudinary error."""
    status = int(problem.get("status") or 500)
    known = {"type", "slug", "title", "status", "detail", "instance"}
    return CloudinaryError(
        wire_status(status),
        str(problem.get("slug") or "internal_error"),
        str(problem.get("detail") or problem.get("title") or "the analysis failed"),
        details={k: v for k, v in problem.items() if k not in known} or None,
    )
