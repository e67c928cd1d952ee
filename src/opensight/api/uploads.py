"""Reading request bodies with limits: multipart uploads and JSON, never unbounded."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from starlette.datastructures import FormData, UploadFile

from ..errors import ImageTooLarge, UnsupportedMediaType, ValidationFailed

#: multipart/JSON framing on top of the image bytes (base64 adds a third)
_FRAMING_SLACK = 1024 * 1024


def content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def check_declared_length(request: Request, limit: int) -> None:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ImageTooLarge(f"the request body is {declared} bytes; the limit is {limit}")


async def read_body(request: Request, limit: int) -> bytes:
    check_declared_length(request, limit)
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise ImageTooLarge(f"the request body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request, max_image_bytes: int) -> dict[str, Any]:
    body = await read_body(request, max_image_bytes * 4 // 3 + _FRAMING_SLACK)
    try:
        data = json.loads(body or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValidationFailed(f"the body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValidationFailed("the JSON body must be an object")
    return data


async def read_form(request: Request, max_image_bytes: int) -> FormData:
    check_declared_length(request, max_image_bytes + _FRAMING_SLACK)
    try:
        return await request.form(max_files=4, max_fields=50, max_part_size=64 * 1024)
    except Exception as exc:  # starlette raises MultiPartException / HTTPException variants
        raise ValidationFailed(f"the multipart body is not valid: {exc}") from exc


async def read_file(form: FormData, field: str, max_image_bytes: int) -> bytes | None:
    value = form.get(field)
    if value is None:
        return None
    if not isinstance(value, UploadFile):
        raise ValidationFailed(f"`{field}` must be a file part, not a text field")
    data = await value.read(max_image_bytes + 1)
    if len(data) > max_image_bytes:
        raise ImageTooLarge(f"the image exceeds {max_image_bytes} bytes")
    return data


def body_kind(request: Request) -> str:
    """``form``, ``json`` or ``raw`` (the body is the image: ``image/*`` or octet-stream)."""
    kind = content_type(request)
    if kind in ("multipart/form-data", "application/x-www-form-urlencoded"):
        return "form"
    if kind in ("application/json", "") or kind.endswith("+json"):
        return "json"
    if kind.startswith("image/") or kind == "application/octet-stream":
        return "raw"
    raise UnsupportedMediaType(
        "send multipart/form-data (field `image`), application/json, or the image itself "
        f"(image/* or application/octet-stream), not {kind!r}"
    )


def require_json_or_multipart(request: Request) -> str:
    """``form`` or ``json``, for endpoints that take no raw image body."""
    kind = body_kind(request)
    if kind == "raw":
        raise UnsupportedMediaType(
            "send multipart/form-data (field `image`) or application/json with the image"
        )
    return kind
