"""Model families: each module registers its ``ModelSpec``s with the catalog on import.

The helpers here are what every ONNX family needs to read the files of an
installed model (as laid out in its Hugging Face repo): JSON configs, the
``tokenizers`` tokenizer, and a session's outputs by name.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import onnxruntime
    from tokenizers import Tokenizer

    from ..batcher import Batcher


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object file, or ``{}`` when it is absent (optional configs)."""
    try:
        value = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return {}
    return value if isinstance(value, dict) else {}


def _token_text(value: Any) -> str | None:
    """Special tokens are stored as a string or as ``{"content": ...}``."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and isinstance(value.get("content"), str):
        return str(value["content"])
    return None


@dataclass(frozen=True)
class Detection:
    """One box from a detector family's post-processing."""

    label_id: int
    """Index into the model's labels (RT-DETR) or the caller's query list (OWLv2)."""
    score: float
    box: tuple[float, float, float, float]
    """x0, y0, x1, y1 in pixels of the original image (not clipped)."""


@dataclass(frozen=True)
class TextEncoder:
    """A ``tokenizers`` tokenizer that pads and truncates to the model's fixed text length."""

    tokenizer: Tokenizer
    max_length: int
    pad_id: int

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(input_ids, attention_mask), both N x max_length int64."""
        encodings = self.tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        return ids.reshape(len(texts), self.max_length), mask.reshape(len(texts), self.max_length)


def load_text_encoder(directory: Path, default_max_length: int, default_pad: str) -> TextEncoder:
    """``tokenizer.json`` padded to ``max_length`` with the pad token the repo names.

    ``max_length`` comes from ``tokenizer_config.json`` (``model_max_length``), else
    the text tower's ``max_position_embeddings`` in ``config.json``, else the default;
    the pad token from ``tokenizer_config.json`` or ``special_tokens_map.json``.
    Padding to the full length is what the models were trained with (the SigLIP text
    tower pools the last position, so it is not optional there).
    """
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
    tok_config = read_json(directory / "tokenizer_config.json")
    specials = read_json(directory / "special_tokens_map.json")
    text_config = read_json(directory / "config.json").get("text_config") or {}
    max_length = default_max_length
    declared = tok_config.get("model_max_length")
    if isinstance(declared, int) and 0 < declared <= 4096:
        max_length = declared
    elif isinstance(text_config.get("max_position_embeddings"), int):
        max_length = int(text_config["max_position_embeddings"])
    pad = (
        _token_text(tok_config.get("pad_token"))
        or _token_text(specials.get("pad_token"))
        or default_pad
    )
    pad_id = tokenizer.token_to_id(pad)
    if pad_id is None:
        raise ValueError(f"{directory}: pad token {pad!r} is not in tokenizer.json")
    tokenizer.enable_truncation(max_length=max_length)
    tokenizer.enable_padding(length=max_length, pad_id=pad_id, pad_token=pad)
    return TextEncoder(tokenizer, max_length, pad_id)


def output_index(session: onnxruntime.InferenceSession, preferred: Sequence[str]) -> int:
    """The index of the first output whose name is in ``preferred`` (else the last output)."""
    names = [o.name for o in session.get_outputs()]
    for name in preferred:
        if name in names:
            return names.index(name)
    return len(names) - 1


def feeds(
    session: onnxruntime.InferenceSession, values: Mapping[str, np.ndarray]
) -> dict[str, Any]:
    """Only the inputs the graph declares (exports differ in optional inputs such as masks)."""
    wanted = {i.name for i in session.get_inputs()}
    missing = wanted - set(values)
    if missing:
        raise ValueError(f"model input(s) {sorted(missing)} cannot be provided")
    return {name: value for name, value in values.items() if name in wanted}


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    out: np.ndarray = vectors / np.maximum(norms, 1e-12)
    return out


#: Label lists shipped in ``vocab/`` (one label per line, ``#`` comments); "default" = everyday.
VOCABULARIES: tuple[str, ...] = ("everyday", "fashion", "products")
VOCABULARY_ALIASES = {"default": "everyday"}


def vocabulary(name: str) -> tuple[str, ...]:
    """The labels of a built-in vocabulary (``KeyError`` for an unknown name)."""
    name = VOCABULARY_ALIASES.get(name, name)
    if name not in VOCABULARIES:
        raise KeyError(name)
    return _vocabulary_file(name)


@functools.cache
def _vocabulary_file(name: str) -> tuple[str, ...]:
    text = (resources.files(__package__) / "vocab" / f"{name}.txt").read_text("utf-8")
    lines = (line.strip() for line in text.splitlines())
    return tuple(dict.fromkeys(line for line in lines if line and not line.startswith("#")))


#: Items handed to a batcher per call: a request larger than the batcher's queue is only
#: admitted into an empty queue, so long lists (a 1,300-label vocabulary) go in chunks.
SUBMIT_CHUNK = 64


def submit_chunked(batcher: Batcher[Any, Any], items: Sequence[Any]) -> list[Any]:
    """``batcher.submit_many`` in chunks of ``SUBMIT_CHUNK``, results in input order."""
    out: list[Any] = []
    for start in range(0, len(items), SUBMIT_CHUNK):
        out.extend(batcher.submit_many(items[start : start + SUBMIT_CHUNK]))
    return out
