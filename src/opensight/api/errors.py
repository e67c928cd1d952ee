"""RFC 9457 problem+json for every native error; never a bare 500 page."""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import PROBLEM_TYPE_BASE, OpenSightError

log = logging.getLogger("opensight.api")

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = PROBLEM_TYPE_BASE

_HTTP_SLUGS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "image_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
}


def problem(
    status: int,
    slug: str,
    title: str,
    detail: str,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": TYPE_BASE + slug,
        "slug": slug,
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def problem_for(exc: OpenSightError, instance: str | None = None) -> JSONResponse:
    headers: dict[str, str] = {}
    extra = dict(exc.extra)
    retry_after = extra.pop("retry_after", None)
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(float(retry_after))))
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="opensight"'
    return problem(exc.status, exc.type, exc.title, exc.detail, instance, headers or None, **extra)


def install(app: FastAPI) -> None:
    @app.exception_handler(OpenSightError)
    async def _domain(request: Request, exc: OpenSightError) -> JSONResponse:
        return problem_for(exc, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type")}
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"] if p != "body")
        return problem(
            422,
            "validation_error",
            "The request is not valid",
            f"{where}: {first['msg']}" if where else str(first["msg"]),
            request.url.path,
            errors=errors,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        slug = _HTTP_SLUGS.get(exc.status_code, "http_error")
        return problem(
            exc.status_code,
            slug,
            str(exc.detail),
            str(exc.detail),
            request.url.path,
            headers=dict(exc.headers or {}) or None,
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(
            500,
            "internal_error",
            "Internal error",
            "an unexpected error occurred; it has been logged",
            request.url.path,
        )
