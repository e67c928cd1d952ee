"""Image Intelligence wire API (``/v2``): HTTP only; translation lives in
``opensight.compat.imageintelligence`` and the work in the native services.

Every error of these routes, native or foreign, is rendered in the API's own shape
(``{"statusCode", "error", "message"}``) by :class:`ImageIntelligenceRoute`, so the native
problem+json handlers stay untouched for ``/v1``.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from ...compat.imageintelligence.errors import ApiError, from_native, unauthorized
from ...compat.imageintelligence.render import render_job
from ...compat.imageintelligence.schemas import DetectRequestBody, TokenRequest, parse
from ...compat.imageintelligence.service import ImageIntelligenceService
from ...errors import OpenSightError
from ...services.keys import Principal
from ..errors import log
from ..ratelimit import TokenBuckets
from ..uploads import read_body

TOKEN_BODY_LIMIT = 16 * 1024
DETECT_BODY_LIMIT = 512 * 1024


class ImageIntelligenceRoute(APIRoute):
    """Renders every error raised on these routes in Image Intelligence's shape."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except ApiError as exc:
                return _reply(exc)
            except OpenSightError as exc:
                return _reply(from_native(exc))
            except RequestValidationError as exc:
                first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid"}
                where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("query", "body"))
                return _reply(ApiError(400, f"{where}: {first.get('msg')}"))
            except HTTPException as exc:
                return _reply(ApiError(exc.status_code, str(exc.detail)))
            except Exception:
                log.exception("unhandled error on %s %s", request.method, request.url.path)
                return _reply(ApiError(500, "an unexpected error occurred; it has been logged"))

        return guarded


def _reply(exc: ApiError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers or None)


router = APIRouter(prefix="/v2", tags=["Image Intelligence"], route_class=ImageIntelligenceRoute)


def _service(request: Request) -> ImageIntelligenceService:
    service: ImageIntelligenceService = request.app.state.container.imageintelligence
    return service


async def _principal(request: Request) -> Principal:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("send `Authorization: Bearer <accessToken>` from POST /v2/oauth/token")
    principal = await run_in_threadpool(_service(request).authenticate, token.strip())
    limiter: TokenBuckets = request.app.state.rate_limiter
    wait = limiter.take(principal.key_id)
    if wait > 0:
        raise ApiError(429, "rate limit exceeded; retry later", {"Retry-After": str(int(wait) + 1)})
    return principal


def _number(request: Request, name: str) -> float | None:
    value = request.query_params.get(name)
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except ValueError:
        raise ApiError(400, f"{name}: must be a number (a UNIX timestamp in ms)") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise ApiError(400, f"{name}: must be a finite number")
    return number


@router.post(
    "/oauth/token",
    summary="Access token for client credentials (clientId = key, clientSecret = secret)",
)
async def oauth_token(request: Request) -> JSONResponse:
    body = parse(TokenRequest, await read_body(request, TOKEN_BODY_LIMIT))
    grant = await run_in_threadpool(
        _service(request).issue_token, body.client_id, body.client_secret
    )
    return JSONResponse(
        {
            "accessToken": grant.token.token,
            "expiresAt": grant.token.claims.expires_at,
            "issuedAt": grant.token.claims.issued_at,
            "orgName": grant.org_name,
            "appName": grant.app_name,
            "scope": grant.scope,
        }
    )


@router.post("/detect", summary="Detect classes in 1-64 image URLs (one native job per image)")
async def create_detect(request: Request) -> JSONResponse:
    principal = await _principal(request)
    body = parse(DetectRequestBody, await read_body(request, DETECT_BODY_LIMIT))
    snapshot = await run_in_threadpool(_service(request).create, principal, body)
    return JSONResponse(render_job(snapshot))


@router.get("/detect/{detect_id}", summary="A detect job")
async def get_detect(detect_id: str, request: Request) -> JSONResponse:
    principal = await _principal(request)
    snapshot = await run_in_threadpool(_service(request).get, principal, detect_id)
    return JSONResponse(render_job(snapshot))


@router.get(
    "/detect",
    summary="Search detect jobs: page (1-based, 50 per page), feedId, customId, before, after",
)
async def search_detect(request: Request) -> JSONResponse:
    principal = await _principal(request)
    page = _number(request, "page")
    if page is not None and (page < 1 or page != int(page) or page > 1_000_000):
        raise ApiError(400, "page: must be a whole number from 1")
    params = request.query_params
    for name in ("feedId", "customId"):
        if len(params.get(name) or "") > 64:
            raise ApiError(400, f"{name}: at most 64 characters")
    snapshots = await run_in_threadpool(
        _service(request).search,
        principal,
        int(page or 1),
        params.get("feedId") or None,
        params.get("customId") or None,
        _number(request, "before"),
        _number(request, "after"),
    )
    return JSONResponse([render_job(s) for s in snapshots])


__all__ = ["router"]
