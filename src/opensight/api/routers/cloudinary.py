"""Cloudinary's Analyze API over HTTP: ``/v2/analysis/{cloud_name}/...`` (translation in compat).

Errors on these routes are Cloudinary error objects, never the native problem+json: the
route class catches them here, so the app-wide handlers stay as they are for ``/v1``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Coroutine
from typing import Any

import anyio
from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from ...compat.cloudinary import analyzers, requests
from ...compat.cloudinary.errors import CloudinaryError, from_native
from ...compat.cloudinary.service import CloudinaryService, Reply, new_request_id
from ...errors import ImageTooLarge, OpenSightError
from ..uploads import read_body

log = logging.getLogger("opensight.api.cloudinary")

PREFIX = "/v2/analysis/{cloud_name}"


def error_response(exc: CloudinaryError, request_id: str) -> JSONResponse:
    headers = {}
    if exc.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="cloudinary"'
    return JSONResponse(exc.body(request_id), status_code=exc.status, headers=headers or None)


class CloudinaryRoute(APIRoute):
    """Renders every failure of a route in Cloudinary's error shape, with a request id."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def route(request: Request) -> Response:
            request_id = new_request_id()
            request.state.request_id = request_id
            try:
                return await handle(request)
            except CloudinaryError as exc:
                return error_response(exc, request_id)
            except OpenSightError as exc:
                return error_response(from_native(exc), request_id)
            except RequestValidationError as exc:
                first = exc.errors()[0] if exc.errors() else {"msg": "invalid request"}
                return error_response(
                    CloudinaryError(400, "invalid_request", str(first.get("msg"))), request_id
                )
            except Exception:
                log.exception("unhandled error on %s %s", request.method, request.url.path)
                return error_response(
                    CloudinaryError(
                        500, "internal_error", "an unexpected error occurred; it has been logged"
                    ),
                    request_id,
                )

        return route


router = APIRouter(prefix=PREFIX, tags=["cloudinary"], route_class=CloudinaryRoute)


def _service(request: Request) -> CloudinaryService:
    return CloudinaryService(request.app.state.container, request.app.state.rate_limiter)


def _json(reply: Reply) -> JSONResponse:
    return JSONResponse(reply.body, status_code=reply.status, headers=reply.headers or None)


@router.post(
    "/analyze/{analyzer}",
    summary="Cloudinary Analyze: run one analyzer on a uri or stored asset",
    responses={202: {"description": "Accepted (async)"}},
)
async def analyze(cloud_name: str, analyzer: str, request: Request) -> JSONResponse:
    service = _service(request)
    principal = await run_in_threadpool(service.authenticate, request.headers.get("authorization"))
    mapping = analyzers.get(analyzer)
    service.admit(principal, mapping.limit_type)
    try:
        raw = await read_body(request, requests.MAX_BODY_BYTES)
    except ImageTooLarge:
        declared = request.headers.get("content-length", "")
        raise requests.too_large(int(declared) if declared.isdigit() else None) from None
    call = await run_in_threadpool(
        service.prepare, principal, cloud_name, mapping, raw, request.state.request_id
    )
    if call.run_async:
        return _json(await run_in_threadpool(service.submit, call))
    # sync analyses share the native API's bound on concurrent pipeline runs
    limiter = getattr(request.app.state, "sync_limiter", None)
    return _json(await anyio.to_thread.run_sync(service.run, call, limiter=limiter))


@router.get("/tasks/{task_id}", summary="Cloudinary Analyze: an async task's status")
async def task(cloud_name: str, task_id: str, request: Request) -> JSONResponse:
    service = _service(request)
    principal = await run_in_threadpool(service.authenticate, request.headers.get("authorization"))
    reply = await run_in_threadpool(
        service.task, principal, cloud_name, task_id, request.state.request_id
    )
    return _json(reply)


@router.api_route(
    "/{rest:path}",
    methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
    include_in_schema=False,
)
async def unknown(cloud_name: str, rest: str, request: Request) -> JSONResponse:
    raise CloudinaryError(
        404,
        "not_found",
        f"no endpoint {request.method} {request.url.path[:200]}; the Analyze API has "
        "POST /analyze/{analyzer} and GET /tasks/{task_id}",
    )
