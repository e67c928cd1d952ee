"""/v1/images: store, read, download and delete a tenant's images."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from ....errors import ValidationFailed
from ...deps import ContainerDep, PrincipalDep
from ...uploads import read_file, read_form

router = APIRouter(tags=["images"])

_MEDIA_TYPES = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "gif": "image/gif",
    "bmp": "image/bmp",
    "tiff": "image/tiff",
    "heif": "image/heif",
    "mpo": "image/jpeg",
}


@router.post("/images", status_code=201, summary="Store an image (multipart field `image`)")
async def upload_image(
    request: Request, response: Response, container: ContainerDep, principal: PrincipalDep
) -> dict[str, Any]:
    limit = container.settings.max_upload_bytes
    form = await read_form(request, limit)
    data = await read_file(form, "image", limit)
    if data is None:
        raise ValidationFailed("multipart field `image` is required")
    row, created = await run_in_threadpool(container.images.store, principal.tenant_id, data)
    response.status_code = 201 if created else 200
    return container.images.to_dict(row)


@router.get("/images/{image_id}", summary="An image's stored facts")
async def get_image(
    image_id: str, container: ContainerDep, principal: PrincipalDep
) -> dict[str, Any]:
    row = await run_in_threadpool(container.images.get, principal.tenant_id, image_id)
    return container.images.to_dict(row)


@router.get("/images/{image_id}/content", summary="The original bytes")
async def get_image_content(
    image_id: str, container: ContainerDep, principal: PrincipalDep
) -> Response:
    row, data = await run_in_threadpool(container.images.content, principal.tenant_id, image_id)
    return Response(
        data,
        media_type=_MEDIA_TYPES.get(row.format, "application/octet-stream"),
        headers={"ETag": f'"{row.sha256}"', "X-Content-Type-Options": "nosniff"},
    )


@router.delete("/images/{image_id}", status_code=204, summary="Delete an image")
async def delete_image(image_id: str, container: ContainerDep, principal: PrincipalDep) -> Response:
    await run_in_threadpool(container.images.delete, principal.tenant_id, image_id)
    return Response(status_code=204)
