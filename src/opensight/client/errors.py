"""Typed errors: every problem+json reply becomes a subclass of :class:`OpenSightError`.

The class is chosen by the problem's ``slug`` first, then by the HTTP status, so a
new slug from a newer server still lands on the right family (e.g. any 5xx is a
:class:`ServerError`).
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .models import Problem

if TYPE_CHECKING:
    from .models import BatchInfo, Job

__all__ = [
    "AuthenticationError",
    "BadRequestError",
    "BatchTimeout",
    "ConflictError",
    "ConnectionError",
    "ImageTooLargeError",
    "InvalidImageError",
    "JobTimeout",
    "ModelUnavailableError",
    "NotFoundError",
    "OpenSightError",
    "PermissionDeniedError",
    "RateLimitError",
    "RequestTimeoutError",
    "ServerError",
    "UnsupportedMediaTypeError",
    "UrlFetchError",
    "UrlNotAllowedError",
    "ValidationError",
    "WebhookVerificationError",
    "error_for",
]


class OpenSightError(Exception):
    """An error answered by the API (or, for :class:`ConnectionError`, no answer at all)."""

    def __init__(
        self,
        problem: Problem,
        status_code: int | None = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.problem = problem
        self.status_code = status_code if status_code is not None else problem.status
        self.headers: dict[str, str] = dict(headers or {})
        super().__init__(str(problem))

    @property
    def slug(self) -> str:
        return self.problem.slug

    @property
    def detail(self) -> str:
        return self.problem.detail

    @property
    def title(self) -> str:
        return self.problem.title

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status_code}, slug={self.slug!r}, detail={self.detail!r})"


class BadRequestError(OpenSightError):
    """400: the request was malformed."""


class AuthenticationError(OpenSightError):
    """401: missing or invalid API key."""


class PermissionDeniedError(OpenSightError):
    """403: the key is revoked or not allowed to do this."""


class NotFoundError(OpenSightError):
    """404: no such image, job or batch (for this tenant)."""


class ConflictError(OpenSightError):
    """409: the resource is in the wrong state (e.g. cancelling a finished job)."""


class ValidationError(OpenSightError):
    """422 ``validation_error``: a field of the request is not valid."""


class InvalidImageError(OpenSightError):
    """``invalid_image``: the bytes look like an image but cannot be decoded."""


class ImageTooLargeError(OpenSightError):
    """413 ``image_too_large``: too many bytes or pixels."""


class UnsupportedMediaTypeError(OpenSightError):
    """415 ``unsupported_media_type``: not an image format the server reads."""


class UrlNotAllowedError(BadRequestError):
    """``url_not_allowed``: the server refuses to fetch this URL (e.g. a private address)."""


class UrlFetchError(OpenSightError):
    """``url_fetch_failed``: the server could not download the URL."""


class RateLimitError(OpenSightError):
    """429: too many requests; ``retry_after`` is the server's advice in seconds."""

    def __init__(
        self,
        problem: Problem,
        status_code: int | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(problem, status_code, headers=headers)
        self.retry_after = retry_after


class ServerError(OpenSightError):
    """5xx: the server failed or is busy."""


class ModelUnavailableError(ServerError):
    """``model_unavailable``: an analyzer's model is not installed on the server."""


class ConnectionError(OpenSightError, builtins.ConnectionError):
    """No HTTP answer: the connection failed, broke, or timed out.

    Also a builtin :class:`ConnectionError`, so ``except ConnectionError`` catches it
    whichever of the two names is in scope. ``status_code`` is None.
    """

    def __init__(self, message: str) -> None:
        super().__init__(
            Problem(
                type="about:blank",
                slug="connection_error",
                title="Connection failed",
                detail=message,
            )
        )


class RequestTimeoutError(ConnectionError):
    """The server did not answer within the client's ``timeout``."""


class JobTimeout(TimeoutError):
    """:meth:`Client.wait` gave up: the job was not final in time. ``job`` is its last state."""

    def __init__(self, job: Job, timeout: float) -> None:
        super().__init__(f"job {job.id} is still {job.status} after {timeout:g} s")
        self.job = job
        self.timeout = timeout


class BatchTimeout(TimeoutError):
    """:meth:`Client.wait_batch` gave up; ``batch`` is its last state."""

    def __init__(self, batch: BatchInfo, timeout: float) -> None:
        super().__init__(f"batch {batch.id} is not done after {timeout:g} s ({batch.counts})")
        self.batch = batch
        self.timeout = timeout


class WebhookVerificationError(ValueError):
    """A webhook delivery's signature or timestamp does not check out."""


_BY_SLUG: dict[str, type[OpenSightError]] = {
    "bad_request": BadRequestError,
    "unauthorized": AuthenticationError,
    "forbidden": PermissionDeniedError,
    "not_found": NotFoundError,
    "conflict": ConflictError,
    "validation_error": ValidationError,
    "invalid_image": InvalidImageError,
    "image_too_large": ImageTooLargeError,
    "unsupported_media_type": UnsupportedMediaTypeError,
    "url_not_allowed": UrlNotAllowedError,
    "url_fetch_failed": UrlFetchError,
    "rate_limited": RateLimitError,
    "model_unavailable": ModelUnavailableError,
}

_BY_STATUS: dict[int, type[OpenSightError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: ImageTooLargeError,
    415: UnsupportedMediaTypeError,
    422: ValidationError,
    429: RateLimitError,
}


def error_class(slug: str, status: int | None) -> type[OpenSightError]:
    if slug in _BY_SLUG:
        return _BY_SLUG[slug]
    if status is not None and status in _BY_STATUS:
        return _BY_STATUS[status]
    if status is not None and status >= 500:
        return ServerError
    return OpenSightError


def error_for(
    problem: Problem | Mapping[str, Any],
    status_code: int | None = None,
    *,
    headers: Mapping[str, str] | None = None,
    retry_after: float | None = None,
) -> OpenSightError:
    """The typed error for a problem (an API reply's, or a failed job's ``error``)."""
    if not isinstance(problem, Problem):
        problem = Problem.model_validate(dict(problem))
    status = status_code if status_code is not None else problem.status
    cls = error_class(problem.slug, status)
    if issubclass(cls, RateLimitError):
        return cls(problem, status, headers=headers, retry_after=retry_after)
    return cls(problem, status, headers=headers)
