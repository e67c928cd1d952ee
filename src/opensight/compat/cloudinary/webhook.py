"""Async tasks in Cloudinary's shape: the task status reply and the webhook notification.

A task is a native job made with ``api="cloudinary"``; ``job.options["api_data"]`` keeps what
the answer needs: ``analyzer`` (Cloudinary's name), ``request_id``, ``cloud_name``,
``entity`` (the uri or asset id), ``params`` (prompts/questions/tag names to echo),
``notification_url`` and ``limits`` (the quota when the task was accepted).
"""

from __future__ import annotations

from typing import Any

from ...jobs.model import JobStatus
from ...storage.tables import Job
from . import analyzers
from .errors import CloudinaryError, from_problem

_STATUS = {
    JobStatus.PENDING: "pending",
    JobStatus.PROCESSING: "processing",
    JobStatus.COMPLETED: "completed",
    JobStatus.SKIPPED: "completed",
}


def api_data(job: Job) -> dict[str, Any]:
    data = (job.options or {}).get("api_data")
    return dict(data) if isinstance(data, dict) else {}


def task_status(job: Job) -> str:
    """pending, processing, completed or failed (failed, timed out and cancelled jobs fail)."""
    return _STATUS.get(JobStatus(job.status), "failed")


def analysis_of(job: Job) -> dict[str, Any] | None:
    """The task's ``analysis`` object once it completed, else None."""
    if task_status(job) != "completed" or job.result is None:
        return None
    info = api_data(job)
    mapping = analyzers.ANALYZERS.get(str(info.get("analyzer")))
    if mapping is None:  # never raise here: the webhook thread renders this
        return None
    return mapping.render(job.result.get(mapping.feature) or {}, info.get("params") or {})


def error_of(job: Job) -> CloudinaryError | None:
    if task_status(job) != "failed":
        return None
    if job.error:
        return from_problem(job.error)
    return CloudinaryError(500, str(job.status), f"the analysis ended as {job.status}")


def task_data(job: Job) -> dict[str, Any]:
    """``data`` of ``GET /tasks/{id}``: task_id and status (+ entity/analysis/error, extras)."""
    data: dict[str, Any] = {
        "task_id": job.id,
        "status": task_status(job),
        "entity": api_data(job).get("entity"),
    }
    analysis = analysis_of(job)
    if analysis is not None:
        data["analysis"] = analysis
    error = error_of(job)
    if error is not None:
        data["error"] = error.body(str(api_data(job).get("request_id", "")))["error"]
    return data


def render(job: Job) -> dict[str, Any]:
    """The body POSTed to ``notification_url`` when an async analysis ends (COMPAT.md)."""
    info = api_data(job)
    request_id = str(info.get("request_id") or job.id)
    body: dict[str, Any] = {
        "operation_name": "analyze",
        "operation_type": "single",
        "notification_type": "analyze",
        "request_id": request_id,
        "task_id": job.id,
        "http_status": 200,
        "data": {"entity": info.get("entity"), "analysis": analysis_of(job)},
        "limits": info.get("limits"),
    }
    error = error_of(job)
    if error is not None:
        body["http_status"] = error.status
        body["error"] = error.body(request_id)["error"]
    return body
