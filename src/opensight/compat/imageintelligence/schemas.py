"""Parsing Image Intelligence request bodies: strict types, no unknown fields, 400 on error.

Bodies are JSON whatever the Content-Type says (the API's clients do not all set it).
Limits follow the published v2 spec: 1-64 images, ``customId``/``feedId`` up to 64
characters, ``webhookUrl`` up to 512.
"""

from __future__ import annotations

import json
from typing import Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from .errors import ApiError

Hitl = Literal["NEVER", "AUTO", "ALWAYS"]
T = TypeVar("T", bound=BaseModel)
MAX_IMAGES = 64
MAX_CLASSES = 50


class _Strict(BaseModel):
    # Aliases only: the wire names are the API; python names must not be accepted too.
    model_config = ConfigDict(extra="forbid")


class TokenRequest(_Strict):
    client_id: StrictStr = Field(alias="clientId", min_length=1, max_length=500)
    client_secret: StrictStr = Field(alias="clientSecret", min_length=1, max_length=500)


class ImageItem(_Strict):
    url: StrictStr = Field(min_length=1, max_length=4096)
    custom_id: StrictStr | None = Field(None, alias="customId", max_length=64)

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        # Only the scheme here; the SSRF guard checks the host when the job is queued.
        if not value.lower().startswith(("http://", "https://")):
            raise ValueError("must be an http or https URL")
        return value


class ClassItem(_Strict):
    name: StrictStr = Field(alias="class", min_length=1, max_length=200)
    hitl: Hitl | None = None
    verify: Hitl | None = None
    """The spec's older name for ``hitl``; accepted so clients of either version work."""

    @model_validator(mode="after")
    def _one_mode(self) -> ClassItem:
        if self.hitl and self.verify and self.hitl != self.verify:
            raise ValueError("give hitl or verify, not two different values")
        return self

    @property
    def mode(self) -> str:
        # NEVER by default: a self-hosted server has no reviewers until an operator is set
        # up, and a request waiting on a review nobody makes would never complete.
        return self.hitl or self.verify or "NEVER"


class DetectRequestBody(_Strict):
    images: list[ImageItem] = Field(min_length=1, max_length=MAX_IMAGES)
    classes: list[ClassItem] = Field(min_length=1, max_length=MAX_CLASSES)
    webhook_url: StrictStr | None = Field(None, alias="webhookUrl", min_length=1, max_length=512)
    custom_id: StrictStr | None = Field(None, alias="customId", max_length=64)
    feed_id: StrictStr | None = Field(None, alias="feedId", max_length=64)

    @model_validator(mode="after")
    def _distinct_classes(self) -> DetectRequestBody:
        names = [c.name.strip().lower() for c in self.classes]
        if any(not n for n in names):
            raise ValueError("a class name must not be blank")
        if len(set(names)) != len(names):
            raise ValueError("each class may be given once")
        return self

    def class_modes(self, auto_below: float) -> list[dict[str, Any]]:
        """Per class its mode; AUTO keeps the threshold in force when the request came."""
        return [
            {"class": c.name.strip(), "hitl": c.mode}
            | ({"autoBelow": auto_below} if c.mode == "AUTO" else {})
            for c in self.classes
        ]


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw.strip() else None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"the body is not valid JSON: {exc}") from None


def _first_error(exc: ValidationError) -> ApiError:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    message = str(first["msg"]).removeprefix("Value error, ")
    return ApiError(400, f"{where}: {message}" if where else message)


def parse(model: type[T], raw: bytes) -> T:
    data = _json(raw)
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _first_error(exc) from None
