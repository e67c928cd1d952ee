"""POST /v1/analyze: one image, sync (200 + result) or async (202 + job)."""

from __future__ import annotations

import json
from typing import Any

import anyio
from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.concurrency import run_in_threadpool

from ....errors import ValidationFailed
from ....jobs.model import FINAL_STATUSES
from ....services.analysis import AnalysisRequest, Source, job_view, wait_for_job
from ...deps import ContainerDep, PrincipalDep
from ...uploads import body_kind, read_body, read_file, read_form, read_json

router = APIRouter(tags=["analyze"])


class AnalyzeFields(BaseModel):
    """The fields of an analyze request, from JSON or from form fields."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    url: str | None = None
    image_id: str | None = None
    base64: str | None = None
    features: list[str] | None = None
    run_async: bool = Field(False, alias="async")
    ttl: float | None = Field(None, gt=0, le=30 * 86400)
    webhook_url: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    skip_on: list[str] = Field(default_factory=list)

    @field_validator("features", "skip_on", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("options", mode="before")
    @classmethod
    def _json_object(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return json.loads(value) if value.strip() else {}
            except json.JSONDecodeError as exc:
                raise ValueError(f"options must be a JSON object: {exc}") from exc
        return value


def parse_fields(raw: dict[str, Any]) -> AnalyzeFields:
    try:
        return AnalyzeFields.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise ValidationFailed(
            f"{where}: {first['msg']}", errors=json.loads(exc.json(include_url=False))
        ) from None


async def read_request(request: Request, max_bytes: int) -> tuple[Source, AnalyzeFields]:
    kind = body_kind(request)
    if kind == "raw":  # the body is the image; the other fields come in the query string
        data = await read_body(request, max_bytes)
        fields = parse_fields(dict(request.query_params))
        if fields.url or fields.image_id or fields.base64:
            raise ValidationFailed("the body is the image: give no url/image_id/base64 too")
        return Source(data=data), fields
    if kind == "form":
        form = await read_form(request, max_bytes)
        upload = await read_file(form, "image", max_bytes)
        fields = parse_fields(
            {k: v for k, v in form.multi_items() if k != "image" and isinstance(v, str)}
        )
        if upload is not None:
            if fields.url or fields.image_id or fields.base64:
                raise ValidationFailed(
                    "give exactly one image source, not a file and a url/image_id/base64"
                )
            return Source(data=upload), fields
    else:
        fields = parse_fields(await read_json(request, max_bytes))
    return Source.from_fields(
        url=fields.url, image_id=fields.image_id, base64_data=fields.base64
    ), fields


@router.post(
    "/analyze",
    summary="Analyze one image",
    description="Multipart (`image` file + form fields), JSON (`url`, `image_id` or "
    "`base64`), or the image itself as the body (`image/*`, fields in the query string). "
    "`async=true` returns 202 with a job to poll.",
    responses={202: {"description": "Job accepted"}},
)
async def analyze(
    request: Request,
    container: ContainerDep,
    principal: PrincipalDep,
    idempotency_key: str | None = Header(None, alias="Idempotency-Key"),
) -> JSONResponse:
    source, fields = await read_request(request, container.settings.max_upload_bytes)
    analysis = container.analysis
    req = AnalysisRequest(
        features=fields.features or [],
        options=fields.options,
        skip_on=fields.skip_on,
        ttl_seconds=fields.ttl,
        webhook_url=fields.webhook_url,
        idempotency_key=idempotency_key,
    )
    if not fields.run_async and not fields.webhook_url and not idempotency_key:
        body = await anyio.to_thread.run_sync(
            analysis.analyze_now,
            principal,
            source,
            req,
            limiter=request.app.state.sync_limiter,
        )
        return JSONResponse(body)
    job, created = await run_in_threadpool(analysis.submit, principal, source, req)
    if fields.run_async:
        return JSONResponse(
            job_view(job),
            status_code=202 if created else 200,
            headers={"Location": f"/v1/jobs/{job.id}"},
        )
    # sync with a webhook or idempotency key: it is a job, and we wait for it
    job = await run_in_threadpool(
        wait_for_job,
        container.jobs,
        job.id,
        principal.tenant_id,
        container.settings.sync_timeout_seconds,
    )
    status = 200 if job.status in FINAL_STATUSES else 202
    return JSONResponse(
        job_view(job), status_code=status, headers={"Location": f"/v1/jobs/{job.id}"}
    )
