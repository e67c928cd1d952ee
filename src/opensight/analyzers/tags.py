"""Zero-shot tags (SigLIP): a built-in vocabulary and/or the caller's own tag definitions.

Per image the result is::

    {"tags": [{"name": "dog", "confidence": 0.83}, {"name": "grass", "confidence": 0.41}],
     "vocabulary": "everyday", "model": "siglip-base-patch16-224"}

Every label is scored on its own -- SigLIP's pairwise sigmoid,
``sigmoid(scale * cos(image, text) + bias)`` with the checkpoint's learned scale
and bias -- so confidences do not compete and need not add up to 1. A built-in
label is embedded as the prompt ``"This is a photo of <label>."``; the text
vectors of a vocabulary are computed once per model (cached in memory and on
disk in the model directory).

Options (``context.options_for("tags")``):

* ``vocabulary`` -- ``"default"`` (= ``"everyday"``, about 1,300 everyday labels),
  ``"fashion"`` (garments, footwear, materials, patterns, styles), ``"products"``
  (shop categories) or ``"none"``. Default: ``"default"``, or ``"none"`` when
  ``tags`` is given (Cloudinary-style custom tagging returns only the caller's tags).
* ``tags`` -- the caller's tags: ``[{"name": "golden retriever", "description": "a
  photo of a golden retriever dog"}, ...]`` or plain names (at most 100). The
  description, when given, is what is scored (as written); the name is returned.
* ``min_confidence`` (0..1, default 0.1) and ``limit`` (1..1000, default 20):
  tags below the confidence are dropped, the best ``limit`` are kept, highest first.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ValidationFailed
from ..images import DecodedImage
from ..runtime import store
from ..runtime.models import VOCABULARIES, VOCABULARY_ALIASES, siglip, vocabulary
from ..runtime.sessions import get_runtime
from ._model_options import integer, model_readiness, number
from .base import AnalysisContext, Analyzer, Readiness
from .registry import register

log = logging.getLogger("opensight.analyzers")

PROMPT = "This is a photo of {}."
MAX_CUSTOM_TAGS = 100
TAGS_MODEL = siglip.DEFAULT_MODEL


class TagsAnalyzer(Analyzer):
    name = "tags"
    version = "1.0.0"
    description = "Zero-shot tags (SigLIP) from a built-in vocabulary or caller-defined tags."
    license = "Apache-2.0"
    model = TAGS_MODEL

    def readiness(self) -> Readiness:
        return model_readiness(TAGS_MODEL)

    def analyze(
        self, images: Sequence[DecodedImage], context: AnalysisContext
    ) -> list[dict[str, Any]]:
        options = context.options_for(self.name)
        custom = parse_custom_tags(options.get("tags"))
        vocab_name = _vocabulary_option(options, has_custom=bool(custom))
        min_confidence = number(options, "min_confidence", 0.1, 0.0, 1.0, self.name)
        limit = integer(options, "limit", 20, 1, 1000, self.name)

        encoder = siglip.model(TAGS_MODEL)
        image_vectors = encoder.embed_images([image.rgb for image in images])
        params = encoder.logit_params()
        names: list[str] = []
        blocks: list[np.ndarray] = []
        if vocab_name is not None:
            names += vocabulary(vocab_name)
            blocks.append(vocabulary_vectors(vocab_name))
        if custom:
            names += [name for name, _ in custom]
            blocks.append(text_vectors([prompt for _, prompt in custom]))
        results = []
        for image_vector in image_vectors:
            tags: list[dict[str, Any]] = []
            if blocks:
                probs = params.probabilities(np.concatenate(blocks) @ image_vector)
                best: dict[str, float] = {}
                for name, prob in zip(names, probs, strict=True):
                    best[name] = max(best.get(name, 0.0), float(prob))
                ranked = sorted(best.items(), key=lambda item: (-item[1], item[0]))
                tags = [
                    {"name": name, "confidence": round(prob, 4)}
                    for name, prob in ranked[:limit]
                    if prob >= min_confidence
                ]
            results.append({"tags": tags, "vocabulary": vocab_name, "model": TAGS_MODEL})
        return results


def _vocabulary_option(options: Mapping[str, Any], has_custom: bool) -> str | None:
    raw = options.get("vocabulary")
    if raw is None or raw == "":
        return None if has_custom else "everyday"
    if not isinstance(raw, str):
        raise ValidationFailed("tags option 'vocabulary' must be a string")
    name = raw.strip().lower()
    if name == "none":
        if not has_custom:
            raise ValidationFailed("tags option 'vocabulary' is 'none' but no 'tags' were given")
        return None
    name = VOCABULARY_ALIASES.get(name, name)
    if name not in VOCABULARIES:
        known = ", ".join(["default", *VOCABULARIES, "none"])
        raise ValidationFailed(f"tags option 'vocabulary' must be one of {known}")
    return name


def parse_custom_tags(raw: Any) -> list[tuple[str, str]]:
    """(name, prompt) pairs from ``[{"name", "description"}]`` or ``["name", ...]``."""
    if raw is None:
        return []
    if not isinstance(raw, (list, tuple)):
        raise ValidationFailed("tags option 'tags' must be a list of {name, description}")
    if len(raw) > MAX_CUSTOM_TAGS:
        raise ValidationFailed(f"tags option 'tags' takes at most {MAX_CUSTOM_TAGS} tags")
    out: list[tuple[str, str]] = []
    for item in raw:
        name: Any
        description: Any
        if isinstance(item, str):
            name, description = item, None
        elif isinstance(item, Mapping):
            name, description = item.get("name"), item.get("description")
        else:
            raise ValidationFailed("each custom tag must be a name or {name, description}")
        if not isinstance(name, str) or not name.strip() or len(name) > 100:
            raise ValidationFailed("each custom tag needs a 'name' of 1..100 characters")
        if description is not None and (
            not isinstance(description, str) or not description.strip() or len(description) > 500
        ):
            raise ValidationFailed("a custom tag 'description' must be 1..500 characters")
        name = " ".join(name.split())
        prompt = " ".join(description.split()) if description else PROMPT.format(name)
        out.append((name, prompt))
    return out


# ------------------------------------------------------------------ text vectors
def vocabulary_vectors(name: str, model_id: str = TAGS_MODEL) -> np.ndarray:
    """L x D prompt vectors of a built-in vocabulary: memory, then disk, then the model."""
    return get_runtime().load(
        model_id, f"vocabulary:{name}", lambda path: _vocabulary_from_disk(path, name, model_id)
    )


def _vocabulary_from_disk(path: Path, name: str, model_id: str) -> np.ndarray:
    prompts = [PROMPT.format(label) for label in vocabulary(name)]
    digest = hashlib.sha256()
    digest.update("\n".join(prompts).encode())
    digest.update(store.manifest_path(model_id).read_bytes())  # a re-pull invalidates it
    cache = path / ".cache" / f"vocabulary-{name}-{digest.hexdigest()[:16]}.npy"
    try:
        cached = np.load(cache)
        if cached.shape[0] == len(prompts):
            return cached
    except (OSError, ValueError):
        pass
    vectors = siglip.model(model_id).embed_texts(prompts)
    try:
        cache.parent.mkdir(exist_ok=True)
        np.save(cache, vectors)
    except OSError as exc:  # read-only model dir: recompute next start
        log.info("could not cache vocabulary vectors: %s", exc)
    return vectors


_TEXT_CACHE: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
_TEXT_CACHE_LOCK = threading.Lock()
_TEXT_CACHE_SIZE = 4096


def text_vectors(prompts: Sequence[str], model_id: str = TAGS_MODEL) -> np.ndarray:
    """Vectors of caller prompts, with a bounded LRU (callers resend the same tag lists)."""
    found: dict[str, np.ndarray] = {}
    with _TEXT_CACHE_LOCK:
        for prompt in prompts:
            vector = _TEXT_CACHE.get((model_id, prompt))
            if vector is not None:
                _TEXT_CACHE.move_to_end((model_id, prompt))
                found[prompt] = vector
    missing = [p for p in dict.fromkeys(prompts) if p not in found]
    if missing:
        fresh = siglip.model(model_id).embed_texts(missing)
        with _TEXT_CACHE_LOCK:
            for prompt, vector in zip(missing, fresh, strict=True):
                found[prompt] = vector
                _TEXT_CACHE[(model_id, prompt)] = vector
            while len(_TEXT_CACHE) > _TEXT_CACHE_SIZE:
                _TEXT_CACHE.popitem(last=False)
    return np.stack([found[p] for p in prompts])


register(TagsAnalyzer())
