"""The OpenSight Python SDK: :class:`Client` (blocking) and :class:`AsyncClient` (asyncio).

    from opensight.client import Client

    with Client("http://127.0.0.1:8000", api_key="osk_...") as client:
        result = client.analyze("photo.jpg", ["quality"])
        print(result["quality"]["score"])

Only :mod:`httpx` and :mod:`pydantic` are needed; nothing of the server is imported.
"""

from ._async import AsyncClient
from ._sync import Client
from .errors import (
    AuthenticationError,
    BadRequestError,
    BatchTimeout,
    ConflictError,
    ConnectionError,
    ImageTooLargeError,
    InvalidImageError,
    JobTimeout,
    ModelUnavailableError,
    NotFoundError,
    OpenSightError,
    PermissionDeniedError,
    RateLimitError,
    RequestTimeoutError,
    ServerError,
    UnsupportedMediaTypeError,
    UrlFetchError,
    UrlNotAllowedError,
    ValidationError,
    WebhookVerificationError,
)
from .models import (
    FINAL_STATUSES,
    AnalysisResult,
    Analyzer,
    BatchInfo,
    ImageFacts,
    ImageInfo,
    Job,
    JobPage,
    Problem,
    WebhookInfo,
)
from .webhooks import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    compute_signature,
    construct_event,
    verify_webhook,
)

__all__ = [
    "FINAL_STATUSES",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "AnalysisResult",
    "Analyzer",
    "AsyncClient",
    "AuthenticationError",
    "BadRequestError",
    "BatchInfo",
    "BatchTimeout",
    "Client",
    "ConflictError",
    "ConnectionError",
    "ImageFacts",
    "ImageInfo",
    "ImageTooLargeError",
    "InvalidImageError",
    "Job",
    "JobPage",
    "JobTimeout",
    "ModelUnavailableError",
    "NotFoundError",
    "OpenSightError",
    "PermissionDeniedError",
    "Problem",
    "RateLimitError",
    "RequestTimeoutError",
    "ServerError",
    "UnsupportedMediaTypeError",
    "UrlFetchError",
    "UrlNotAllowedError",
    "ValidationError",
    "WebhookInfo",
    "WebhookVerificationError",
    "compute_signature",
    "construct_event",
    "verify_webhook",
]
