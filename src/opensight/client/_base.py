"""What the sync and async clients share: settings, request building, reply parsing and
the retry policy. Nothing here does I/O on the network."""

from __future__ import annotations

import base64
import email.utils
import json
import os
import random
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeAlias
from urllib.parse import quote

import httpx

from .. import __version__
from .errors import (
    ConnectionError,
    OpenSightError,
    RequestTimeoutError,
    error_for,
)
from .models import Analyzer, BatchInfo, ImageInfo, Job, Problem

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
API_KEY_ENV = "OPENSIGHT_API_KEY"
BASE_URL_ENV = "OPENSIGHT_BASE_URL"
USER_AGENT = f"opensight-python/{__version__}"

#: a path (str or Path), raw bytes, a binary file object, or an http(s) URL string
ImageSource: TypeAlias = (
    str | os.PathLike[str] | bytes | bytearray | memoryview | IO[bytes] | ImageInfo
)
#: a feature list, or a comma-separated string of feature names
Features: TypeAlias = str | Sequence[str] | None

#: statuses the server answers before doing anything: always safe to resend
ALWAYS_RETRY_STATUSES = frozenset({429, 503})
#: gateway hiccups: safe to resend only when the request is idempotent
IDEMPOTENT_RETRY_STATUSES = frozenset({502, 504})
#: a 503 with one of these slugs will not get better by retrying
NO_RETRY_SLUGS = frozenset({"model_unavailable"})
#: longest Retry-After the client waits for; a longer one is raised to the caller
MAX_RETRY_AFTER = 60.0
BACKOFF_BASE = 0.5
BACKOFF_CAP = 8.0
MAX_POLL_INTERVAL = 2.0


# ----------------------------------------------------------------- settings
@dataclass
class Settings:
    base_url: str
    api_key: str | None
    timeout: float
    max_retries: int

    @classmethod
    def resolve(
        cls, base_url: str | None, api_key: str | None, timeout: float, max_retries: int
    ) -> Settings:
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        url = base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
        key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
        return cls(url.rstrip("/"), key or None, timeout, max_retries)

    def headers(self) -> dict[str, str]:
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers


# ------------------------------------------------------------------ sources
@dataclass
class Upload:
    """Image bytes to send as the multipart file ``image``."""

    data: bytes
    filename: str = "image"


def _is_url(value: str) -> bool:
    return value[:8].lower().startswith(("http://", "https://"))


def resolve_source(source: Any, image_id: str | ImageInfo | None = None) -> Upload | dict[str, str]:
    """An :class:`Upload`, or the JSON source field (``url``, ``image_id`` or ``base64``)."""
    if image_id is not None:
        if source is not None:
            raise TypeError("give either a source or image_id=, not both")
        return {"image_id": image_id.id if isinstance(image_id, ImageInfo) else str(image_id)}
    if source is None:
        raise TypeError("an image source is required (path, bytes, file, URL or image_id=)")
    if isinstance(source, ImageInfo):
        return {"image_id": source.id}
    if isinstance(source, str):
        if _is_url(source):
            return {"url": source}
        if source.startswith("data:"):
            return {"base64": source}
        if not Path(source).is_file():
            raise FileNotFoundError(f"{source!r} is neither an http(s) URL nor an existing file")
        return read_upload(source)
    return read_upload(source)


def read_upload(source: Any) -> Upload:
    """Bytes, a path or a binary file object -> :class:`Upload` (URLs are not uploads)."""
    if isinstance(source, bytes | bytearray | memoryview):
        return Upload(bytes(source))
    if isinstance(source, str) and _is_url(source):
        raise TypeError("a URL cannot be uploaded; pass the bytes, a path or a file")
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        return Upload(path.read_bytes(), path.name)
    read = getattr(source, "read", None)
    if callable(read):
        data = read()
        if not isinstance(data, bytes | bytearray):
            raise TypeError("open the file in binary mode ('rb')")
        name = getattr(source, "name", None)
        return Upload(bytes(data), Path(name).name if isinstance(name, str) else "image")
    raise TypeError(f"unsupported image source: {type(source).__name__}")


def batch_source(source: Any) -> str | dict[str, str]:
    """One entry of a batch's ``sources``: URLs stay URLs, local images travel as base64."""
    if isinstance(source, Mapping):
        return {str(k): str(v) for k, v in source.items()}
    resolved = resolve_source(source)
    if isinstance(resolved, Upload):
        return {"base64": base64.b64encode(resolved.data).decode()}
    return resolved


