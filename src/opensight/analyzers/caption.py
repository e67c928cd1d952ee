"""One-sentence captions (CloudSight's ``name``) from Florence-2-base-ft.

Per image the result is::

    {"caption": "A woman in a space suit holding a flag.",
     "model": "florence-2-base-ft", "detail": "short",
     "locale": "de", "locale_used": "en", "confidence": 0.71,
     "focus": {"x": 0.5, "y": 0.3, "box": [160, 0, 480, 320]}}   # only with option focus

Options (``context.options_for("caption")``):

* ``detail`` -- ``"short"`` (Florence-2's ``<CAPTION>`` task, default) or ``"detailed"``
  (``<DETAILED_CAPTION>``: several sentences).
* ``focus`` -- ``[x, y]``, the point of interest normalised to 0..1 (CloudSight's
  ``focus[x]``/``focus[y]`` divided by the image size). The caption then describes a
  square crop centred on that point whose side is ``focus_size`` (default 0.5) times the
  image's shorter side, shifted inwards where it would leave the image; the crop box in
  pixels is reported as ``focus.box`` ``[left, top, right, bottom]``.
* ``locale`` -- the caller's language (recorded as ``locale``). Florence-2 writes English
  only, so ``locale_used`` is always ``"en"``; translation is not done here.
* ``max_new_tokens`` -- 1..256 (default 40 short, 160 detailed).

``confidence`` is the geometric-mean probability the model gives the caption's tokens
(``exp(mean log P)`` after the forced ``<s>``, ``</s>`` included) -- a model score, not
a calibrated probability of being right.

Needs the optional extra ``vlm`` (``pip install "opensight[vlm]"``) and the model
(``opensight models pull florence-2-base-ft``); otherwise ``ModelUnavailable`` (503).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ValidationFailed
from ..images import DecodedImage
from ..runtime.models import florence2
from .base import AnalysisContext, Analyzer, Readiness
from .registry import register

DEFAULT_MAX_TOKENS = {"short": 40, "detailed": 160}
LOCALE_PATTERN = re.compile(r"^[A-Za-z]{2,3}([_-][A-Za-z0-9]{2,8}){0,3}$")


@dataclass(frozen=True)
class CaptionOptions:
    detail: str = "short"
    focus: tuple[float, float] | None = None
    focus_size: float = 0.5
    locale: str | None = None
    max_new_tokens: int = 40

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> CaptionOptions:
        detail = str(options.get("detail", "short")).strip().lower()
        if detail not in florence2.CAPTION_TASKS:
            known = ", ".join(florence2.CAPTION_TASKS)
            raise ValidationFailed(f"caption option 'detail' must be one of: {known}")
        return cls(
            detail=detail,
            focus=parse_focus(options.get("focus")),
            focus_size=_number(options, "focus_size", 0.5, 0.05, 1.0),
            locale=parse_locale(options.get("locale")),
            max_new_tokens=int(
                _number(options, "max_new_tokens", DEFAULT_MAX_TOKENS[detail], 1, 256)
            ),
        )


def _number(options: Mapping[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = options.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValidationFailed(f"caption option {key!r} must be a number")
    try:
        number = float(value)
    except ValueError:
        raise ValidationFailed(f"caption option {key!r} must be a number") from None
    if not math.isfinite(number) or not low <= number <= high:
        raise ValidationFailed(f"caption option {key!r} must be between {low} and {high}")
    return number


def parse_focus(value: Any) -> tuple[float, float] | None:
    """``[x, y]`` (or ``{"x":, "y":}``) normalised to 0..1; None when absent."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        value = [value.get("x"), value.get("y")]
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ValidationFailed("caption option 'focus' must be [x, y] with 0 <= x, y <= 1")
    point = []
    for part in value:
        try:
            number = float(part)
        except (TypeError, ValueError):
            raise ValidationFailed("caption option 'focus' must be two numbers") from None
        if isinstance(part, bool) or not math.isfinite(number) or not 0.0 <= number <= 1.0:
            raise ValidationFailed("caption option 'focus' must be [x, y] with 0 <= x, y <= 1")
        point.append(number)
    return point[0], point[1]


def parse_locale(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not LOCALE_PATTERN.match(value.strip()):
        raise ValidationFailed("caption option 'locale' must be a language tag such as en or pt-BR")
    return value.strip()


def focus_box(
    width: int, height: int, focus: tuple[float, float], size: float
) -> tuple[int, int, int, int]:
    """The square crop around ``focus``: side ``size`` x shorter side, kept inside the image."""
    side = max(1, round(min(width, height) * size))
    cx, cy = focus[0] * width, focus[1] * height
    left = int(min(max(round(cx - side / 2), 0), width - side))
    top = int(min(max(round(cy - side / 2), 0), height - side))
    return left, top, left + side, top + side


def crop(rgb: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    left, top, right, bottom = box
    return rgb[top:bottom, left:right]


class CaptionAnalyzer(Analyzer):
    name = "caption"
    version = "1.0.0"
    description = "One-sentence (or detailed) English caption from Florence-2-base-ft"
    license = "MIT"
    model = florence2.MODEL_ID

    def readiness(self) -> Readiness:
        needs = florence2.missing(self.model or florence2.MODEL_ID)
        return Readiness(ready=not needs, missing=needs)

    def analyze(
        self, images: Sequence[DecodedImage], context: AnalysisContext
    ) -> list[dict[str, Any]]:
        opts = CaptionOptions.from_mapping(context.options_for(self.name))
        model_id = self.model or florence2.MODEL_ID
        florence2.require(model_id)
        items, boxes = [], []
        for image in images:
            box = None
            pixels = image.rgb
            if opts.focus is not None:
                box = focus_box(image.width, image.height, opts.focus, opts.focus_size)
                pixels = crop(pixels, box)
            boxes.append(box)
            items.append(
                florence2.Item(
                    image=pixels,
                    prompt=florence2.CAPTION_TASKS[opts.detail],
                    max_new_tokens=opts.max_new_tokens,
                )
            )
        results = []
        for output, box in zip(florence2.run(items, model_id), boxes, strict=True):
            assert isinstance(output, florence2.Generation)
            result: dict[str, Any] = {
                "caption": output.text,
                "model": model_id,
                "detail": opts.detail,
                "locale": opts.locale or "en",
                "locale_used": "en",
                "confidence": round(output.confidence, 4),
            }
            if box is not None and opts.focus is not None:
                result["focus"] = {"x": opts.focus[0], "y": opts.focus[1], "box": list(box)}
            results.append(result)
        return results


register(CaptionAnalyzer())
