"""CloudSight's HTTP surface (``/image_requests``, ``/image_responses``): thin routes that read
headers and bodies, call ``opensight.compat.cloudsight`` and reply in CloudSight's shape.

Every error of these routes -- CloudSight's own, native ones, unexpected ones -- is
rendered as CloudSight's ``{"error": ...}`` body by :class:`CloudSightRoute`, so the
native problem+json handlers stay as they are for ``/v1``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from ...compat.cloudsight import oauth
from ...compat.cloudsight.errors import CloudSightError, from_native, unauthorized
from ...compat.cloudsight.request import FILE_FIELD, ImageRequest, flatten_json, parse
from ...compat.cloudsight.service import MAX_TTL_SECONDS, CloudSightService
from ...errors import OpenSightError, RateLimited
from ...services.keys import Principal
from ..ratelimit import TokenBuckets
from ..uploads import body_kind, read_file, read_form, read_json

log = logging.getLogger("opensight.api.cloudsight")


class CloudSightRoute(APIRoute):
    """Renders whatever a CloudSight route raises as CloudSight's error body."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except CloudSightError as exc:
                return _error(exc)
            except OpenSightError as exc:
                return _error(from_native(exc))
            except Exception:
                log.exception("unhandled error on %s %s", request.method, request.url.path)
                return _error(CloudSightError(500, "internal error; it has been logged"))

        return route


router = APIRouter(tags=["cloudsight"], route_class=CloudSightRoute)


def _error(exc: CloudSightError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers or None)


def _service(request: Request) -> CloudSightService:
    state = request.app.state
    if getattr(state, "cloudsight", None) is None:
        state.cloudsight = CloudSightService(state.container)
    service: CloudSightService = state.cloudsight
    return service


def _scheme_host(request: Request) -> tuple[str, str]:
    """How the client reached us, from Host and X-Forwarded-Proto (behind a TLS proxy)."""
    proto = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    host = request.headers.get("host") or request.url.netloc
    return proto or request.url.scheme, host


def _base_url(request: Request) -> str:
    scheme, host = _scheme_host(request)
    return f"{scheme}://{host}"


def _signed_urls(request: Request) -> list[str]:
    """The URL (without query) an OAuth client signed, in the spellings it may have used."""
    raw_path = request.scope.get("raw_path")
    path = raw_path.decode("latin-1") if raw_path else request.url.path
    return oauth.url_variants(*_scheme_host(request), path.split("?", 1)[0])


class _Auth:
    """The caller, checked in two steps so an OAuth body is read only after cheap checks."""

    def __init__(self, principal: Principal, pending: oauth.OAuthHeader | None) -> None:
        self.principal = principal
        self.pending = pending

    @classmethod
    async def start(cls, request: Request, service: CloudSightService) -> _Auth:
        header = request.headers.get("authorization", "")
        scheme, _, credentials = header.strip().partition(" ")
        if scheme.lower() == "cloudsight" and credentials.strip():
            key = credentials.strip()
            cached = service.container.keys.cached_principal(key)  # no thread hop when recent
            if cached is None:
                cached = await run_in_threadpool(service.authenticate_key, key)
            auth = cls(cached, None)
        elif scheme.lower() == "oauth":
            parsed, principal = await run_in_threadpool(service.begin_oauth, header)
            auth = cls(principal, parsed)
        else:
            raise unauthorized(
                "send `Authorization: CloudSight <key>` or an OAuth 1.0 HMAC-SHA1 signature "
                "(create a key with `opensight keys create NAME`)"
            )
        if auth.pending is None:
            auth.take_rate(request)
        return auth

    def take_rate(self, request: Request) -> None:
        """Spend one request of the key's budget. For OAuth only once the signature verified:
        the consumer key travels in clear, so it alone must not drain its owner's budget."""
        limiter: TokenBuckets = request.app.state.rate_limiter
        wait = limiter.take(self.principal.key_id)
        if wait > 0:
            raise from_native(
                RateLimited(f"rate limit of {limiter.rate:g} requests/s exceeded", retry_after=wait)
            )

    async def finish(
        self, request: Request, service: CloudSightService, form: oauth.Pairs = ()
    ) -> Principal:
        if self.pending is not None:
            await run_in_threadpool(
                service.finish_oauth,
                self.pending,
                self.principal,
                request.method,
                _signed_urls(request),
                form,
                list(request.query_params.multi_items()),
            )
            self.take_rate(request)
        return self.principal


