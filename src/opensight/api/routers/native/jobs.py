"""/v1/jobs: read, list, retry and cancel a tenant's jobs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from ....errors import ValidationFailed
from ....jobs.model import JobStatus
from ....services.analysis import job_view
from ...deps import ContainerDep, PrincipalDep

router = APIRouter(tags=["jobs"])


@router.get("/jobs/{job_id}", summary="A job and, once ended, its result")
async def get_job(job_id: str, container: ContainerDep, principal: PrincipalDep) -> dict[str, Any]:
    job = await run_in_threadpool(container.jobs.get, job_id, principal.tenant_id)
    return job_view(job)


@router.get("/jobs", summary="List jobs, newest first")
async def list_jobs(
    container: ContainerDep,
    principal: PrincipalDep,
    status: str | None = Query(None, description="only jobs with this status"),
    cursor: str | None = Query(None, description="`next_cursor` of the previous page"),
    limit: int = Query(50, ge=1, le=500),
) -> dict[str, Any]:
    if status is not None and status not in {s.value for s in JobStatus}:
        raise ValidationFailed(
            f"unknown status {status!r}; one of {', '.join(s.value for s in JobStatus)}"
        )
    jobs, next_cursor = await run_in_threadpool(
        container.jobs.list, principal.tenant_id, status, cursor, limit
    )
    return {"jobs": [job_view(j) for j in jobs], "next_cursor": next_cursor}


@router.post("/jobs/{job_id}/retry", status_code=202, summary="Re-run a failed or timed-out job")
async def retry_job(
    job_id: str, container: ContainerDep, principal: PrincipalDep
) -> dict[str, Any]:
    job = await run_in_threadpool(container.analysis.retry, principal, job_id)
    return job_view(job)


@router.delete("/jobs/{job_id}", summary="Cancel a pending job")
async def cancel_job(
    job_id: str, container: ContainerDep, principal: PrincipalDep
) -> dict[str, Any]:
    job = await run_in_threadpool(container.jobs.cancel, job_id, principal.tenant_id)
    return job_view(job)
