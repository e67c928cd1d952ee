"""SigLIP image-text embeddings on ONNX Runtime (image tower and text tower as two graphs).

Files as in ``Xenova/siglip-base-patch16-224``: ``onnx/vision_model.onnx``
(``pixel_values`` -> ``pooler_output``), ``onnx/text_model.onnx`` (``input_ids`` ->
``pooler_output``), ``tokenizer.json`` and the JSON configs. Images are
preprocessed from ``preprocessor_config.json`` in NumPy/Pillow; texts are
tokenized with ``tokenizers`` and padded to the model's fixed length (64), as
SigLIP was trained. Both towers run behind the runtime's dynamic batcher.

Zero-shot scores need the model's learned ``logit_scale`` and ``logit_bias``,
which live in neither tower's graph. They are read from
``siglip_logit_params.json`` in the model directory (the tiny test installer
writes it) or fetched once from the original checkpoint's safetensors header
(two scalars, read by HTTP range requests through ``huggingface_hub``) and
cached there.
"""

from __future__ import annotations

import json
import logging
import struct
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ...errors import ModelUnavailable
from .. import store
from ..catalog import ModelFile, ModelSpec, register
from ..sessions import get_runtime
from . import (
    TextEncoder,
    feeds,
    l2_normalize,
    load_text_encoder,
    output_index,
    read_json,
    submit_chunked,
)
from ._image_preprocess import ImageProcessorConfig, resized_tensor

log = logging.getLogger("opensight.runtime")

DEFAULT_MODEL = "siglip-base-patch16-224"
LOGIT_PARAMS_FILE = "siglip_logit_params.json"

_DEFAULT_PREPROCESS = ImageProcessorConfig(
    height=224, width=224, resample=3, image_mean=(0.5, 0.5, 0.5), image_std=(0.5, 0.5, 0.5)
)

register(
    ModelSpec(
        id=DEFAULT_MODEL,
        tasks=("embedding", "tags"),
        repo="Xenova/siglip-base-patch16-224",
        revision="main",
        files=(
            ModelFile("config.json"),
            ModelFile("preprocessor_config.json"),
            ModelFile("tokenizer.json"),
            ModelFile("tokenizer_config.json"),
            ModelFile("special_tokens_map.json"),
            ModelFile("onnx/vision_model.onnx"),
            ModelFile("onnx/text_model.onnx"),
        ),
        license="Apache-2.0",
        backend="onnx",
        description=(
            "SigLIP ViT-B/16 at 224 px (Google; ONNX export by Xenova): 768-d image and "
            "text embeddings for search, duplicates and zero-shot tags."
        ),
        # Hashes and sizes unverified: the Hub's listing shows about 372 MB (vision) +
        # 441 MB (text) + 2.4 MB (tokenizer); not checked against the files.
        size_mb=None,
        verified=False,
        config={
            "vision_file": "onnx/vision_model.onnx",
            "text_file": "onnx/text_model.onnx",
            "embedding_outputs": ["pooler_output", "image_embeds", "text_embeds"],
            "logit_params_source": {
                "repo": "google/siglip-base-patch16-224",
                "file": "model.safetensors",
            },
            "warmup_shapes": {"pixel_values": [1, 3, 224, 224]},
        },
    )
)


@dataclass(frozen=True)
class LogitParams:
    """SigLIP's pairwise sigmoid: ``p = sigmoid(scale * cos(image, text) + bias)``."""

    scale: float
    """``exp(logit_scale)`` of the checkpoint."""
    bias: float

    def probabilities(self, cosines: np.ndarray) -> np.ndarray:
        logits = self.scale * cosines.astype(np.float64) + self.bias
        out: np.ndarray = 1.0 / (1.0 + np.exp(-logits))
        return out