async def _read_request(
    request: Request, max_bytes: int
) -> tuple[list[tuple[str, str]], bytes | None, list[tuple[str, str]]]:
    """(fields, uploaded image, fields an OAuth client may have signed)."""
    try:
        kind = body_kind(request)
    except OpenSightError as exc:
        raise CloudSightError(415, exc.detail) from None
    if kind == "json":
        return flatten_json(await read_json(request, max_bytes)), None, []
    if kind != "form":
        raise CloudSightError(
            415, "send multipart/form-data or application/x-www-form-urlencoded fields"
        )
    form = await read_form(request, max_bytes)
    try:
        try:
            upload = await read_file(form, FILE_FIELD, max_bytes)
        except OpenSightError as exc:
            raise from_native(exc, "image") from None
        pairs: list[tuple[str, str]] = []
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                if key != FILE_FIELD:
                    raise CloudSightError(422, {key: ["is not a known file field"]})
                continue
            pairs.append((key, value))
        if len(form.getlist(FILE_FIELD)) > 1:
            raise CloudSightError(422, {"image": ["is given more than once"]})
        return pairs, upload, pairs
    finally:
        await form.close()


@router.post(
    "/image_requests",
    summary="CloudSight: send an image",
    description="CloudSight-compatible; see docs/compat/cloudsight.md.",
)
async def image_requests(request: Request) -> JSONResponse:
    service = _service(request)
    auth = await _Auth.start(request, service)
    fields, upload, signed = await _read_request(
        request, service.container.settings.max_upload_bytes
    )
    principal = await auth.finish(request, service, signed)
    parsed: ImageRequest = parse(fields, upload is not None, MAX_TTL_SECONDS)
    job = await run_in_threadpool(service.submit, principal, parsed, upload)
    return JSONResponse(await run_in_threadpool(service.body, job, _base_url(request)))


@router.get("/image_responses/{token}", summary="CloudSight: poll an image request")
async def image_responses(token: str, request: Request) -> JSONResponse:
    service = _service(request)
    principal = await (await _Auth.start(request, service)).finish(request, service)
    job = await run_in_threadpool(service.job, principal, token)
    if job is None:
        return JSONResponse({"status": "not found"})
    body = await run_in_threadpool(service.body, job, _base_url(request))
    return JSONResponse(body)


@router.post("/image_requests/{token}/repost", summary="CloudSight: repost a timed-out request")
async def repost(token: str, request: Request) -> Response:
    service = _service(request)
    principal = await (await _Auth.start(request, service)).finish(request, service)
    await run_in_threadpool(service.repost, principal, token)
    return Response(status_code=200)


@router.get(
    "/cloudsight/images/{token}",
    summary="CloudSight: the image of a request (signed, expiring URL from the job's `url`)",
)
async def image_content(token: str, request: Request) -> Response:
    service = _service(request)
    data, media_type, sha256 = await run_in_threadpool(
        service.image_content,
        token,
        request.query_params.get("expires"),
        request.query_params.get("signature"),
    )
    return Response(
        data,
        media_type=media_type,
        headers={
            "ETag": f'"{sha256}"',
            "Cache-Control": "private, max-age=300",
            "X-Content-Type-Options": "nosniff",
        },
    )


_OTHER_METHODS = ["GET", "PUT", "PATCH", "DELETE"]


@router.api_route("/image_requests", methods=_OTHER_METHODS, include_in_schema=False)
@router.api_route("/image_requests/{token}/repost", methods=_OTHER_METHODS, include_in_schema=False)
@router.api_route(
    "/image_responses/{token}", methods=["POST", "PUT", "PATCH", "DELETE"], include_in_schema=False
)
async def wrong_method(request: Request) -> JSONResponse:
    """A CloudSight path with a method it does not take: 405 in CloudSight's shape."""
    allowed = "GET" if request.url.path.startswith("/image_responses/") else "POST"
    return JSONResponse(
        {"error": f"{request.method} is not allowed here; use {allowed}"},
        status_code=405,
        headers={"Allow": allowed},
    )
