"""/v1/reviews: the human-in-the-loop queue (HTTP only; the logic is services/reviews.py)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from ....errors import ValidationFailed
from ....services.reviews import MAX_NOTE, review_view
from ...deps import ContainerDep, PrincipalDep
from ...uploads import read_json

router = APIRouter(tags=["reviews"])


class Decision(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decision: Literal["confirm", "reject"]
    note: str | None = Field(None, max_length=MAX_NOTE)


@router.get("/reviews", summary="Objects waiting for (or given) a person's decision")
async def list_reviews(
    container: ContainerDep,
    principal: PrincipalDep,
    status: str = Query("pending", description="pending, confirmed, rejected or all"),
    job_id: str | None = Query(None, description="only the reviews of this job"),
    cursor: str | None = Query(None, description="`next_cursor` of the previous page"),
    limit: int = Query(50, ge=1, le=500),
) -> dict[str, Any]:
    rows, next_cursor = await run_in_threadpool(
        container.reviews.list,
        principal.tenant_id,
        None if status == "all" else status,
        job_id,
        cursor,
        limit,
    )
    return {"reviews": [review_view(r) for r in rows], "next_cursor": next_cursor}


@router.get("/reviews/{review_id}", summary="One review")
async def get_review(
    review_id: str, container: ContainerDep, principal: PrincipalDep
) -> dict[str, Any]:
    row = await run_in_threadpool(container.reviews.get, review_id, principal.tenant_id)
    return review_view(row)


@router.post(
    "/reviews/{review_id}",
    summary="Confirm or reject an object",
    description='Body: `{"decision": "confirm" | "reject", "note": "..."}`. Decisions are '
    "final: repeating one is a no-op, the opposite one is 409.",
)
async def decide_review(
    review_id: str, request: Request, container: ContainerDep, principal: PrincipalDep
) -> dict[str, Any]:
    raw = await read_json(request, 16 * 1024)
    try:
        body = Decision.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise ValidationFailed(f"{where}: {first['msg']}") from None
    row = await run_in_threadpool(
        container.reviews.decide,
        review_id,
        principal.tenant_id,
        body.decision,
        body.note,
        f"key:{principal.key_id}",
    )
    return review_view(row)
