"""The application factory: one Container, background workers tied to the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from .. import __version__
from .._malloc import tune as tune_malloc
from ..config import Settings
from ..services.container import Container
from . import errors
from .metrics import Metrics, MetricsMiddleware
from .ratelimit import TokenBuckets
from .routers.native import router as native_router


def create_app(settings: Settings | None = None, *, workers: int | None = None) -> FastAPI:
    """Build the app. ``workers=0`` serves without a worker pool (scale-out API nodes)."""
    tune_malloc()
    settings = settings or Settings()
    metrics = Metrics()
    container = Container(settings, on_timing=metrics.observe_analyzer)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        container.db  # noqa: B018 - migrate before the first request
        container.start_background(workers)
        try:
            yield
        finally:
            container.close()

    app = FastAPI(
        title="OpenSight",
        version=__version__,
        summary="Self-hosted image recognition and visual search",
        lifespan=lifespan,
    )
    app.state.container = container
    app.state.metrics = metrics
    app.state.rate_limiter = TokenBuckets(settings.rate_limit_per_second, settings.rate_limit_burst)
    metrics.add_job_collector(lambda: container.jobs.counts())
    errors.install(app)
    app.include_router(native_router)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app
