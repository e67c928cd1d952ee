"""OWLv2 open-vocabulary detection on ONNX Runtime: class names in, boxes out.

Files as in ``Xenova/owlv2-base-patch16-ensemble`` (Google's OWLv2, Apache-2.0):
one graph ``onnx/model.onnx`` taking ``input_ids`` / ``attention_mask`` (one row per
query per image, CLIP tokens padded to 16) and ``pixel_values`` (960 x 960), giving
``logits`` (image x patch x query) and ``pred_boxes`` (centre format, relative to
the padded square). Preprocessing follows transformers' ``Owlv2ImageProcessor``:
rescale, pad to a square at the bottom/right, Gaussian anti-aliased resize,
CLIP normalisation. Post-processing is its ``post_process_object_detection``: per
patch the best query, sigmoid score, boxes scaled by the padded square's side --
plus an optional per-label NMS (OWLv2 predicts one box per patch, so the same
object is often found by neighbouring patches).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .. import store
from ..catalog import ModelFile, ModelSpec, register
from ..sessions import get_runtime
from . import Detection, TextEncoder, feeds, load_text_encoder, output_index, submit_chunked
from ._image_preprocess import ImageProcessorConfig, center_to_corners, owlv2_tensor, sigmoid

DEFAULT_MODEL = "owlv2-base-patch16-ensemble"

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
_DEFAULT_PREPROCESS = ImageProcessorConfig(
    height=960,
    width=960,
    resample=2,
    image_mean=OPENAI_CLIP_MEAN,
    image_std=OPENAI_CLIP_STD,
    do_pad=True,
)

register(
    ModelSpec(
        id=DEFAULT_MODEL,
        tasks=("detect",),
        repo="Xenova/owlv2-base-patch16-ensemble",
        revision="main",
        files=(
            ModelFile("config.json"),
            ModelFile("preprocessor_config.json"),
            ModelFile("tokenizer.json"),
            ModelFile("tokenizer_config.json"),
            ModelFile("special_tokens_map.json"),
            ModelFile("onnx/model.onnx"),
        ),
        license="Apache-2.0",
        backend="onnx",
        description=(
            "OWLv2 ViT-B/16 ensemble (Google; ONNX export by Xenova): open-vocabulary "
            "detection of caller-named classes at 960 px."
        ),
        # Unverified: the Hub lists onnx/model.onnx at about 614 MB; hashes not checked.
        size_mb=None,
        verified=False,
        config={
            "onnx_file": "onnx/model.onnx",
            "warmup_shapes": {"pixel_values": [1, 3, 960, 960]},
        },
    )
)


def post_process(
    logits: np.ndarray,
    pred_boxes: np.ndarray,
    sizes: Sequence[tuple[int, int]],
    threshold: float,
) -> list[list[Detection]]:
    """transformers' ``Owlv2ImageProcessor.post_process_object_detection`` in NumPy.

    Boxes are scaled by ``max(height, width)`` -- the image was padded to that square --
    and kept when the score is strictly above ``threshold``, in patch order.
    """
    results: list[list[Detection]] = []
    for b in range(logits.shape[0]):
        best = np.argmax(logits[b], axis=-1)
        scores = sigmoid(np.max(logits[b], axis=-1))
        side = float(max(sizes[b]))
        corners = center_to_corners(pred_boxes[b].astype(np.float64)) * side
        results.append(
            [
                Detection(int(best[p]), float(scores[p]), tuple(float(v) for v in corners[p]))  # type: ignore[arg-type]
                for p in np.flatnonzero(scores > threshold)
            ]
        )
    return results


def iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    x0 = np.maximum(box[0], others[:, 0])
    y0 = np.maximum(box[1], others[:, 1])
    x1 = np.minimum(box[2], others[:, 2])
    y1 = np.minimum(box[3], others[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    union = area + areas - inter
    out: np.ndarray = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    return out


def nms(detections: Sequence[Detection], iou_threshold: float) -> list[Detection]:
    """Greedy per-label non-maximum suppression; highest scores first."""
    ordered = sorted(detections, key=lambda d: -d.score)
    if iou_threshold >= 1.0 or len(ordered) < 2:
        return ordered
    kept: list[Detection] = []
    for label in dict.fromkeys(d.label_id for d in ordered):
        group = [d for d in ordered if d.label_id == label]
        boxes = np.array([d.box for d in group], dtype=np.float64)
        alive = np.ones(len(group), dtype=bool)
        for i in range(len(group)):
            if not alive[i]:
                continue
            kept.append(group[i])
            overlap = iou(boxes[i], boxes[i + 1 :])
            alive[i + 1 :] &= overlap <= iou_threshold
    return sorted(kept, key=lambda d: -d.score)


@dataclass(frozen=True)
class _Item:
    pixels: np.ndarray
    queries: tuple[str, ...]
    input_ids: np.ndarray
    attention_mask: np.ndarray


class Owlv2Model:
    """One installed OWLv2 model: images with the same query list are batched together."""

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

    def text_encoder(self) -> TextEncoder:
        return get_runtime().load(
            self.model_id, "tokenizer", lambda path: load_text_encoder(path, 16, "!")
        )

    def detect(
        self, rgbs: Sequence[np.ndarray], queries: Sequence[str], threshold: float
    ) -> list[list[Detection]]:
        """Raw post-processed detections per image (``label_id`` indexes ``queries``)."""
        store.require(self.model_id)
        if not rgbs or not queries:
            return [[] for _ in rgbs]
        cfg = self.preprocess_config()
        ids, mask = self.text_encoder().encode(list(queries))
        key = tuple(queries)
        items = [_Item(owlv2_tensor(rgb, cfg), key, ids, mask) for rgb in rgbs]
        batcher = get_runtime().batcher(self.model_id, "detect", self._run)
        raw = submit_chunked(batcher, items)
        sizes = [(int(rgb.shape[0]), int(rgb.shape[1])) for rgb in rgbs]
        return post_process(
            np.stack([r[0] for r in raw]), np.stack([r[1] for r in raw]), sizes, threshold
        )

    def _run(self, batch: list[_Item]) -> list[tuple[np.ndarray, np.ndarray]]:
        """One inference per distinct query list in the batch (the graph takes one list)."""
        session = get_runtime().onnx_session(self.model_id, self._onnx_file())
        logits_at = output_index(session, ["logits"])
        boxes_at = output_index(session, ["pred_boxes"])
        out: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(batch)
        groups: dict[tuple[str, ...], list[int]] = {}
        for index, item in enumerate(batch):
            groups.setdefault(item.queries, []).append(index)
        for members in groups.values():
            first = batch[members[0]]
            count = len(members)
            values = {
                "pixel_values": np.stack([batch[i].pixels for i in members]),
                "input_ids": np.tile(first.input_ids, (count, 1)),
                "attention_mask": np.tile(first.attention_mask, (count, 1)),
            }
            outputs = session.run(None, feeds(session, values))
            for row, index in enumerate(members):
                out[index] = (outputs[logits_at][row], outputs[boxes_at][row])
        return [o for o in out if o is not None]


_MODELS: dict[str, Owlv2Model] = {}
_MODELS_LOCK = threading.Lock()


def model(model_id: str = DEFAULT_MODEL) -> Owlv2Model:
    with _MODELS_LOCK:
        found = _MODELS.get(model_id)
        if found is None:
            found = _MODELS[model_id] = Owlv2Model(model_id)
        return found
