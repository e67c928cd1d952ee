"""/v1/analyzers: what can run here, and what each one still needs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from ....analyzers import registry
from ...deps import PrincipalDep

router = APIRouter(tags=["analyzers"])


def _describe_all() -> list[dict[str, Any]]:
    return [a.describe() for a in registry.all_analyzers().values()]


@router.get("/analyzers", summary="Each analyzer, its version, and whether it is ready")
async def list_analyzers(principal: PrincipalDep) -> dict[str, Any]:
    return {
        "analyzers": await run_in_threadpool(_describe_all),
        "default_features": list(registry.DEFAULT_FEATURES),
    }
