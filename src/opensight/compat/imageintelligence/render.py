"""Native job data → the Image Intelligence job JSON (``GET /v2/detect/{id}``, webhooks).

The input is a *snapshot*: plain JSON the service builds from the detect request row, its
native jobs (one per image) and their reviews, so the same function renders a live reply
and a webhook body stored at completion time.

Per-image status from the native job: pending/processing → ``IN_PROGRESS``; completed →
``COMPLETED_SUCCESSFULLY``; failed → by the error's slug (:data:`IMAGE_ERRORS`), any
analysis failure (a missing model included) → ``DETECTION_ENGINE_ERROR``; timeout,
cancelled or anything unknown → ``UNKNOWN_ERROR``. A failed image carries ``error``
(``{"type", "message"}``) so the cause (e.g. ``opensight models pull <ID>``) is not lost.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .hitl import DetectedObject, modes, needs_review_in, objects_of, verdict

IN_PROGRESS = "IN_PROGRESS"
COMPLETED_SUCCESSFULLY = "COMPLETED_SUCCESSFULLY"
COMPLETED_PARTIAL_ERROR = "COMPLETED_PARTIAL_ERROR"
COMPLETED_ALL_ERROR = "COMPLETED_ALL_ERROR"

IMAGE_ERRORS = {
    "url_fetch_failed": "IMAGE_DOWNLOAD_ERROR",
    "url_not_allowed": "IMAGE_DOWNLOAD_ERROR",
    "invalid_image": "INVALID_IMAGE_FORMAT_ERROR",
    "unsupported_media_type": "INVALID_IMAGE_FORMAT_ERROR",
    "image_too_large": "INVALID_IMAGE_FORMAT_ERROR",
    "model_unavailable": "DETECTION_ENGINE_ERROR",
    "overloaded": "DETECTION_ENGINE_ERROR",
    "internal_error": "DETECTION_ENGINE_ERROR",
    "validation_error": "DETECTION_ENGINE_ERROR",
}


def image_status(job_status: str, error: Mapping[str, Any] | None) -> str:
    if job_status in ("pending", "processing"):
        return IN_PROGRESS
    if job_status in ("completed", "skipped"):
        return COMPLETED_SUCCESSFULLY
    if job_status == "failed":
        slug = str((error or {}).get("slug") or "")
        return IMAGE_ERRORS.get(slug, "UNKNOWN_ERROR")
    return "UNKNOWN_ERROR"


def request_status(image_statuses: Sequence[str]) -> str:
    """The request's status once every image ended (the caller checks reviews)."""
    if any(s == IN_PROGRESS for s in image_statuses):
        return IN_PROGRESS
    ok = sum(s == COMPLETED_SUCCESSFULLY for s in image_statuses)
    if ok == len(image_statuses):
        return COMPLETED_SUCCESSFULLY
    return COMPLETED_ALL_ERROR if ok == 0 else COMPLETED_PARTIAL_ERROR


def _box(obj: DetectedObject) -> dict[str, int] | None:
    if obj.box is None:
        return None
    x0, y0, x1, y1 = (round(v) for v in obj.box)
    return {"xMin": x0, "yMin": y0, "xMax": x1, "yMax": y1}


def _image_result(
    image: Mapping[str, Any],
    by_class: Mapping[str, tuple[str, float]],
    reviews: Mapping[str, str],
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """One ``imageResults`` entry, plus per class its best standing confidence in this image
    and whether a person decided an object of that class."""
    status = image_status(str(image.get("jobStatus")), image.get("error"))
    ref = {"id": image.get("jobId"), "url": image.get("url"), "customId": image.get("customId")}
    objects = []
    per_class: dict[str, dict[str, Any]] = {}
    for obj in objects_of(image.get("detect")):
        review = reviews.get(f"{image.get('jobId')}:{obj.index}")
        stands = verdict(obj, review, needs_review_in(obj, by_class))
        item: dict[str, Any] = {"class": obj.label, "confidence": obj.confidence, "verdict": stands}
        box = _box(obj)
        if box is not None:
            item["boundingBox"] = box
        objects.append(item)
        seen = per_class.setdefault(obj.label.strip().lower(), {"confidence": None, "hitl": False})
        if review in ("confirmed", "rejected"):
            seen["hitl"] = True
        if stands and (seen["confidence"] is None or obj.confidence > seen["confidence"]):
            seen["confidence"] = obj.confidence
    result: dict[str, Any] = {**ref, "objects": objects, "status": status}
    if status not in (IN_PROGRESS, COMPLETED_SUCCESSFULLY):
        result["error"] = _error(image)
    return result, per_class


def render_job(snapshot: Mapping[str, Any]) -> dict[str, Any]:
    classes = list(snapshot.get("classes") or [])
    by_class = modes(classes)
    reviews: Mapping[str, str] = snapshot.get("reviews") or {}
    image_results: list[dict[str, Any]] = []
    finds: dict[str, list[dict[str, Any]]] = {str(c["class"]).lower(): [] for c in classes}
    for image in snapshot.get("images") or []:
        result, per_class = _image_result(image, by_class, reviews)
        image_results.append(result)
        ref = {k: result[k] for k in ("id", "url", "customId")}
        for key, seen in per_class.items():
            if key in finds and seen["confidence"] is not None:
                finds[key].append(
                    {"image": {**ref, "confidence": seen["confidence"]}, "hitl": seen["hitl"]}
                )
    # per class: one entry per image where it stands, or one bare entry when found nowhere
    job_results: list[dict[str, Any]] = []
    for c in classes:
        name = str(c["class"])
        found = finds.get(name.lower()) or []
        if not found:
            job_results.append({"class": name, "hitl": False})
        job_results.extend({"class": name, **find} for find in found)
    body: dict[str, Any] = {
        "id": snapshot.get("id"),
        "createdAt": snapshot.get("createdAt"),
        "status": snapshot.get("status"),
        "jobResults": job_results,
        "imageResults": image_results,
    }
    for field in ("customId", "feedId", "webhookUrl"):
        if snapshot.get(field) is not None:
            body[field] = snapshot[field]
    return body


def _error(image: Mapping[str, Any]) -> dict[str, Any]:
    error = image.get("error") or {}
    if error:
        return {"type": error.get("slug") or "error", "message": error.get("detail") or ""}
    reason = image.get("reason") or image.get("jobStatus")
    return {"type": str(image.get("jobStatus")), "message": str(reason)}