class SiglipModel:
    """One installed SigLIP model: batched image and text embeddings (L2-normalised)."""

    def __init__(self, model_id: str = DEFAULT_MODEL) -> None:
        self.model_id = model_id

    # ------------------------------------------------------------------ files
    def _spec_config(self) -> dict[str, Any]:
        from ..catalog import get

        try:
            return dict(get(self.model_id).config)
        except Exception:  # tiny test models may not have a spec of their own
            return {}

    def _file(self, key: str, default: str) -> str:
        return str(self._spec_config().get(key, default))

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
            self.model_id, "tokenizer", lambda path: load_text_encoder(path, 64, "</s>")
        )

    # ------------------------------------------------------------------ images
    def embed_images(self, rgbs: Sequence[np.ndarray]) -> np.ndarray:
        """N x D float32 unit vectors, one per H x W x 3 uint8 image."""
        store.require(self.model_id)
        if not rgbs:
            return np.zeros((0, 0), dtype=np.float32)
        cfg = self.preprocess_config()
        pixels = [resized_tensor(rgb, cfg) for rgb in rgbs]
        batcher = get_runtime().batcher(self.model_id, "vision", self._run_vision)
        return np.stack(submit_chunked(batcher, pixels))

    def _run_vision(self, batch: list[np.ndarray]) -> list[np.ndarray]:
        session = get_runtime().onnx_session(
            self.model_id, self._file("vision_file", "onnx/vision_model.onnx")
        )
        index = output_index(session, ["pooler_output", "image_embeds"])
        out = session.run(None, feeds(session, {"pixel_values": np.stack(batch)}))[index]
        return list(l2_normalize(out))

    # ------------------------------------------------------------------- texts
    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """N x D float32 unit vectors, one per text (padded/truncated to the model length)."""
        store.require(self.model_id)
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        ids, mask = self.text_encoder().encode(list(texts))
        batcher = get_runtime().batcher(self.model_id, "text", self._run_text)
        return np.stack(submit_chunked(batcher, list(zip(ids, mask, strict=True))))

    def _run_text(self, batch: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
        session = get_runtime().onnx_session(
            self.model_id, self._file("text_file", "onnx/text_model.onnx")
        )
        index = output_index(session, ["pooler_output", "text_embeds"])
        ids = np.stack([ids for ids, _ in batch])
        # SigLIP attends to the padding too (its tokenizer returns no mask and the tower
        # pools the last position): an export that declares a mask gets all ones.
        values = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
        out = session.run(None, feeds(session, values))[index]
        return list(l2_normalize(out))

    # ------------------------------------------------------------ zero-shot
    def logit_params(self) -> LogitParams:
        """The checkpoint's ``exp(logit_scale)`` and ``logit_bias`` (see the module doc)."""
        return get_runtime().load(self.model_id, "logit_params", self._load_logit_params)

    def _load_logit_params(self, path: Path) -> LogitParams:
        cached = read_json(path / LOGIT_PARAMS_FILE)
        if "logit_scale" in cached and "logit_bias" in cached:
            return LogitParams(float(np.exp(cached["logit_scale"])), float(cached["logit_bias"]))
        source = self._spec_config().get("logit_params_source")
        if not source or store.offline():
            raise ModelUnavailable(
                self.model_id,
                f"model {self.model_id!r} lacks {LOGIT_PARAMS_FILE} (its zero-shot scale and "
                "bias); run `opensight models pull "
                f"{self.model_id}` on a machine with network access",
            )
        try:
            values = fetch_safetensors_scalars(
                source["repo"], source["file"], ("logit_scale", "logit_bias")
            )
        except Exception as exc:
            raise ModelUnavailable(
                self.model_id,
                f"could not read logit_scale/logit_bias of {source['repo']}: {exc}; run "
                f"`opensight models pull {self.model_id}` when the Hub is reachable",
            ) from exc
        try:
            (path / LOGIT_PARAMS_FILE).write_text(json.dumps(values), "utf-8")
        except OSError as exc:  # a read-only model dir still works, it just asks again
            log.info("could not cache %s: %s", LOGIT_PARAMS_FILE, exc)
        return LogitParams(float(np.exp(values["logit_scale"])), float(values["logit_bias"]))


def fetch_safetensors_scalars(repo: str, filename: str, names: Sequence[str]) -> dict[str, float]:
    """Read a few float32 scalars of a Hub safetensors file without downloading all of it
    (``HfFileSystem`` files are read with HTTP range requests)."""
    from huggingface_hub import HfFileSystem

    with HfFileSystem().open(f"{repo}/{filename}", "rb") as handle:
        return read_safetensors_scalars(handle, names)


def read_safetensors_scalars(handle: BinaryIO, names: Sequence[str]) -> dict[str, float]:
    """Scalars from a seekable safetensors file: an 8-byte little-endian header length, a
    JSON header with each tensor's dtype and byte offsets, then the data."""
    (length,) = struct.unpack("<Q", handle.read(8))
    if length > 100_000_000:
        raise ValueError("not a safetensors file (header too large)")
    header = json.loads(handle.read(length))
    values: dict[str, float] = {}
    for name in names:
        entry = header[name]
        if entry.get("dtype") != "F32":
            raise ValueError(f"{name} is {entry.get('dtype')}, expected F32")
        start, end = (int(v) for v in entry["data_offsets"])
        if end - start != 4:
            raise ValueError(f"{name} is not a scalar")
        handle.seek(8 + length + start)
        values[name] = float(np.frombuffer(handle.read(4), "<f4")[0])
    return values


_MODELS: dict[str, SiglipModel] = {}
_MODELS_LOCK = threading.Lock()


def model(model_id: str = DEFAULT_MODEL) -> SiglipModel:
    """The process-wide ``SiglipModel`` of ``model_id`` (its batchers are shared)."""
    with _MODELS_LOCK:
        found = _MODELS.get(model_id)
        if found is None:
            found = _MODELS[model_id] = SiglipModel(model_id)
        return found
