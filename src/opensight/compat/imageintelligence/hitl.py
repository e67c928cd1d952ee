"""Which detected objects a person must review, and the verdict each object carries.

Per requested class, ``hitl`` says: ``NEVER`` (the model's answer is final), ``AUTO``
(only answers below a confidence threshold, setting ``hitl_auto_threshold``, go to a
person) or ``ALWAYS``.
An object waiting for review has ``verdict: false`` until a person confirms it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ...services.reviews import ReviewItem

#: AUTO sends objects below this confidence to review (setting ``hitl_auto_threshold``).
AUTO_REVIEW_BELOW = 0.5


@dataclass(frozen=True)
class DetectedObject:
    index: int
    """Position in the detect analyzer's list: the review's ``object_index``."""
    label: str
    confidence: float
    box: tuple[float, float, float, float] | None
    """x_min, y_min, x_max, y_max in pixels."""


def objects_of(result: Mapping[str, Any] | None) -> list[DetectedObject]:
    """The objects of a native ``detect`` result (``{"objects": [{"label", "confidence",
    "box": {"x", "y", "width", "height"}}]}``, boxes in the image's pixels)."""
    if not isinstance(result, Mapping):
        return []
    found = []
    for index, item in enumerate(result.get("objects") or []):
        if not isinstance(item, Mapping):
            continue
        label = item.get("label", item.get("class"))
        confidence = item.get("confidence", item.get("score"))
        if not isinstance(label, str) or not isinstance(confidence, (int, float)):
            continue
        found.append(DetectedObject(index, label, float(confidence), _xyxy(item.get("box"))))
    return found


def _xyxy(box: Any) -> tuple[float, float, float, float] | None:
    """``{"x", "y", "width", "height"}`` (the detect analyzer) or ``[x, y, w, h]``."""
    if isinstance(box, Mapping):
        box = [box.get("x"), box.get("y"), box.get("width"), box.get("height")]
    if not isinstance(box, Sequence) or len(box) != 4:
        return None
    if not all(isinstance(v, (int, float)) for v in box):
        return None
    x, y, w, h = (float(v) for v in box)
    return (x, y, x + w, y + h)


def modes(classes: Sequence[Mapping[str, Any]]) -> dict[str, tuple[str, float]]:
    """Lower-cased class name -> (hitl mode, AUTO threshold fixed when the request came)."""
    return {
        str(c["class"]).strip().lower(): (
            str(c.get("hitl") or "NEVER"),
            float(c.get("autoBelow", AUTO_REVIEW_BELOW)),
        )
        for c in classes
    }


def needs_review_in(obj: DetectedObject, classes: Mapping[str, tuple[str, float]]) -> bool:
    mode, threshold = classes.get(obj.label.strip().lower(), ("NEVER", AUTO_REVIEW_BELOW))
    return needs_review(obj, mode, threshold)


def needs_review(obj: DetectedObject, mode: str, threshold: float = AUTO_REVIEW_BELOW) -> bool:
    return mode == "ALWAYS" or (mode == "AUTO" and obj.confidence < threshold)


def review_items(
    classes: Sequence[Mapping[str, Any]], objects: Sequence[DetectedObject]
) -> list[ReviewItem]:
    """The objects of one image that go to the review queue."""
    by_class = modes(classes)
    return [
        ReviewItem(
            object_index=obj.index,
            label=obj.label,
            confidence=obj.confidence,
            box=list(obj.box) if obj.box is not None else None,
        )
        for obj in objects
        if needs_review_in(obj, by_class)
    ]


def verdict(obj: DetectedObject, review_status: str | None, queued: bool) -> bool:
    """True when the object stands: not sent to review, or a person confirmed it."""
    if review_status is not None:
        return review_status == "confirmed"
    return not queued
