"""The completion webhook body: the detect request's job JSON, as ``GET /v2/detect/{id}``.

A detect request spans one native job per image, so the service arms the native webhook on
one carrier job only when the whole request has ended (every image done, every review
decided) and stores the request's snapshot in that job's ``api_data``; signing, retries
and backoff stay the native dispatcher's.
"""

from __future__ import annotations

from typing import Any

from ...storage.tables import Job
from .render import render_job

SNAPSHOT_KEY = "webhook"


def render(job: Job) -> dict[str, Any]:
    data = (job.options or {}).get("api_data") or {}
    snapshot = data.get(SNAPSHOT_KEY)
    if isinstance(snapshot, dict):
        return render_job(snapshot)
    # Not armed by the service (should not happen): say what is known rather than fail.
    return {
        "id": data.get("detect_id"),
        "status": "IN_PROGRESS",
        "jobResults": [],
        "imageResults": [],
    }
