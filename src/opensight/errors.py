"""Typed errors shared by every layer; the API renders them as problem+json.

``status`` is the HTTP status a caller should see. It lives here (not in the
router) so that every front end -- native API, compat routers, CLI -- agrees
on what kind of failure each error is.
"""

from __future__ import annotations

from typing import Any

#: Base of the problem ``type`` URIs; the slug follows it.
PROBLEM_TYPE_BASE = "https://opensight.dev/problems/"


class OpenSightError(Exception):
    type: str = "internal_error"
    title: str = "Internal error"
    status: int = 500

    def __init__(self, detail: str = "", **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra

    def problem(self) -> dict[str, Any]:
        """The RFC 9457 body of this error: the API's reply and a failed job's ``error``."""
        body: dict[str, Any] = {
            "type": PROBLEM_TYPE_BASE + self.type,
            "slug": self.type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        body.update({k: v for k, v in self.extra.items() if k != "retry_after"})
        return body


class ValidationFailed(OpenSightError):
    type, title, status = "validation_error", "The request is not valid", 422


class InvalidImage(OpenSightError):
    type, title, status = "invalid_image", "The image could not be decoded", 422


class ImageTooLarge(OpenSightError):
    type, title, status = "image_too_large", "The image is too large", 413


class UnsupportedMediaType(OpenSightError):
    type, title, status = "unsupported_media_type", "Not a supported image format", 415


class UrlNotAllowed(OpenSightError):
    type, title, status = "url_not_allowed", "The URL is not allowed", 400


class UrlFetchFailed(OpenSightError):
    type, title, status = "url_fetch_failed", "The URL could not be fetched", 422


class NotFound(OpenSightError):
    type, title, status = "not_found", "Not found", 404


class Conflict(OpenSightError):
    type, title, status = "conflict", "Conflict", 409


class RateLimited(OpenSightError):
    type, title, status = "rate_limited", "Too many requests", 429


class Unauthorized(OpenSightError):
    type, title, status = "unauthorized", "Missing or invalid credentials", 401


class Forbidden(OpenSightError):
    type, title, status = "forbidden", "Credentials revoked or not allowed", 403


class ModelUnavailable(OpenSightError):
    type, title, status = "model_unavailable", "A model this analyzer needs is not installed", 503

    def __init__(self, model_id: str, detail: str = "") -> None:
        super().__init__(
            detail
            or f"model {model_id!r} is not installed; run `opensight models pull {model_id}`",
            model=model_id,
        )
        self.model_id = model_id


class UnknownFeature(OpenSightError):
    type, title, status = "validation_error", "Unknown analyzer", 422


class WorkerLost(OpenSightError):
    type, title, status = "worker_lost", "The workers running this job kept stopping", 500


class ServiceUnavailable(OpenSightError):
    type, title, status = "service_unavailable", "The service is busy", 503


class Overloaded(OpenSightError):
    """A bounded queue (e.g. a model's batcher) is full: back off and retry."""

    type, title, status = "overloaded", "The server is overloaded", 503

    def __init__(self, detail: str = "", retry_after: float = 1.0, **extra: Any) -> None:
        super().__init__(detail, retry_after=retry_after, **extra)
        self.retry_after = retry_after
