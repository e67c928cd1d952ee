"""Body parts with boxes, from NudeNet's detector (for Cloudinary's ``human_anatomy``).

Per image: ``{"parts": [{"label", "confidence", "box"}], "count": n}``, best
first. ``label`` is one of NudeNet's 18 classes, lower-cased
(``face_female``, ``face_male``, ``armpits_exposed``, ``belly_covered``,
``feet_exposed``, ``female_breast_covered``, ``buttocks_exposed``, ...; the
full list is ``_nudenet.CLASSES``); ``box`` is ``[x, y, w, h]`` in the
image's pixels; ``count`` is ``len(parts)``.

The detector runs once per image at its native 320 px, shared with
``moderation`` and ``faces`` (see ``_nudenet``), so small parts of a large
image are missed: a part must span roughly 20+ px at 320 px (a 4000 px photo's
part 250+ px).

Option (``options: {"anatomy": {...}}``): ``threshold`` -- 0..1, default 0.5,
the lowest confidence reported. The detector's own floor is 0.2; between 0.2
and 0.5 scikit-image's photos and crops give stray parts on textures (the
moon's surface as ``belly_exposed`` up to 0.64 on crops, 0.40 whole).

Licence: AGPL-3.0 (NudeNet and its YOLOv8n-based weights; see ``_nudenet``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..images import DecodedImage
from . import _nudenet
from .base import AnalysisContext, Analyzer, Readiness
from .registry import register

DEFAULT_THRESHOLD = 0.5


class AnatomyAnalyzer(Analyzer):
    name = "anatomy"
    version = "1.0.0"
    description = "Body parts (NudeNet's 18 classes) with boxes, offline (NudeNet 320n)."
    license = _nudenet.LICENSE

    def readiness(self) -> Readiness:
        missing = _nudenet.missing()
        return Readiness(ready=not missing, missing=missing)

    def analyze(
        self, images: Sequence[DecodedImage], context: AnalysisContext
    ) -> list[dict[str, Any]]:
        threshold = _nudenet.probability_option(
            self.name, context.options_for(self.name), "threshold", DEFAULT_THRESHOLD
        )
        return [parts(_nudenet.detections(image), threshold) for image in images]


def parts(detections: Sequence[_nudenet.Detection], threshold: float) -> dict[str, Any]:
    kept = sorted(
        (d for d in detections if d.confidence >= threshold),
        key=lambda d: (-d.confidence, d.label, d.box),
    )
    return {"parts": [d.as_dict() for d in kept], "count": len(kept)}


register(AnatomyAnalyzer())
