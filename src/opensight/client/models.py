"""Typed views of the API's JSON. Every model keeps unknown fields (``extra="allow"``),
so a newer server that adds fields never breaks an older client."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "FINAL_STATUSES",
    "AnalysisResult",
    "Analyzer",
    "BatchInfo",
    "ImageFacts",
    "ImageInfo",
    "Job",
    "JobPage",
    "Problem",
    "WebhookInfo",
]

#: job statuses after which nothing changes any more (unless the job is retried)
FINAL_STATUSES = frozenset({"completed", "skipped", "failed", "timeout", "cancelled"})

_PROBLEM_BASE = "https://opensight.dev/problems/"


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class Problem(_Model):
    """An RFC 9457 problem: the body of every API error, and a failed job's ``error``."""

    type: str = "about:blank"
    slug: str = ""
    title: str = ""
    status: int | None = None
    detail: str = ""
    instance: str | None = None

    @model_validator(mode="after")
    def _fill_slug(self) -> Problem:
        # job errors carry the bare slug in `type`; API problems carry a URI and a slug
        if not self.slug and self.type != "about:blank":
            self.slug = self.type.rsplit("/", 1)[-1]
        return self

    def __str__(self) -> str:
        return f"{self.slug or self.title or 'error'}: {self.detail or self.title}"


class ImageFacts(_Model):
    """What the server read from an image: its hash, size and format."""

    sha256: str | None = None
    width: int | None = None
    height: int | None = None
    format: str | None = None
    bytes: int | None = None


class ImageInfo(ImageFacts):
    """A stored image (``/v1/images``)."""

    id: str
    created_at: datetime | None = None


class AnalysisResult(_Model):
    """The answer of a synchronous ``POST /v1/analyze``."""

    status: str
    features: list[str] = Field(default_factory=list)
    image: ImageFacts = Field(default_factory=ImageFacts)
    result: dict[str, Any] = Field(default_factory=dict)
    reason: str | None = None

    @property
    def skipped(self) -> bool:
        return self.status == "skipped"

    def __getitem__(self, feature: str) -> Any:
        """``result["quality"]`` shortcut: the output of one analyzer."""
        return self.result[feature]


class WebhookInfo(_Model):
    url: str
    status: str = "waiting"
    attempts: list[dict[str, Any]] = Field(default_factory=list)


class Job(_Model):
    """An asynchronous analysis (``/v1/jobs``), also the body of webhook deliveries."""

    id: str
    status: str
    features: list[str] = Field(default_factory=list)
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    attempts: int = 0
    source: dict[str, Any] = Field(default_factory=dict)
    result: dict[str, Any] | None = None
    reason: str | None = None
    error: Problem | None = None
    webhook: WebhookInfo | None = None
    batch_id: str | None = None
    batch_index: int | None = None
    ttl: float | None = None
    expires_at: datetime | None = None

    @property
    def is_final(self) -> bool:
        """True once the job ended: completed, skipped, failed, timeout or cancelled."""
        return self.status in FINAL_STATUSES

    @property
    def succeeded(self) -> bool:
        return self.status in ("completed", "skipped")


class JobPage(_Model):
    """One page of ``GET /v1/jobs``."""

    jobs: list[Job] = Field(default_factory=list)
    next_cursor: str | None = None


class BatchInfo(_Model):
    """A batch; the reply to the submit has only ``id``, ``total`` and ``features``."""

    id: str
    total: int = 0
    features: list[str] = Field(default_factory=list)
    created_at: datetime | None = None
    counts: dict[str, int] = Field(default_factory=dict)
    done: bool = False


class Analyzer(_Model):
    """One analyzer of ``GET /v1/analyzers``; ``default`` marks the default features."""

    name: str
    version: str = ""
    description: str = ""
    license: str | None = None
    requires: list[str] = Field(default_factory=list)
    model: str | None = None
    ready: bool = True
    missing: list[Any] = Field(default_factory=list)
    default: bool = False
