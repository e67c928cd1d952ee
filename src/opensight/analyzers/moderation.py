"""Nudity moderation from NudeNet's body-part detector (offline, CPU, ~20 ms an image).

Per image the result is ``{"offensive", "nsfw_score", "category", "labels"}``:

* ``nsfw_score`` -- 0..1, the highest confidence of any *explicit* detection
  (0 when there is none): how sure the detector is that something explicit is
  visible.
* ``category`` -- ``explicit`` when an explicit class reaches ``threshold``;
  else ``suggestive`` when a suggestive class reaches ``suggestive_threshold``;
  else ``safe``.
* ``offensive`` -- true when the category is ``explicit`` (or, with the option
  ``offensive: "suggestive"``, ``explicit`` or ``suggestive``). The pipeline's
  ``offensive`` gate reads this flag.
* ``labels`` -- the classes that decided the category, best first:
  ``{"label", "confidence", "category"}`` with the lower-cased NudeNet class,
  its best detection's confidence and the category it counts for. ``safe``
  images have none.

Classes (NudeNet's, lower-cased):

* explicit -- ``female_genitalia_exposed``, ``male_genitalia_exposed``,
  ``anus_exposed``, ``female_breast_exposed``;
* suggestive -- ``buttocks_exposed`` and the covered intimate parts
  (``female_genitalia_covered``, ``female_breast_covered``,
  ``buttocks_covered``, ``anus_covered``): underwear and swimwear, but also
  ordinary clothes now and then, so ``suggestive`` is advice, not a verdict;
* the rest (faces, feet, armpits, belly, ``male_breast_exposed``) never count:
  beaches and sport are not suggestive.

The detector runs once per image at its native 320 px (shared with ``anatomy``
and ``faces``, see ``_nudenet``). A second pass at 480/640 px was tried and left
out: on scikit-image's photos it added low-confidence explicit detections on
textures (a micrograph, a clock face), and its recall gain cannot be measured
here (no explicit imagery is used), so small explicit content in a large image
can be missed.

Options (``options: {"moderation": {...}}``), validated:

* ``threshold`` -- 0..1, default 0.6. On scikit-image's photographs and 1,300
  random crops of them the highest explicit confidence measured was 0.58 (a
  crop of the ``cell`` micrograph) and 0.41 for all but 3 crops.
* ``suggestive_threshold`` -- 0..1, default ``threshold``.
* ``offensive`` -- ``"explicit"`` (default) or ``"suggestive"``.

Licence: AGPL-3.0 (NudeNet and its YOLOv8n-based weights; see ``_nudenet``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ValidationFailed
from ..images import DecodedImage
from . import _nudenet
from .base import AnalysisContext, Analyzer, Readiness
from .registry import register

EXPLICIT = frozenset(
    {"female_genitalia_exposed", "male_genitalia_exposed", "anus_exposed", "female_breast_exposed"}
)
SUGGESTIVE = frozenset(
    {
        "buttocks_exposed",
        "female_genitalia_covered",
        "female_breast_covered",
        "buttocks_covered",
        "anus_covered",
    }
)
OFFENSIVE_CHOICES = ("explicit", "suggestive")


@dataclass(frozen=True)
class ModerationOptions:
    threshold: float = 0.6
    suggestive_threshold: float = 0.6
    offensive: str = "explicit"

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> ModerationOptions:
        threshold = _nudenet.probability_option("moderation", options, "threshold", cls.threshold)
        suggestive = _nudenet.probability_option(
            "moderation", options, "suggestive_threshold", threshold
        )
        offensive = options.get("offensive", cls.offensive)
        if offensive not in OFFENSIVE_CHOICES:
            raise ValidationFailed(
                "moderation option 'offensive' must be one of: " + ", ".join(OFFENSIVE_CHOICES)
            )
        return cls(threshold=threshold, suggestive_threshold=suggestive, offensive=offensive)


DEFAULTS = ModerationOptions()


class ModerationAnalyzer(Analyzer):
    name = "moderation"
    version = "1.0.0"
    description = "Nudity moderation: safe / suggestive / explicit, offline (NudeNet 320n)."
    license = _nudenet.LICENSE

    def readiness(self) -> Readiness:
        missing = _nudenet.missing()
        return Readiness(ready=not missing, missing=missing)

    def analyze(
        self, images: Sequence[DecodedImage], context: AnalysisContext
    ) -> list[dict[str, Any]]:
        opts = ModerationOptions.from_mapping(context.options_for(self.name))
        return [moderate(_nudenet.detections(image), opts) for image in images]


def moderate(
    detections: Sequence[_nudenet.Detection], opts: ModerationOptions = DEFAULTS
) -> dict[str, Any]:
    """The moderation result for one image's detections (see the module docstring)."""
    best: dict[str, float] = {}
    for detection in detections:
        if detection.label in EXPLICIT or detection.label in SUGGESTIVE:
            best[detection.label] = max(best.get(detection.label, 0.0), detection.confidence)
    nsfw_score = max((c for label, c in best.items() if label in EXPLICIT), default=0.0)
    labels: list[dict[str, Any]] = []
    for label, confidence in best.items():
        category = "explicit" if label in EXPLICIT else "suggestive"
        limit = opts.threshold if category == "explicit" else opts.suggestive_threshold
        if confidence >= limit:
            labels.append(
                {"label": label, "confidence": round(confidence, 4), "category": category}
            )
    labels.sort(key=lambda item: (-item["confidence"], item["label"]))
    categories = {item["category"] for item in labels}
    category = (
        "explicit"
        if "explicit" in categories
        else "suggestive"
        if "suggestive" in categories
        else "safe"
    )
    offensive = category == "explicit" or (
        opts.offensive == "suggestive" and category == "suggestive"
    )
    return {
        "offensive": offensive,
        "nsfw_score": round(nsfw_score, 4),
        "category": category,
        "labels": labels,
    }


register(ModerationAnalyzer())