def feature_list(features: Features) -> list[str] | None:
    if features is None:
        return None
    if isinstance(features, str):
        return [f.strip() for f in features.split(",") if f.strip()]
    return [str(f) for f in features]


# ----------------------------------------------------------------- requests
@dataclass
class RequestSpec:
    """One API call, independent of the HTTP client that sends it."""

    method: str
    path: str
    params: dict[str, Any] | None = None
    json: Any = None
    data: dict[str, str] | None = None
    files: dict[str, tuple[str, bytes, str]] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    #: safe to send twice, so a broken connection may be retried
    idempotent: bool = False
    #: runs the analyzers while the caller waits: a read timeout is not retried
    slow: bool = False
    #: non-2xx statuses that are answers, not errors (e.g. /readyz's 503)
    accept: tuple[int, ...] = ()

    def kwargs(self) -> dict[str, Any]:
        return {
            "params": self.params,
            "json": self.json,
            "data": self.data,
            "files": self.files,
            "headers": self.headers or None,
        }


def _drop_none(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def analyze_request(
    source: Any,
    features: Features,
    *,
    image_id: str | ImageInfo | None = None,
    run_async: bool = False,
    ttl: float | None = None,
    webhook_url: str | None = None,
    idempotency_key: str | None = None,
    options: Mapping[str, Any] | None = None,
    skip_on: Iterable[str] | None = None,
) -> RequestSpec:
    resolved = resolve_source(source, image_id)
    feats = feature_list(features)
    skips = list(skip_on) if skip_on is not None else None
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    # a sync call only computes; an async one creates a job: safe to resend only with a key
    idempotent = not run_async or bool(idempotency_key)
    if isinstance(resolved, Upload):
        form = _drop_none(
            {
                "features": ",".join(feats) if feats else None,
                "async": "true" if run_async else None,
                "ttl": repr(float(ttl)) if ttl is not None else None,
                "webhook_url": webhook_url,
                "options": json.dumps(dict(options)) if options else None,
                "skip_on": ",".join(skips) if skips else None,
            }
        )
        return RequestSpec(
            "POST",
            "/v1/analyze",
            data=form,
            files={"image": (resolved.filename, resolved.data, "application/octet-stream")},
            headers=headers,
            idempotent=idempotent,
            slow=not run_async,
        )
    body = {
        **resolved,
        **_drop_none(
            {
                "features": feats,
                "async": True if run_async else None,
                "ttl": ttl,
                "webhook_url": webhook_url,
                "options": dict(options) if options else None,
                "skip_on": skips or None,
            }
        ),
    }
    return RequestSpec(
        "POST", "/v1/analyze", json=body, headers=headers, idempotent=idempotent, slow=not run_async
    )


def batch_request(
    sources: Iterable[Any],
    features: Features,
    *,
    options: Mapping[str, Any] | None = None,
    ttl: float | None = None,
    webhook_url: str | None = None,
) -> RequestSpec:
    body = _drop_none(
        {
            "sources": [batch_source(s) for s in sources],
            "features": feature_list(features),
            "options": dict(options) if options else None,
            "ttl": ttl,
            "webhook_url": webhook_url,
        }
    )
    return RequestSpec("POST", "/v1/batch", json=body)


def upload_request(source: Any) -> RequestSpec:
    upload = read_upload(source)
    return RequestSpec(
        "POST",
        "/v1/images",
        files={"image": (upload.filename, upload.data, "application/octet-stream")},
        idempotent=True,  # images are content-addressed: a repeat returns the same id
    )


def get_request(path: str, params: Mapping[str, Any] | None = None, **kw: Any) -> RequestSpec:
    return RequestSpec("GET", path, params=_drop_none(params or {}) or None, idempotent=True, **kw)


def jobs_params(status: str | None, cursor: str | None, limit: int) -> dict[str, Any]:
    return _drop_none({"status": status, "cursor": cursor, "limit": limit})


def ident(value: str | Job | BatchInfo | ImageInfo) -> str:
    """An id from a model or a string, safe as one path segment; refuses empty ids."""
    result = value if isinstance(value, str) else value.id
    if not result:
        raise ValueError("an id is required, got an empty string")
    return quote(result, safe="")


# ------------------------------------------------------------------ replies
def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """``Retry-After`` in seconds (delta-seconds or an HTTP date), or None."""
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def problem_of(response: httpx.Response) -> Problem:
    """The reply's problem+json, or a stand-in for a non-JSON error page (e.g. a proxy's)."""
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        body = None
    if isinstance(body, dict) and ("type" in body or "slug" in body or "detail" in body):
        body.setdefault("status", response.status_code)
        return Problem.model_validate(body)
    text = response.text.strip()[:500] if response.content else ""
    return Problem(
        type="about:blank",
        slug=f"http_{response.status_code}",
        title=response.reason_phrase or f"HTTP {response.status_code}",
        status=response.status_code,
        detail=text or response.reason_phrase or "",
    )


def error_from_response(response: httpx.Response) -> OpenSightError:
    return error_for(
        problem_of(response),
        response.status_code,
        headers=dict(response.headers),
        retry_after=parse_retry_after(response.headers),
    )


def connection_error(exc: httpx.TransportError, spec: RequestSpec) -> ConnectionError:
    where = f"{spec.method} {spec.path}"
    if isinstance(exc, httpx.TimeoutException):
        return RequestTimeoutError(f"{where} timed out ({type(exc).__name__}): {exc}")
    return ConnectionError(f"{where} failed ({type(exc).__name__}): {exc}")


def json_of(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        detail = (
            f"expected JSON from {response.request.method} {response.request.url.path}, got "
            f"{response.headers.get('content-type', 'no content type')}: {exc}"
        )
        raise OpenSightError(
            Problem(slug="invalid_response", title="The reply is not JSON", detail=detail),
            response.status_code,
        ) from exc


def parse_analyzers(body: Mapping[str, Any]) -> list[Analyzer]:
    defaults = set(body.get("default_features") or ())
    out = []
    for raw in body.get("analyzers") or ():
        analyzer = Analyzer.model_validate(raw)
        if "default" not in raw:
            analyzer.default = analyzer.name in defaults
        out.append(analyzer)
    return out


def parse_ndjson_line(line: str) -> Job | None:
    line = line.strip()
    return Job.model_validate_json(line) if line else None


# -------------------------------------------------------------------- retry
def backoff(attempt: int) -> float:
    """Exponential backoff with jitter: ~0.5 s, 1 s, 2 s ... capped at 8 s."""
    delay = min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt)
    return delay * (0.5 + random.random() / 2)


def retry_delay_for_status(
    spec: RequestSpec, response: httpx.Response, attempt: int, max_retries: int
) -> float | None:
    """Seconds to wait before resending, or None to raise the error now."""
    if attempt >= max_retries:
        return None
    status = response.status_code
    if status == 503 and problem_slug(response) in NO_RETRY_SLUGS:
        return None
    if status not in ALWAYS_RETRY_STATUSES and not (
        spec.idempotent and status in IDEMPOTENT_RETRY_STATUSES
    ):
        return None
    after = parse_retry_after(response.headers)
    if after is None:
        return backoff(attempt)
    if after > MAX_RETRY_AFTER:
        return None
    return after + random.random() * 0.1


def retry_delay_for_exception(
    spec: RequestSpec, exc: httpx.TransportError, attempt: int, max_retries: int
) -> float | None:
    """A connection that never opened is always safe to retry; a broken one only when idempotent."""
    if attempt >= max_retries:
        return None
    if isinstance(exc, httpx.UnsupportedProtocol):
        return None
    never_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    if never_sent:
        return backoff(attempt)
    if spec.slow and isinstance(exc, httpx.ReadTimeout):
        return None  # it ran out of time once; it would again, at the server's expense
    return backoff(attempt) if spec.idempotent else None


def problem_slug(response: httpx.Response) -> str:
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        return ""
    return str(body.get("slug", "")) if isinstance(body, dict) else ""


def next_poll_interval(interval: float) -> float:
    return min(MAX_POLL_INTERVAL, interval * 1.5)


class ClientCore:
    """Settings and helpers of both clients."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 3,
    ) -> None:
        self._settings = Settings.resolve(base_url, api_key, timeout, max_retries)

    @property
    def base_url(self) -> str:
        return self._settings.base_url

    @property
    def max_retries(self) -> int:
        return self._settings.max_retries

    def _http_kwargs(self) -> dict[str, Any]:
        return {
            "base_url": self._settings.base_url,
            "headers": self._settings.headers(),
            "timeout": httpx.Timeout(self._settings.timeout),
            "follow_redirects": False,
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self._settings.base_url!r})"
