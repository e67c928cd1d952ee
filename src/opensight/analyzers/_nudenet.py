"""NudeNet's body-part detector, loaded once per process and run once per image.

``moderation``, ``anatomy`` and ``faces`` all read the detections of NudeNet's
``320n`` model (a YOLOv8n export shipped inside the ``nudenet`` wheel, 18
classes: exposed/covered body parts and male/female faces). This module owns
the single ONNX Runtime session and calls it directly on the decoded RGB array,
without NudeNet's file-path and OpenCV round trips:

* **Pre-processing** -- the image is scaled so its longest side is ``size``
  pixels (``cv2.INTER_AREA`` when shrinking, as Ultralytics does for
  validation; bilinear when enlarging a small image, as NudeNet does), then
  padded with grey (114) to a multiple of the model's stride (32), centred
  (Ultralytics' rectangular inference): a 3:2 photo runs at 320 x 224 instead
  of NudeNet's 320 x 320 square, measured 10 ms instead of 13.
* **Post-processing** -- per anchor the best class; anchors under
  ``MIN_CONFIDENCE`` (0.2, NudeNet's) are dropped, then class-agnostic
  non-maximum suppression at IoU 0.45 (NudeNet's), and boxes are mapped back
  to original pixels as integer ``(x, y, w, h)``, clipped to the image.
* **Once per image** -- results are cached on the :class:`DecodedImage`
  itself (keyed by the pass), so a job asking for all three analyzers runs the
  model once per image; the cache goes away with the image.
* **Threads** -- one intra-op thread per call and no spinning by default
  (``OPENSIGHT_NUDENET_THREADS`` overrides): the server's workers call the shared
  session concurrently, so a 2-core machine is used by two calls at once
  rather than oversubscribed by one. Measured on a shared 2-core host, one
  thread was as fast per call as two, and batching several images into one
  call saved nothing on CPU, so each image runs on its own.

Licence: **AGPL-3.0**. The ``nudenet`` 3.4.2 wheel's metadata still says MIT,
but the wheel ships the AGPL-3.0 text as its LICENSE, the ``320n.onnx`` file's
own metadata says "AGPL-3.0 License (https://ultralytics.com/license)" (it is
an Ultralytics YOLOv8n export), and NudeNet's author confirmed that the
YOLOv8-based releases are AGPL (github.com/notAI-tech/NudeNet issues #119,
#177: "since yolov8 is used, it has to be AGPL"). See
``docs/analyzers/moderation.md``.
"""

from __future__ import annotations

import importlib.util
import math
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..errors import ModelUnavailable, ValidationFailed
from ..images import DecodedImage

#: What applies to anything built on this detector (the analyzers' ``license``).
LICENSE = (
    "AGPL-3.0 (NudeNet 3.4.2 and its 320n weights, an Ultralytics YOLOv8n export; "
    "PyPI metadata says MIT, the wheel and the model metadata say AGPL-3.0)"
)

#: NudeNet's classes, in the model's output order, lower-cased.
CLASSES: tuple[str, ...] = (
    "female_genitalia_covered",
    "face_female",
    "buttocks_exposed",
    "female_breast_exposed",
    "female_genitalia_exposed",
    "male_breast_exposed",
    "anus_exposed",
    "feet_exposed",
    "belly_covered",
    "feet_covered",
    "armpits_covered",
    "armpits_exposed",
    "face_male",
    "belly_exposed",
    "male_genitalia_exposed",
    "anus_covered",
    "female_breast_covered",
    "buttocks_covered",
)

NATIVE_SIZE = 320
"""The resolution the model was trained at (longest side, pixels)."""
STRIDE = 32
MIN_CONFIDENCE = 0.2
NMS_IOU = 0.45
PAD_VALUE = 114
MODEL_FILE = "320n.onnx"
_CACHE_ATTR = "_opensight_nudenet"

runs = 0
"""How many times the ONNX session has run in this process (for tests and benches)."""


