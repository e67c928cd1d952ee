"""The application factory: one Container, background workers tied to the lifespan."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI

from .. import __version__
from .._malloc import tune as tune_malloc
from ..config import Settings
from ..services.container import Container
from . import errors
from .metrics import Metrics, MetricsMiddleware
from .ratelimit import TokenBuckets
from .routers.cloudinary import router as cloudinary_router
from .routers.cloudsight import router as cloudsight_router
from .routers.imageintelligence import router as imageintelligence_router
from .routers.native import router as native_router
from .routers.visualsnoop import router as visualsnoop_router


def create_app(settings: Settings | None = None, *, workers: int | None = None) -> FastAPI:
    """Build the app. ``workers=0`` serves without a worker pool (scale-out API nodes)."""
    tune_malloc()
    settings = settings or Settings()
    if settings.switch_interval_ms > 0:
        sys.setswitchinterval(settings.switch_interval_ms / 1000)
    metrics = Metrics()
    container = Container(settings, on_timing=metrics.observe_analyzer)
    container.pipeline  # noqa: B018 - a bad OPENSIGHT_ANALYZER_OPTIONS stops the start

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        container.db  # noqa: B018 - migrate before the first request
        app.state.sync_limiter = anyio.CapacityLimiter(
            settings.sync_concurrency or os.cpu_count() or 2
        )
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
    app.include_router(cloudinary_router)
    app.include_router(cloudsight_router)
    app.include_router(imageintelligence_router)
    app.include_router(visualsnoop_router)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app
