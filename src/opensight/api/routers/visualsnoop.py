"""VisualSnoop ``/api/v1`` (HTTP only): read signatures, queries and raw bodies, call
:mod:`opensight.compat.visualsnoop`, and answer in VisualSnoop's JSON -- errors
included, which never reach the native problem+json handlers.

Every route exists twice: under ``/api/v1`` (the key's collection) and under
``/api/v1/collections/{collection}`` (a named collection, for unbound keys).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Match

from ...compat.visualsnoop import auth, params
from ...compat.visualsnoop.errors import MethodNotAllowed, error_body, render
from ...compat.visualsnoop.replay import ReplayGuard
from ...compat.visualsnoop.service import VisualSnoopCollection
from ...errors import NotFound, OpenSightError, RateLimited
from ...services.container import Container
from ..ratelimit import TokenBuckets
from ..uploads import read_body

log = logging.getLogger("opensight.api.visualsnoop")

#: Recent signatures, shared through the database (see compat.visualsnoop.replay).
REPLAY = ReplayGuard()

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def _reply(body: dict[str, Any], status: int, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(body, status_code=status, headers=headers)


class VisualSnoopRoute(APIRoute):
    """Renders every failure of its handler as ``{"status", "message"}``."""

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except OpenSightError as exc:
                status, body, headers = render(exc)
                return _reply(body, status, headers)
            except RequestValidationError as exc:
                return _reply(error_body(400, str(exc)), 400)
            except StarletteHTTPException as exc:
                return _reply(error_body(exc.status_code, str(exc.detail)), exc.status_code)
            except ClientDisconnect:
                return _reply(error_body(400, "the client disconnected"), 400)
            except Exception:
                log.exception("unhandled error on %s %s", request.method, request.url.path)
                return _reply(
                    error_body(500, "an unexpected error occurred; it has been logged"), 500
                )

        return guarded


router = APIRouter(prefix="/api/v1", route_class=VisualSnoopRoute, include_in_schema=False)


def _signed_paths(request: Request) -> list[str]:
    """The path the client signed: as it came on the wire, else re-encoded the way
    ``requests`` encodes it (for proxies that decode paths)."""
    paths = []
    raw = request.scope.get("raw_path")
    if isinstance(raw, bytes) and raw:
        paths.append(raw.decode("latin-1").split("?", 1)[0])
    paths.append(quote(request.url.path, safe="/!#$&'()*+,:;=@[]~"))
    return paths


async def _caller(
    request: Request, allowed: tuple[str, ...] = ()
) -> tuple[Container, VisualSnoopCollection, dict[str, str]]:
    """Authenticate (VSHMAC), rate-limit and check the query; the caller's collection."""
    container: Container = request.app.state.container
    signed = auth.parse(request.headers.get("authorization"), request.headers.get("date"))
    principal = await run_in_threadpool(
        auth.authenticate,
        container.keys,
        signed,
        request.method,
        _signed_paths(request),
        REPLAY,
    )
    limiter: TokenBuckets = request.app.state.rate_limiter
    wait = limiter.take(principal.key_id)
    if wait > 0:
        raise RateLimited(
            f"rate limit of {limiter.rate:g} requests/s exceeded; retry later", retry_after=wait
        )
    query = params.query(request.query_params.multi_items(), allowed)
    collection = VisualSnoopCollection(
        container.collections, principal, request.path_params.get("collection")
    )
    return container, collection, query


async def _image(request: Request, container: Container) -> bytes:
    params.content_type(request.headers.get("content-type", ""))
    return params.image_body(await read_body(request, container.settings.max_upload_bytes))


def _image_id(request: Request) -> str:
    return str(request.path_params["image_id"])


# ---------------------------------------------------------------------- handlers
async def get_collection(request: Request) -> Response:
    _, collection, query = await _caller(request, ("session",))
    params.session(query)
    return _reply(await run_in_threadpool(collection.info), 200)


async def add_image(request: Request) -> Response:
    container, collection, _ = await _caller(request)
    data = await _image(request, container)
    image_id = request.path_params.get("image_id")
    body, status = await run_in_threadpool(collection.add, data, image_id, False)
    return _reply(body, status)


async def put_image(request: Request) -> Response:
    container, collection, _ = await _caller(request)
    data = await _image(request, container)
    body, status = await run_in_threadpool(collection.add, data, _image_id(request), True)
    return _reply(body, status)


async def get_image(request: Request) -> Response:
    _, collection, _ = await _caller(request)
    return _reply(await run_in_threadpool(collection.get, _image_id(request)), 200)


async def delete_image(request: Request) -> Response:
    _, collection, _ = await _caller(request)
    return _reply(await run_in_threadpool(collection.delete, _image_id(request)), 200)


async def list_images(request: Request) -> Response:
    _, collection, query = await _caller(request, ("start", "count"))
    count = params.count(query.get("count"))
    start = params.start(query.get("start"))
    return _reply(await run_in_threadpool(collection.list, start, count), 200)


async def search(request: Request) -> Response:
    container, collection, _ = await _caller(request)
    data = await _image(request, container)
    return _reply(await run_in_threadpool(collection.search, data), 200)


async def search_by_id(request: Request) -> Response:
    _, collection, _ = await _caller(request)
    return _reply(await run_in_threadpool(collection.search_by_id, _image_id(request)), 200)


ROUTES: list[tuple[str, Handler, str]] = [
    ("/collection", get_collection, "GET"),
    ("/image", add_image, "POST"),
    ("/image/{image_id:path}", add_image, "POST"),
    ("/image/{image_id:path}", put_image, "PUT"),
    ("/image/{image_id:path}", get_image, "GET"),
    ("/image/{image_id:path}", delete_image, "DELETE"),
    ("/images", list_images, "GET"),
    ("/search", search, "POST"),
    ("/search/{image_id:path}", search_by_id, "GET"),
]

for _prefix in ("", "/collections/{collection}"):
    for _path, _handler, _method in ROUTES:
        router.add_api_route(_prefix + _path, _handler, methods=[_method])


async def unknown(request: Request) -> Response:
    """Anything else under /api/v1: 405 for a known path, else 404 -- as JSON."""
    allowed = sorted(
        {
            method
            for route in router.routes
            if isinstance(route, APIRoute)
            and route.endpoint is not unknown
            and route.matches(request.scope)[0] is Match.PARTIAL
            for method in (route.methods or ())
        }
    )
    if allowed:
        raise MethodNotAllowed(
            f"{request.method} is not allowed on {request.url.path}; use {', '.join(allowed)}",
            allow=", ".join(allowed),
        )
    raise NotFound(f"the VisualSnoop API has no endpoint {request.method} {request.url.path}")


_ANY = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]
router.add_api_route("", unknown, methods=_ANY)
router.add_api_route("/{rest:path}", unknown, methods=_ANY)

__all__ = ["router"]
