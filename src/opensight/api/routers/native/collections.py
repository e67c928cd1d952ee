"""/v1/collections: visual-similarity collections (HTTP only; the logic is in
opensight.collections.service)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from ....collections.matching import SIMILAR_SCORE
from ....collections.service import SearchRequest, parse_matches
from ....errors import ValidationFailed
from ....services.analysis import Source
from ...deps import ContainerDep, PrincipalDep
from ...uploads import read_file, read_form, read_json, require_json_or_multipart

router = APIRouter(tags=["collections"])


def _fail(exc: ValidationError) -> ValidationFailed:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    return ValidationFailed(f"{where}: {first['msg']}")


def _json_field(value: Any, name: str) -> Any:
    """Form fields carry JSON objects as text."""
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{name} must be JSON: {exc}") from exc
    return value


class CreateCollection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    metadata_schema: dict[str, Any] | None = None
    embedder: str | None = Field(None, max_length=200)


class ImageFields(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str | None = None
    image_id: str | None = None
    base64: str | None = None
    id: str | None = None
    metadata: Any = None

    @field_validator("metadata", mode="before")
    @classmethod
    def _metadata(cls, value: Any) -> Any:
        return _json_field(value, "metadata")


class SearchFields(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str | None = None
    image_id: str | None = None
    base64: str | None = None
    id: str | None = None
    text: str | None = None
    limit: int = Field(10, ge=1, le=100)
    min_score: float = Field(SIMILAR_SCORE, ge=0.0, le=1.0)
    match: list[str] | None = None
    metadata: dict[str, Any] | None = None

    @field_validator("match", mode="before")
    @classmethod
    def _match(cls, value: Any) -> Any:
        return [p for p in value.split(",") if p.strip()] if isinstance(value, str) else value

    @field_validator("metadata", mode="before")
    @classmethod
    def _metadata(cls, value: Any) -> Any:
        return _json_field(value, "metadata")


async def _fields(
    request: Request, model: type[BaseModel], max_bytes: int
) -> tuple[Any, bytes | None]:
    """(validated fields, uploaded bytes or None) from multipart or JSON."""
    upload = None
    if require_json_or_multipart(request) == "form":
        form = await read_form(request, max_bytes)
        upload = await read_file(form, "image", max_bytes)
        raw = {k: v for k, v in form.multi_items() if k != "image" and isinstance(v, str)}
    else:
        raw = await read_json(request, max_bytes)
    try:
        return model.model_validate(raw), upload
    except ValidationError as exc:
        raise _fail(exc) from None


def _source(fields: Any, upload: bytes | None, required: bool = True) -> Source | None:
    given = [n for n in ("url", "image_id", "base64") if getattr(fields, n)]
    if upload is not None:
        if given:
            raise ValidationFailed("give exactly one image source, not a file and " + given[0])
        return Source(data=upload)
    if not given and not required:
        return None
    return Source.from_fields(url=fields.url, image_id=fields.image_id, base64_data=fields.base64)


# -------------------------------------------------------------- collections
@router.post("/collections", status_code=201, summary="Create a collection")
async def create_collection(
    request: Request, container: ContainerDep, principal: PrincipalDep
) -> JSONResponse:
    raw = await read_json(request, 64 * 1024)
    try:
        body = CreateCollection.model_validate(raw)
    except ValidationError as exc:
        raise _fail(exc) from None
    service = container.collections
    row = await run_in_threadpool(
        service.create, principal, body.name, body.metadata_schema, body.embedder
    )
    return JSONResponse(
        service.collection_view(row, 0),
        status_code=201,
        headers={"Location": f"/v1/collections/{row.name}"},
    )


@router.get("/collections", summary="The tenant's collections")
async def list_collections(container: ContainerDep, principal: PrincipalDep) -> dict[str, Any]:
    service = container.collections
    rows = await run_in_threadpool(service.list_collections, principal)
    return {"collections": [service.collection_view(row, count) for row, count in rows]}


@router.get("/collections/{name}", summary="One collection")
async def get_collection(
    name: str, container: ContainerDep, principal: PrincipalDep
) -> dict[str, Any]:
    service = container.collections

    def view() -> dict[str, Any]:
        return service.collection_view(service.get(principal, name))

    return await run_in_threadpool(view)


@router.delete("/collections/{name}", status_code=204, summary="Delete a collection and its images")
async def delete_collection(
    name: str, container: ContainerDep, principal: PrincipalDep
) -> Response:
    await run_in_threadpool(container.collections.delete, principal, name)
    return Response(status_code=204)


# ------------------------------------------------------------------- images
async def _add(
    request: Request,
    container: ContainerDep,
    principal: PrincipalDep,
    name: str,
    image_id: str | None,
) -> JSONResponse:
    service = container.collections
    fields, upload = await _fields(request, ImageFields, container.settings.max_upload_bytes)
    if image_id is not None and fields.id is not None and fields.id != image_id:
        raise ValidationFailed("the body's id differs from the id in the path")
    source = _source(fields, upload)
    assert source is not None
    row, created = await run_in_threadpool(
        service.add,
        principal,
        name,
        source,
        image_id if image_id is not None else fields.id,
        fields.metadata,
        image_id is not None,
    )
    return JSONResponse(
        service.image_view(row),
        status_code=201 if created else 200,
        headers={"Location": f"/v1/collections/{name}/images/{row.id}"},
    )


@router.post(
    "/collections/{name}/images",
    status_code=201,
    summary="Add an image (409 if its id exists)",
    description="Multipart (`image` file, optional `id` and `metadata` JSON fields) or JSON "
    "(`url`, `image_id` or `base64`, optional `id` and `metadata`). Without `id`, one is generated.",
)
async def add_image(
    name: str, request: Request, container: ContainerDep, principal: PrincipalDep
) -> JSONResponse:
    return await _add(request, container, principal, name, None)


@router.put(
    "/collections/{name}/images/{image_id:path}",
    summary="Create or replace the image with this id (201 created, 200 replaced)",
)
async def put_image(
    name: str, image_id: str, request: Request, container: ContainerDep, principal: PrincipalDep
) -> JSONResponse:
    return await _add(request, container, principal, name, image_id)


@router.get("/collections/{name}/images/{image_id:path}", summary="One image of a collection")
async def get_image(
    name: str, image_id: str, container: ContainerDep, principal: PrincipalDep
) -> dict[str, Any]:
    service = container.collections
    row = await run_in_threadpool(service.get_image, principal, name, image_id)
    return service.image_view(row)


@router.get("/collections/{name}/images", summary="The images, newest first")
async def list_images(
    name: str,
    container: ContainerDep,
    principal: PrincipalDep,
    cursor: str | None = Query(None, description="`next_cursor` of the previous page"),
    limit: int = Query(50, ge=1, le=1000),
) -> dict[str, Any]:
    service = container.collections
    rows, next_cursor = await run_in_threadpool(service.list_images, principal, name, cursor, limit)
    return {"images": [service.image_view(r) for r in rows], "next_cursor": next_cursor}


@router.delete(
    "/collections/{name}/images/{image_id:path}", status_code=204, summary="Remove an image"
)
async def delete_image(
    name: str, image_id: str, container: ContainerDep, principal: PrincipalDep
) -> Response:
    await run_in_threadpool(container.collections.delete_image, principal, name, image_id)
    return Response(status_code=204)


# ------------------------------------------------------------------- search
@router.post(
    "/collections/{name}/search",
    summary="Exact, near-duplicate and similar images, by image or by id",
    description="Multipart (`image` file + fields) or JSON with one of `url`, `image_id`, "
    "`base64` (an image), `id` (an image of this collection) or `text` (neural collections "
    "only; 422 in classical ones). Options: `limit` (1-100), "
    "`min_score` (0-1), `match` (any of exact, near_duplicate, similar), `metadata` "
    "(equality filters on the images' metadata).",
)
async def search(
    name: str, request: Request, container: ContainerDep, principal: PrincipalDep
) -> dict[str, Any]:
    fields, upload = await _fields(request, SearchFields, container.settings.max_upload_bytes)
    image_given = upload is not None or fields.url or fields.image_id or fields.base64
    if sum(bool(x) for x in (fields.id is not None, fields.text is not None, image_given)) > 1:
        raise ValidationFailed("search by an image, by an id or by a text: only one of them")
    by_image = fields.id is None and fields.text is None
    source = _source(fields, upload) if by_image else None
    req = SearchRequest(
        limit=fields.limit,
        min_score=fields.min_score,
        matches=parse_matches(fields.match),
        metadata=fields.metadata,
    )
    results = await run_in_threadpool(
        container.collections.search, principal, name, req, source, fields.id, fields.text
    )
    return {"results": results}


@router.get(
    "/collections/{name}/duplicates",
    summary="Every group of exact / near-duplicate images",
    description="NDJSON, one group per line (`?format=json`: one JSON array).",
    response_class=StreamingResponse,
)
async def duplicates(
    name: str,
    container: ContainerDep,
    principal: PrincipalDep,
    format: str = Query("ndjson", pattern="^(ndjson|json)$"),
) -> Response:
    groups = await run_in_threadpool(container.collections.duplicates, principal, name)
    if format == "json":
        return JSONResponse(await run_in_threadpool(list, groups))

    def lines() -> Iterator[bytes]:
        for group in groups:
            yield json.dumps(group, separators=(",", ":")).encode() + b"\n"

    return StreamingResponse(iterate_in_threadpool(lines()), media_type="application/x-ndjson")
