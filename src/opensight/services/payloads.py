"""Webhook bodies per API: a job made by a compat router is announced in that API's shape.

Renderers are named as ``module:function`` and imported lazily, so the job layer needs no
import of the compat packages (and a worker process loads only what its jobs use).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from ..storage.tables import Job

Renderer = Callable[[Job], dict[str, Any]]

WEBHOOK_RENDERERS: dict[str, str] = {
    "cloudinary": "opensight.compat.cloudinary.webhook:render",
    "imageintelligence": "opensight.compat.imageintelligence.webhook:render",
}
"""API name (``job.options["api"]``) → ``module:function`` rendering that API's webhook body."""

_loaded: dict[str, Renderer] = {}


def renderer_for(api: str | None) -> Renderer | None:
    """The renderer registered for ``api``, or None for native jobs and APIs without one."""
    if api is None or api not in WEBHOOK_RENDERERS:
        return None
    if api not in _loaded:
        module_name, _, attr = WEBHOOK_RENDERERS[api].partition(":")
        _loaded[api] = getattr(importlib.import_module(module_name), attr)
    return _loaded[api]


def webhook_body(job: Job, native: Renderer) -> dict[str, Any]:
    """The body to POST for ``job``: its API's shape when it has one, else ``native``."""
    render = renderer_for((job.options or {}).get("api"))
    return (render or native)(job)
