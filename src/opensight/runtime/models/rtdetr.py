"""RT-DETR COCO object detection on ONNX Runtime.

Files as in ``onnx-community/rtdetr_r50vd`` (an export of ``PekingU/rtdetr_r50vd``,
Apache-2.0): ``onnx/model.onnx`` (``pixel_values`` -> ``logits``, ``pred_boxes``),
``config.json`` (``id2label``: the 80 COCO names) and ``preprocessor_config.json``
(plain 640 x 640 bilinear resize, rescale, no normalisation).

Post-processing is transformers' ``RTDetrImageProcessor.post_process_object_detection``
(focal-loss variant) in NumPy: sigmoid over every (query, class) logit, the top
``num_queries`` pairs, boxes from centre format to corners in the original image's
pixels, then the score threshold. RT-DETR needs no NMS.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import store
from ..catalog import ModelFile, ModelSpec, register
from ..sessions import get_runtime
from . import Detection, feeds, output_index, read_json, submit_chunked
from ._image_preprocess import ImageProcessorConfig, center_to_corners, resized_tensor, sigmoid

DEFAULT_MODEL = "rtdetr-r50vd-coco"

#: The 80 COCO detection classes in the order of RT-DETR's ``id2label`` (0..79).
COCO_LABELS: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat",
    "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack",
    "umbrella", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball",
    "kite", "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket",
    "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair",
    "couch", "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse",
    "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink",
    "refrigerator", "book", "clock", "vase", "scissors", "teddy bear", "hair drier",
    "toothbrush",
)  # fmt: skip

_DEFAULT_PREPROCESS = ImageProcessorConfig(height=640, width=640, resample=2, do_normalize=False)

register(
    ModelSpec(
        id=DEFAULT_MODEL,
        tasks=("objects",),
        repo="onnx-community/rtdetr_r50vd",
        revision="main",
        files=(
            ModelFile("config.json"),
            ModelFile("preprocessor_config.json"),
            ModelFile("onnx/model.onnx"),
        ),
        license="Apache-2.0",
        backend="onnx",
        description=(
            "RT-DETR ResNet-50vd (Baidu / PekingU, COCO 2017, 80 classes; ONNX export by "
            "onnx-community): real-time end-to-end detector, no NMS."
        ),
        # Unverified: the Hub lists onnx/model.onnx at about 175 MB; hashes not checked.
        size_mb=None,
        verified=False,
        config={
            "onnx_file": "onnx/model.onnx",
            "warmup_shapes": {"pixel_values": [1, 3, 640, 640]},
        },
    )
)


def post_process(
    logits: np.ndarray,
    pred_boxes: np.ndarray,
    sizes: Sequence[tuple[int, int]],
    threshold: float,
) -> list[list[Detection]]:
    """transformers' RT-DETR post-processing (``use_focal_loss=True``), batch of images.

    ``sizes`` are (height, width) of the original images; kept detections have a
    score strictly above ``threshold``, highest first.
    """
    batch, queries, classes = logits.shape
    scores = sigmoid(logits.reshape(batch, queries * classes))
    results: list[list[Detection]] = []
    for b in range(batch):
        order = np.argsort(-scores[b], kind="stable")[:queries]
        height, width = sizes[b]
        corners = center_to_corners(pred_boxes[b].astype(np.float64)) * np.array(
            [width, height, width, height], dtype=np.float64
        )
        found = []
        for flat in order:
            score = float(scores[b, flat])
            if not score > threshold:
                break
            query, label = divmod(int(flat), classes)
            x0, y0, x1, y1 = (float(v) for v in corners[query])
            found.append(Detection(label, score, (x0, y0, x1, y1)))
        results.append(found)
    return results


class RTDetrModel:
    """One installed RT-DETR model: batched detection with COCO (or config) label names."""

    def __init__(self, model_id: str = DEFAULT_MODEL) -> None:
        self.model_id = model_id

    def _onnx_file(self) -> str:
        from ..catalog import get

        try:
            return str(get(self.model_id).config.get("onnx_file", "onnx/model.onnx"))
        except Exception:
            return "onnx/model.onnx"

    def preprocess_config(self) -> ImageProcessorConfig:
        return get_runtime().load(
            self.model_id,
            "preprocess",
            lambda path: ImageProcessorConfig.load(
                path / "preprocessor_config.json", _DEFAULT_PREPROCESS
            ),
        )

    def labels(self) -> tuple[str, ...]:
        """``id2label`` of config.json (ordered by id), else the COCO names."""

        def load(path: Any) -> tuple[str, ...]:
            raw = read_json(path / "config.json").get("id2label") or {}
            if not raw:
                return COCO_LABELS
            size = max(int(k) for k in raw) + 1
            names = [f"class_{i}" for i in range(size)]
            for key, value in raw.items():
                names[int(key)] = str(value)
            return tuple(names)

        return get_runtime().load(self.model_id, "labels", load)

    def detect(self, rgbs: Sequence[np.ndarray], threshold: float) -> list[list[Detection]]:
        store.require(self.model_id)
        if not rgbs:
            return []
        cfg = self.preprocess_config()
        pixels = [resized_tensor(rgb, cfg) for rgb in rgbs]
        batcher = get_runtime().batcher(self.model_id, "detect", self._run)
        raw = submit_chunked(batcher, pixels)
        logits = np.stack([r[0] for r in raw])
        boxes = np.stack([r[1] for r in raw])
        sizes = [(int(rgb.shape[0]), int(rgb.shape[1])) for rgb in rgbs]
        return post_process(logits, boxes, sizes, threshold)

    def _run(self, batch: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        session = get_runtime().onnx_session(self.model_id, self._onnx_file())
        outputs = session.run(None, feeds(session, {"pixel_values": np.stack(batch)}))
        logits = outputs[output_index(session, ["logits"])]
        boxes = outputs[output_index(session, ["pred_boxes"])]
        return [(logits[i], boxes[i]) for i in range(len(batch))]


_MODELS: dict[str, RTDetrModel] = {}
_MODELS_LOCK = threading.Lock()


def model(model_id: str = DEFAULT_MODEL) -> RTDetrModel:
    with _MODELS_LOCK:
        found = _MODELS.get(model_id)
        if found is None:
            found = _MODELS[model_id] = RTDetrModel(model_id)
        return found
