"""Open-vocabulary detection (OWLv2): the caller names the classes, we find their boxes.

Per image the result is::

    {"objects": [{"label": "person", "confidence": 0.41,
                  "box": {"x": ..., "y": ..., "width": ..., "height": ...},
                  "box_normalized": {...}}, ...],
     "classes": ["person", "bicycle"], "model": "owlv2-base-patch16-ensemble"}

Each class name is a text query as written (``"red car"`` works; no prompt
template is added). Per image patch OWLv2 predicts one box and its best query;
boxes above ``threshold`` are kept, overlapping boxes of the same label are
merged by NMS, highest confidence first. OWLv2 scores are lower than a closed
detector's: 0.1-0.3 is a usual threshold.

Options (``context.options_for("detect")``): ``classes`` (required: 1..64 names,
each up to 100 characters; a list or a comma-separated string), ``threshold``
(0..1, default 0.1), ``nms_iou`` (0..1, default 0.3; 1 disables NMS), ``limit``
(1..300, default 100).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import ValidationFailed
from ..images import DecodedImage
from ..runtime.models import owlv2
from ..runtime.models._image_preprocess import box_entry
from ._model_options import integer, model_readiness, number, text_list
from .base import AnalysisContext, Analyzer, Readiness
from .registry import register

MAX_CLASSES = 64


class DetectAnalyzer(Analyzer):
    name = "detect"
    version = "1.0.0"
    description = "Open-vocabulary detection (OWLv2): boxes for caller-named classes."
    license = "Apache-2.0"
    model = owlv2.DEFAULT_MODEL

    def readiness(self) -> Readiness:
        return model_readiness(owlv2.DEFAULT_MODEL)

    def analyze(
        self, images: Sequence[DecodedImage], context: AnalysisContext
    ) -> list[dict[str, Any]]:
        options = context.options_for(self.name)
        classes = text_list(options, "classes", self.name, max_items=MAX_CLASSES, max_length=100)
        if not classes:
            raise ValidationFailed(
                'detect needs option \'classes\': the names to look for, e.g. ["person", "dog"]'
            )
        threshold = number(options, "threshold", 0.1, 0.0, 1.0, self.name)
        nms_iou = number(options, "nms_iou", 0.3, 0.0, 1.0, self.name)
        limit = integer(options, "limit", 100, 1, 300, self.name)
        found = owlv2.model().detect([image.rgb for image in images], classes, threshold)
        results = []
        for image, detections in zip(images, found, strict=True):
            objects = [
                {
                    "label": classes[det.label_id],
                    "confidence": round(det.score, 4),
                    **box_entry(*det.box, image.width, image.height),
                }
                for det in owlv2.nms(detections, nms_iou)[:limit]
            ]
            results.append({"objects": objects, "classes": classes, "model": owlv2.DEFAULT_MODEL})
        return results


register(DetectAnalyzer())
