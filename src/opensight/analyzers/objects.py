"""COCO object detection (RT-DETR): labels, boxes and confidences.

Per image the result is::

    {"objects": [{"label": "dog", "label_id": 16, "confidence": 0.94,
                  "box": {"x": 12.5, "y": 40.0, "width": 200.0, "height": 150.25},
                  "box_normalized": {"x": 0.0195, "y": 0.0833, "width": 0.3125,
                                     "height": 0.3130}}, ...],
     "vocabulary": "coco", "model": "rtdetr-r50vd-coco"}

Boxes are in pixels of the (EXIF-upright) original image, clipped to it, plus the
same box divided by the image size. Post-processing is RT-DETR's own (sigmoid
scores, top ``num_queries`` query/class pairs, no NMS), highest confidence first.

Options (``context.options_for("objects")``): ``min_confidence`` (0..1, default
0.5), ``limit`` (1..300, default 100), ``vocabulary`` ("coco", the only closed
vocabulary; for other names use the ``detect`` feature with ``classes``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import ValidationFailed
from ..images import DecodedImage
from ..runtime.models import rtdetr
from ..runtime.models._image_preprocess import box_entry
from ._model_options import integer, model_readiness, number
from .base import AnalysisContext, Analyzer, Readiness
from .registry import register

VOCABULARIES = ("coco",)


class ObjectsAnalyzer(Analyzer):
    name = "objects"
    version = "1.0.0"
    description = "COCO object detection (RT-DETR R50vd): 80 labels with boxes and confidences."
    license = "Apache-2.0"
    model = rtdetr.DEFAULT_MODEL

    def readiness(self) -> Readiness:
        return model_readiness(rtdetr.DEFAULT_MODEL)

    def analyze(
        self, images: Sequence[DecodedImage], context: AnalysisContext
    ) -> list[dict[str, Any]]:
        options = context.options_for(self.name)
        threshold = number(options, "min_confidence", 0.5, 0.0, 1.0, self.name)
        limit = integer(options, "limit", 100, 1, 300, self.name)
        vocabulary = str(options.get("vocabulary") or "coco").strip().lower()
        if vocabulary not in VOCABULARIES:
            raise ValidationFailed(
                f"objects option 'vocabulary' must be one of {', '.join(VOCABULARIES)}; "
                "for other class names use the 'detect' feature with option 'classes'"
            )
        detector = rtdetr.model()
        found = detector.detect([image.rgb for image in images], threshold)
        labels = detector.labels()
        results = []
        for image, detections in zip(images, found, strict=True):
            objects = []
            for det in detections[:limit]:
                label = labels[det.label_id] if det.label_id < len(labels) else str(det.label_id)
                objects.append(
                    {
                        "label": label,
                        "label_id": det.label_id,
                        "confidence": round(det.score, 4),
                        **box_entry(*det.box, image.width, image.height),
                    }
                )
            results.append(
                {"objects": objects, "vocabulary": vocabulary, "model": rtdetr.DEFAULT_MODEL}
            )
        return results


register(ObjectsAnalyzer())
