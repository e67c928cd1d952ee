"""The native REST API v1."""

from fastapi import APIRouter

from . import analyze, analyzers, batches, collections, health, images, jobs, reviews

router = APIRouter()
router.include_router(health.router)
for module in (images, analyze, jobs, batches, analyzers, collections, reviews):
    router.include_router(module.router, prefix="/v1")

__all__ = ["router"]
