"""/v1/batch: many sources, one feature list; counts and NDJSON results."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.concurrency import run_in_threadpool

from ....errors import ValidationFailed
from ....services.analysis import AnalysisRequest, Source, job_view
from ...deps import ContainerDep, PrincipalDep
from ...uploads import read_body

router = APIRouter(tags=["batches"])


class BatchSource(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str | None = None
    image_id: str | None = None
    base64: str | None = None


class BatchBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sources: list[BatchSource | str] = Field(min_length=1)
    features: list[str] | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    ttl: float | None = Field(None, gt=0)
    webhook_url: str | None = None

    @field_validator("features", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        return value.split(",") if isinstance(value, str) else value


@router.post(
    "/batch",
    status_code=202,
    summary="Submit up to 1,000 sources as one batch",
    description="`sources`: URLs as strings, or objects with `url`, `image_id` or `base64`.",
)
async def create_batch(
    request: Request, container: ContainerDep, principal: PrincipalDep
) -> JSONResponse:
    settings = container.settings
    raw = await read_body(request, settings.max_upload_bytes * 4)
    try:
        body = BatchBody.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise ValidationFailed(f"{where}: {first['msg']}") from None
    if len(body.sources) > settings.max_batch_sources:
        raise ValidationFailed(
            f"a batch takes at most {settings.max_batch_sources} sources, got {len(body.sources)}"
        )
    sources = [
        Source(url=s)
        if isinstance(s, str)
        else Source.from_fields(url=s.url, image_id=s.image_id, base64_data=s.base64)
        for s in body.sources
    ]
    req = AnalysisRequest(
        features=body.features or [],
        options=body.options,
        ttl_seconds=body.ttl,
        webhook_url=body.webhook_url,
    )
    batch = await run_in_threadpool(container.analysis.submit_batch, principal, sources, req)
    return JSONResponse(
        {"id": batch.id, "total": batch.total, "features": batch.features},
        status_code=202,
        headers={"Location": f"/v1/batch/{batch.id}"},
    )


@router.get("/batch/{batch_id}", summary="A batch's progress: counts by status")
async def get_batch(
    batch_id: str, container: ContainerDep, principal: PrincipalDep
) -> dict[str, Any]:
    batch = await run_in_threadpool(container.jobs.get_batch, batch_id, principal.tenant_id)
    counts = await run_in_threadpool(container.jobs.counts, None, batch.id)
    finished = sum(n for s, n in counts.items() if s not in ("pending", "processing"))
    return {
        "id": batch.id,
        "total": batch.total,
        "features": batch.features,
        "created_at": batch.created_at.isoformat(),
        "counts": counts,
        "done": finished == batch.total,
    }


@router.get(
    "/batch/{batch_id}/results",
    summary="Every job of the batch as NDJSON",
    response_class=StreamingResponse,
)
async def batch_results(
    batch_id: str, container: ContainerDep, principal: PrincipalDep
) -> StreamingResponse:
    batch = await run_in_threadpool(container.jobs.get_batch, batch_id, principal.tenant_id)

    def lines() -> Iterator[bytes]:
        for job in container.jobs.iter_batch(batch.id):
            yield json.dumps(job_view(job), separators=(",", ":")).encode() + b"\n"

    return StreamingResponse(lines(), media_type="application/x-ndjson")
