"""Webhook bodies follow the API that made the job; native jobs keep the native view."""

from __future__ import annotations

from typing import Any

import pytest

from opensight.services import payloads
from opensight.storage.tables import Job


def _fake_render(job: Job) -> dict[str, Any]:
    return {"foreign_id": job.id}


def _native(job: Job) -> dict[str, Any]:
    return {"id": job.id}


@pytest.fixture
def foreign_api(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setitem(payloads.WEBHOOK_RENDERERS, "foreign", f"{__name__}:_fake_render")
    return "foreign"


def test_native_jobs_use_the_native_view() -> None:
    job = Job(id="j1", options={"analyzers": {}})
    assert payloads.webhook_body(job, _native) == {"id": "j1"}


def test_a_compat_job_uses_its_apis_renderer(foreign_api: str) -> None:
    job = Job(id="j2", options={"api": foreign_api, "api_data": {}})
    assert payloads.webhook_body(job, _native) == {"foreign_id": "j2"}


def test_an_api_without_a_renderer_falls_back_to_native() -> None:
    job = Job(id="j3", options={"api": "visualsnoop"})
    assert payloads.webhook_body(job, _native) == {"id": "j3"}
