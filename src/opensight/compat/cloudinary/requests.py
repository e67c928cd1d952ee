"""Request bodies of ``POST /analyze/{analyzer}``, validated strictly (extra fields refused).

Field names, limits and required fields follow ``cloudinary-analysis`` 0.1.0's request models
and Cloudinary's documentation (1-10 prompts, questions or tag definitions). Anything else is
a 400 ``user_error`` naming the field, so a typo is not silently ignored.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import CloudinaryError

#: A request is a source and a few strings: 256 KiB is far more than the largest valid body.
MAX_BODY_BYTES = 256 * 1024

#: A prompt or question: the native ``ask`` analyzer takes 1..300 characters.
Prompt = Annotated[str, Field(min_length=1, max_length=300)]
Text = Annotated[str, Field(min_length=1, max_length=2000)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)


class SourceBody(_Strict):
    uri: Annotated[str, Field(min_length=1, max_length=4096)] | None = None
    asset_id: Annotated[str, Field(min_length=1, max_length=100)] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SourceBody:
        if (self.uri is None) == (self.asset_id is None):
            raise ValueError("give exactly one of `uri` or `asset_id`")
        return self


class AnalyzeBody(_Strict):
    """The fields every analyzer takes."""

    source: SourceBody
    run_async: bool = Field(False, alias="async")
    notification_url: Annotated[str, Field(min_length=1, max_length=4096)] | None = None


class GeneralBody(AnalyzeBody):
    prompts: Annotated[list[Prompt], Field(min_length=1, max_length=10)]


class ModerationBody(AnalyzeBody):
    rejection_questions: Annotated[list[Prompt], Field(min_length=1, max_length=10)]


class TagDefinition(_Strict):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    description: Text


class TaggingBody(AnalyzeBody):
    tag_definitions: Annotated[list[TagDefinition], Field(min_length=1, max_length=10)]


def _where(loc: tuple[Any, ...]) -> str:
    return ".".join("async" if p == "run_async" else str(p) for p in loc) or "body"


def parse(model: type[AnalyzeBody], raw: bytes) -> AnalyzeBody:
    """Validate a JSON body against ``model``; 400 ``invalid_request`` naming the first problem."""
    if len(raw) > MAX_BODY_BYTES:
        raise too_large(len(raw))
    try:
        data = json.loads(raw or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CloudinaryError(
            400, "invalid_request", f"the body is not valid JSON: {exc}"
        ) from None
    if not isinstance(data, dict):
        raise CloudinaryError(400, "invalid_request", "the body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [
            {"field": _where(tuple(e["loc"])), "message": e["msg"], "type": e["type"]}
            for e in exc.errors(include_url=False)
        ]
        first = errors[0]
        raise CloudinaryError(
            400,
            "invalid_request",
            f"{first['field']}: {first['message']}",
            details={"errors": errors},
        ) from None


def too_large(size: int | None = None) -> CloudinaryError:
    said = f"is {size} bytes" if size is not None else "is larger"
    return CloudinaryError(
        400,
        "request_too_large",
        f"the request body {said}; the limit is {MAX_BODY_BYTES} bytes",
        details={"limit": MAX_BODY_BYTES},
    )
