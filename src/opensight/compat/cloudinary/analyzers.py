"""The 15 Cloudinary analyzers, each mapped onto one native feature (see docs/compat/cloudinary.md).

A mapping says which request body the analyzer takes, which native feature and options run
it, which request parameters the answer must echo, how the result is rendered, and which of
the SDK's three quota types (``Feature``: ai_vision, google_tagging, object_detection) it
counts against.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from . import render
from .errors import CloudinaryError
from .requests import AnalyzeBody, GeneralBody, ModerationBody, TaggingBody

Renderer = Callable[[Mapping[str, Any], Mapping[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class AnalyzerMap:
    name: str
    feature: str
    render: Renderer
    limit_type: str = "object_detection"
    body: type[AnalyzeBody] = AnalyzeBody
    fixed_options: Mapping[str, Any] | None = None

    def params(self, body: AnalyzeBody) -> dict[str, Any]:
        """What the rendered answer echoes later (stored with an async job)."""
        if isinstance(body, GeneralBody):
            return {"prompts": list(body.prompts)}
        if isinstance(body, ModerationBody):
            return {"prompts": list(body.rejection_questions)}
        if isinstance(body, TaggingBody):
            return {"tags": [d.name for d in body.tag_definitions]}
        return {}

    def options(self, body: AnalyzeBody) -> dict[str, Any]:
        """Native per-analyzer options: ``{feature: {...}}``."""
        options: dict[str, Any] = dict(self.fixed_options or {})
        if isinstance(body, GeneralBody):
            options.update(prompts=list(body.prompts), mode="answer")
        elif isinstance(body, ModerationBody):
            options.update(prompts=list(body.rejection_questions), mode="yes_no")
        elif isinstance(body, TaggingBody):
            options["tags"] = [d.model_dump() for d in body.tag_definitions]
        return {self.feature: options} if options else {}


_ALL = (
    AnalyzerMap("image_quality", "quality", render.image_quality),
    AnalyzerMap("cld_text", "ocr", render.cld_text),
    AnalyzerMap("human_anatomy", "anatomy", render.human_anatomy),
    AnalyzerMap("watermark_detection", "watermark", render.watermark_detection),
    AnalyzerMap(
        "google_logo_detection", "watermark", render.google_logo_detection, "google_tagging"
    ),
    AnalyzerMap("captioning", "caption", render.captioning, "ai_vision"),
    AnalyzerMap("ai_vision_general", "ask", render.ai_vision_general, "ai_vision", GeneralBody),
    AnalyzerMap(
        "ai_vision_moderation", "ask", render.ai_vision_moderation, "ai_vision", ModerationBody
    ),
    AnalyzerMap("ai_vision_tagging", "tags", render.ai_vision_tagging, "ai_vision", TaggingBody),
    AnalyzerMap("google_tagging", "tags", render.google_tagging, "google_tagging"),
    AnalyzerMap("coco", "objects", render.object_tags, fixed_options={"vocabulary": "coco"}),
    # No LVIS or UniDet detector exists here: their COCO subset is what the native closed
    # detector knows (the reply's `vocabulary` says "coco"); see docs/compat/cloudinary.md.
    AnalyzerMap("lvis", "objects", render.object_tags, fixed_options={"vocabulary": "coco"}),
    AnalyzerMap("unidet", "objects", render.object_tags, fixed_options={"vocabulary": "coco"}),
    AnalyzerMap(
        "cld_fashion", "tags", render.classification_tags, fixed_options={"vocabulary": "fashion"}
    ),
    AnalyzerMap(
        "shop_classifier",
        "tags",
        render.classification_tags,
        fixed_options={"vocabulary": "products"},
    ),
)

ANALYZERS: dict[str, AnalyzerMap] = {m.name: m for m in _ALL}


def get(name: str) -> AnalyzerMap:
    try:
        return ANALYZERS[name]
    except KeyError:
        raise CloudinaryError(
            404,
            "not_found",
            f"unknown analyzer {name[:100]!r}; known: {', '.join(sorted(ANALYZERS))}",
        ) from None
