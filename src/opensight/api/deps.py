"""FastAPI dependencies: the container, and the authenticated, rate-limited caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from ..errors import RateLimited, Unauthorized
from ..services.container import Container
from ..services.keys import Principal
from .ratelimit import TokenBuckets


def container_of(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


async def get_container(request: Request) -> Container:
    """``async`` on purpose: FastAPI runs a plain ``def`` dependency in its threadpool,
    a thread hand-off per request for one attribute read."""
    return container_of(request)


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            "send `Authorization: Bearer <key>` (create one with `opensight keys create NAME`)"
        )
    return token.strip()


async def get_principal(request: Request) -> Principal:
    container = container_of(request)
    token = bearer_token(request)
    principal = container.keys.cached_principal(token)
    if principal is None:
        principal = await run_in_threadpool(container.keys.authenticate, token)
    limiter: TokenBuckets = request.app.state.rate_limiter
    wait = limiter.take(principal.key_id)
    if wait > 0:
        raise RateLimited(
            f"rate limit of {limiter.rate:g} requests/s exceeded; retry later", retry_after=wait
        )
    request.state.principal = principal
    return principal


ContainerDep = Annotated[Container, Depends(get_container)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
