"""Native jobs as CloudSight job bodies.

``{"token", "url", "ttl", "status"}`` plus ``name`` (and ``categories``) when
completed, ``reason`` when skipped. Native statuses map as: pending and
processing -> ``not completed``; completed -> ``completed``, or ``skipped``
with reason ``unsure`` when the caption names nothing (see
:func:`is_unsure`); skipped -> ``skipped`` with the gate's reason (blurry,
dark, bright, close, offensive); timeout -> ``timeout``. A failed or
cancelled job has no CloudSight status: it is rendered as an error body (the
native error's message, e.g. one naming ``opensight models pull <ID>``), which
every CloudSight client treats as a failure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ...jobs.model import JobStatus
from ...storage.tables import Job

#: Below this caption confidence (when the caption analyzer reports one) the answer is unsure.
UNSURE_BELOW = 0.1
#: At most this many tag names become ``categories``.
MAX_CATEGORIES = 5
_WORD = re.compile(r"\w", re.UNICODE)


def caption_text(result: Mapping[str, Any]) -> str:
    """The caption analyzer's text (``caption``, or ``text``), stripped; "" when absent."""
    value = result.get("caption", result.get("text", ""))
    return value.strip() if isinstance(value, str) else ""


def is_unsure(caption: Mapping[str, Any]) -> bool:
    """Nothing recognisable: the caption is empty or has no letter or digit at all, or the
    analyzer reports a ``confidence``/``score`` under :data:`UNSURE_BELOW`."""
    if not _WORD.search(caption_text(caption)):
        return True
    for key in ("confidence", "score"):
        value = caption.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value) < UNSURE_BELOW
    return False


def categories(tags: Any) -> list[str]:
    """Tag names, best first, from the tags analyzer's ``tags`` list (dicts or strings)."""
    items = tags.get("tags", []) if isinstance(tags, Mapping) else []
    names: list[str] = []
    for item in items if isinstance(items, list) else []:
        name = item.get("name", item.get("label")) if isinstance(item, Mapping) else item
        if isinstance(name, str) and name and name not in names:
            names.append(name)
        if len(names) >= MAX_CATEGORIES:
            break
    return names


class JobFailed(Exception):
    """A failed or cancelled job: rendered as CloudSight's error body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def render(job: Job, image_url: str | None) -> dict[str, Any]:
    """The CloudSight body of ``job``; raises :class:`JobFailed` for failed/cancelled jobs."""
    body: dict[str, Any] = {
        "token": job.id,
        "url": image_url,
        "ttl": float(job.ttl_seconds or 0.0),
    }
    status = job.status
    result = job.result or {}
    if status in (JobStatus.PENDING, JobStatus.PROCESSING):
        body["status"] = "not completed"
    elif status == JobStatus.TIMEOUT:
        body["status"] = "timeout"
    elif status == JobStatus.SKIPPED:
        body["status"] = "skipped"
        body["reason"] = job.reason
    elif status == JobStatus.COMPLETED:
        caption = result.get("caption")
        if not isinstance(caption, Mapping):
            raise JobFailed(
                503,
                "this OpenSight server has no caption analyzer, so only the quality and "
                "moderation checks ran; install one and send the image again",
            )
        if is_unsure(caption):
            body["status"], body["reason"] = "skipped", "unsure"
        else:
            body["status"] = "completed"
            body["name"] = caption_text(caption)
            names = categories(result.get("tags"))
            if names:
                body["categories"] = names
    elif status == JobStatus.FAILED:
        error = job.error or {}
        raise JobFailed(
            int(error.get("status") or 500), str(error.get("detail") or "the request failed")
        )
    else:
        raise JobFailed(409, f"the request was {status}")
    return body
