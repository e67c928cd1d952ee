"""Native analyzer results → Cloudinary ``analysis`` objects (pure reshaping, no analysis).

Each function takes one native feature's result and the request parameters the answer must
echo (prompts, questions), and returns what ``cloudinary-analysis`` 0.1.0's ``*AnalysisData``
model expects. Boxes are native ``[x, y, w, h]`` pixels. Where Cloudinary does not publish the
inside of ``tags`` (content-aware detection), it is ``{label: [{"bounding-box": [x, y, w, h],
"confidence": c}]}``; see docs/compat/cloudinary.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any


def model_version(result: Mapping[str, Any]) -> int:
    """Cloudinary's integer ``model_version``: the major number of the native analyzer's version."""
    head = str(result.get("version") or "1").split(".", 1)[0]
    return int(head) if head.isdigit() else 1


def _first(item: Mapping[str, Any], *keys: str, default: Any = None) -> Any:
    for key in keys:
        if item.get(key) is not None:
            return item[key]
    return default


def _items(result: Mapping[str, Any], *keys: str) -> list[Mapping[str, Any]]:
    value = _first(result, *keys, default=[])
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def _score(item: Mapping[str, Any]) -> float:
    return round(float(_first(item, "confidence", "score", "probability", default=0.0)), 4)


def _label(item: Mapping[str, Any]) -> str:
    return str(_first(item, "label", "name", "class", "text", default=""))


def _box(item: Mapping[str, Any]) -> list[float] | None:
    """``[x, y, w, h]`` from a native box: a 4-list, or ``{x, y, width, height}`` (detectors)."""
    box = _first(item, "box", "bbox")
    if isinstance(box, Mapping):
        try:
            return [box["x"], box["y"], box["width"], box["height"]]
        except KeyError:
            return None
    return list(box) if isinstance(box, Sequence) and len(box) == 4 else None


def detection_tags(items: Iterable[Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """``{label: [{"bounding-box": [x, y, w, h], "confidence": c}, ...]}``, best first per label."""
    tags: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        label = _label(item)
        if not label:
            continue
        entry: dict[str, Any] = {"confidence": _score(item)}
        box = _box(item)
        if box is not None:
            entry["bounding-box"] = box
        tags.setdefault(label, []).append(entry)
    for entries in tags.values():
        entries.sort(key=lambda e: -float(e["confidence"]))
    return tags


# --------------------------------------------------------------- classical analyzers
def image_quality(result: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """``quality`` → ``{quality: low|medium|high, score}`` (+ ``issues``, an OpenSight extra).

    ``confidence`` is left out: the native analyzer has no calibrated confidence to report.
    """
    return {
        "quality": result.get("label"),
        "score": result.get("score"),
        "issues": list(result.get("issues") or []),
        "model_version": model_version(result),
    }


def cld_text(result: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """``ocr`` lines → ``tags`` keyed by each line's text (+ the full ``text``, an extra)."""
    return {
        "tags": detection_tags(_items(result, "lines")),
        "text": result.get("text") or "",
        "model_version": model_version(result),
    }


def human_anatomy(result: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    return {"tags": detection_tags(_items(result, "parts")), "model_version": model_version(result)}


def watermark_detection(result: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    detections = []
    for item in _items(result, "detections"):
        entry: dict[str, Any] = {"name": _label(item), "confidence": _score(item)}
        box = _box(item)
        if box is not None:
            entry["bounding-box"] = box
        detections.append(entry)
    return {"detections": detections, "model_version": model_version(result)}


#: Watermark kinds that are single marks stamped on the image: what a logo detector would see.
LOGO_MARKS = ("logo", "text")


def google_logo_detection(result: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """``watermark``'s single ``logo``/``text`` marks as *unidentified* logos.

    There is no brand-logo model here: ``description`` is the kind of mark (``logo`` or
    ``text``), never a brand, and logos printed on things in the scene are not found.
    """
    annotations = []
    for item in _items(result, "detections"):
        box = _box(item)
        if _label(item) not in LOGO_MARKS or box is None:
            continue
        x, y, w, h = (round(float(v)) for v in box)
        annotations.append(
            {
                "description": _label(item),
                "score": _score(item),
                "bounding_poly": {
                    "vertices": [
                        {"x": x, "y": y},
                        {"x": x + w, "y": y},
                        {"x": x + w, "y": y + h},
                        {"x": x, "y": y + h},
                    ]
                },
            }
        )
    return {"logo_annotations": annotations}


# ------------------------------------------------------------------- model analyzers
def captioning(result: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    caption = _first(result, "caption", "text", default="")
    if isinstance(caption, Mapping):
        caption = _first(caption, "text", "caption", default="")
    return {"data": {"caption": str(caption)}, "model_version": model_version(result)}


def _answers(result: Mapping[str, Any], prompts: Sequence[str]) -> list[str | None]:
    """The answer to each prompt, in prompt order (by prompt text when the result names it)."""
    raw = _first(result, "answers", "responses", default=[])
    if not isinstance(raw, list):
        return [None] * len(prompts)
    by_prompt: dict[str, str] = {}
    ordered: list[str | None] = []
    for item in raw:
        if isinstance(item, Mapping):
            answer = _first(item, "answer", "value", "text")
            text = None if answer is None else str(answer)
            prompt = item.get("prompt") or item.get("question")
            if prompt is not None and text is not None:
                by_prompt[str(prompt)] = text
            ordered.append(text)
        else:
            ordered.append(None if item is None else str(item))
    return [
        by_prompt.get(prompt, ordered[i] if i < len(ordered) else None)
        for i, prompt in enumerate(prompts)
    ]


def ai_vision_general(result: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    prompts = list(params.get("prompts") or [])
    return {
        "responses": [{"value": a} for a in _answers(result, prompts)],
        "model_version": model_version(result),
    }


def yes_no(answer: str | None) -> str:
    """Cloudinary's moderation values: ``yes``, ``no``, else ``unknown``."""
    word = (answer or "").strip().lower().rstrip(".!")
    return word if word in ("yes", "no") else "unknown"


def ai_vision_moderation(result: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    questions = list(params.get("prompts") or [])
    answers = _answers(result, questions)
    return {
        "responses": [
            {"prompt": q, "value": yes_no(a)} for q, a in zip(questions, answers, strict=True)
        ],
        "model_version": model_version(result),
    }


def _tags(result: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return _items(result, "tags", "labels")


def ai_vision_tagging(result: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """The defined tags the native ``tags`` analyzer says apply (+ ``confidence``, an extra)."""
    return {
        "tags": [{"name": _label(t), "confidence": _score(t)} for t in _tags(result)],
        "model_version": model_version(result),
    }


def google_tagging(result: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "label_annotations": {
            "labels": [{"label": _label(t), "score": _score(t)} for t in _tags(result)]
        }
    }


def classification_tags(result: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """Whole-image tags (fashion, products) as ``tags``: no ``bounding-box`` (none exists)."""
    return {"tags": detection_tags(_tags(result)), "model_version": model_version(result)}


def object_tags(result: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """Detections as ``tags`` (+ the native ``vocabulary`` that named them, an extra)."""
    return {
        "tags": detection_tags(_items(result, "objects", "detections")),
        "vocabulary": result.get("vocabulary"),
        "model_version": model_version(result),
    }