@dataclass(frozen=True)
class Detection:
    """One detected body part or face."""

    label: str
    """A lower-cased NudeNet class, e.g. ``face_female``."""
    confidence: float
    box: tuple[int, int, int, int]
    """``(x, y, w, h)`` in the original image's pixels."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "confidence": round(self.confidence, 4),
            "box": list(self.box),
        }


def model_path() -> Path | None:
    """Where the wheel's ``320n.onnx`` is, without importing ``nudenet``; None if absent."""
    try:
        spec = importlib.util.find_spec("nudenet")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / MODEL_FILE
        if path.is_file():
            return path
    return None


def missing() -> list[str]:
    """What to install for the detector to work (empty when it can)."""
    if importlib.util.find_spec("onnxruntime") is None:
        return ["pip install onnxruntime"]
    if model_path() is None:
        return ["pip install 'opensight[moderation]' (NudeNet; its detector is AGPL-3.0)"]
    return []


class _Detector:
    """The ONNX Runtime session and the pre/post-processing around it."""

    def __init__(self, path: Path, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def detect(self, rgb: np.ndarray, size: int) -> list[Detection]:
        global runs
        blob, scale_x, scale_y, pad_x, pad_y = _letterbox(rgb, size)
        output = self.session.run(None, {self.input_name: blob})[0]
        runs += 1
        height, width = rgb.shape[:2]
        return _postprocess(output[0], scale_x, scale_y, pad_x, pad_y, width, height)


_detector: _Detector | None = None
_detector_pid = 0
_lock = threading.Lock()


def detector_threads() -> int:
    """ONNX Runtime intra-op threads per call: ``OPENSIGHT_NUDENET_THREADS``, default 1."""
    raw = os.environ.get("OPENSIGHT_NUDENET_THREADS", "").strip()
    try:
        return max(1, int(raw)) if raw else 1
    except ValueError:
        return 1


def detector() -> _Detector:
    """The process's detector, created on first use (thread-safe; a forked child makes
    its own, as ONNX Runtime sessions do not survive a fork)."""
    global _detector, _detector_pid
    found = _detector
    if found is not None and _detector_pid == os.getpid():
        return found
    with _lock:
        if _detector is None or _detector_pid != os.getpid():
            path = model_path()
            if path is None:
                raise ModelUnavailable("nudenet-320n", "; ".join(missing()))
            _detector = _Detector(path, detector_threads())
            _detector_pid = os.getpid()
        return _detector


def detections(image: DecodedImage, size: int = NATIVE_SIZE) -> list[Detection]:
    """NudeNet's detections on ``image`` (longest side scaled to ``size``), cached on it.

    The cache lives in the image's ``__dict__`` (like its ``cached_property``
    values), keyed by ``size``, so analyzers of one job share a pass and the
    detections are freed with the image.
    """
    cache: dict[int, list[Detection]] = image.__dict__.setdefault(_CACHE_ATTR, {})
    found = cache.get(size)
    if found is None:
        found = detector().detect(image.rgb, size)
        cache[size] = found
    return found


def _letterbox(rgb: np.ndarray, size: int) -> tuple[np.ndarray, float, float, int, int]:
    """RGB uint8 -> a 1x3xHxW float32 blob, the x/y scales applied, and the padding."""
    height, width = rgb.shape[:2]
    scale = size / max(height, width)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    src = np.ascontiguousarray(rgb)
    src_w, src_h = width, height
    if scale < 1:
        # An integer box reduction first (OpenCV's fast path: 12 MP -> 320 in a third
        # of the time), dropping the < k ragged pixels at the edge, then the rest.
        k = int(1.0 / scale)
        if k >= 2:
            src_w, src_h = width // k * k, height // k * k
            src = cv2.resize(
                np.ascontiguousarray(src[:src_h, :src_w]),
                (src_w // k, src_h // k),
                interpolation=cv2.INTER_AREA,
            )
        if (src.shape[1], src.shape[0]) != (new_w, new_h):
            src = cv2.resize(src, (new_w, new_h), interpolation=cv2.INTER_AREA)
    elif scale > 1:
        src = cv2.resize(src, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    in_w = math.ceil(new_w / STRIDE) * STRIDE
    in_h = math.ceil(new_h / STRIDE) * STRIDE
    pad_x, pad_y = (in_w - new_w) // 2, (in_h - new_h) // 2
    canvas = np.full((in_h, in_w, 3), PAD_VALUE, np.uint8)
    canvas[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = src
    blob = canvas.transpose(2, 0, 1)[np.newaxis].astype(np.float32) * np.float32(1.0 / 255.0)
    return np.ascontiguousarray(blob), new_w / src_w, new_h / src_h, pad_x, pad_y


def _postprocess(
    output: np.ndarray,
    scale_x: float,
    scale_y: float,
    pad_x: int,
    pad_y: int,
    width: int,
    height: int,
) -> list[Detection]:
    """One image's raw output (4 + classes, anchors) -> detections in original pixels."""
    preds = output.T  # anchors x (cx, cy, w, h, class scores...)
    scores = preds[:, 4:]
    class_ids = scores.argmax(axis=1)
    confidences = scores[np.arange(scores.shape[0]), class_ids]
    keep = confidences >= MIN_CONFIDENCE
    if not keep.any():
        return []
    preds, class_ids, confidences = preds[keep], class_ids[keep], confidences[keep]
    cx = (preds[:, 0] - pad_x) / scale_x
    cy = (preds[:, 1] - pad_y) / scale_y
    half_w, half_h = preds[:, 2] / scale_x / 2, preds[:, 3] / scale_y / 2
    boxes = np.stack(
        [
            np.clip(cx - half_w, 0, width),
            np.clip(cy - half_h, 0, height),
            np.clip(cx + half_w, 0, width),
            np.clip(cy + half_h, 0, height),
        ],
        axis=1,
    )
    out: list[Detection] = []
    for i in nms(boxes, confidences, NMS_IOU):
        x0, y0, x1, y1 = (round(float(v)) for v in boxes[i])
        if x1 <= x0 or y1 <= y0:
            continue
        label = CLASSES[int(class_ids[i])]
        out.append(Detection(label, float(confidences[i]), (x0, y0, x1 - x0, y1 - y0)))
    return out


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    """Greedy non-maximum suppression over ``(x0, y0, x1, y1)`` boxes; kept indices."""
    order = np.argsort(-scores, kind="stable")
    areas = np.maximum(boxes[:, 2] - boxes[:, 0], 0) * np.maximum(boxes[:, 3] - boxes[:, 1], 0)
    kept: list[int] = []
    while order.size:
        i = int(order[0])
        kept.append(i)
        rest = order[1:]
        ix0 = np.maximum(boxes[i, 0], boxes[rest, 0])
        iy0 = np.maximum(boxes[i, 1], boxes[rest, 1])
        ix1 = np.minimum(boxes[i, 2], boxes[rest, 2])
        iy1 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.maximum(ix1 - ix0, 0) * np.maximum(iy1 - iy0, 0)
        union = areas[i] + areas[rest] - inter
        overlap = np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)
        order = rest[overlap <= iou]
    return kept


def probability_option(
    analyzer: str, options: Mapping[str, Any], key: str, default: float
) -> float:
    """``options[key]`` as a number in 0..1 (``default`` when absent), else ValidationFailed."""
    value = options.get(key, default)
    message = f"{analyzer} option {key!r} must be a number between 0 and 1"
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValidationFailed(message)
    try:
        number = float(value)
    except ValueError:
        raise ValidationFailed(message) from None
    if not math.isfinite(number) or not 0.0 <= number <= 1.0:
        raise ValidationFailed(message)
    return number
