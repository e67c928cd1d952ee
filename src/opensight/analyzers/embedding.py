"""Image embeddings (SigLIP): one L2-normalised vector per image, and text vectors for queries.

Per image the result is::

    {"vector": [0.0123, ...], "dim": 768, "model": "siglip-base-patch16-224",
     "normalized": true}

Image and text vectors live in the same space, so the cosine (a dot product of
these unit vectors) of an image and a text says how well the text describes the
image; collections use ``embed_text`` for text queries and ``embed_images`` for
image queries. Images go through the model's own preprocessing (224 x 224
bicubic, mean/std 0.5) and the runtime's dynamic batcher.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..images import DecodedImage
from ..runtime.models import siglip
from ._model_options import model_readiness
from .base import AnalysisContext, Analyzer, Readiness
from .registry import register

#: The model behind ``embedding`` (and ``tags``): vectors are only comparable within one model.
EMBEDDING_MODEL = siglip.DEFAULT_MODEL


def embed_text(texts: Sequence[str], model_id: str = EMBEDDING_MODEL) -> np.ndarray:
    """N x D float32 unit vectors of ``texts`` in the image embedding space.

    Raises ``ModelUnavailable`` (naming ``opensight models pull``) when the model is
    not installed.
    """
    return siglip.model(model_id).embed_texts(list(texts))


def embed_images(images: Sequence[np.ndarray], model_id: str = EMBEDDING_MODEL) -> np.ndarray:
    """N x D float32 unit vectors of H x W x 3 uint8 RGB images."""
    return siglip.model(model_id).embed_images(list(images))


class EmbeddingAnalyzer(Analyzer):
    name = "embedding"
    version = "1.0.0"
    description = "Image embedding (SigLIP ViT-B/16): a unit vector for search and similarity."
    license = "Apache-2.0"
    model = EMBEDDING_MODEL

    def readiness(self) -> Readiness:
        return model_readiness(EMBEDDING_MODEL)

    def analyze(
        self, images: Sequence[DecodedImage], context: AnalysisContext
    ) -> list[dict[str, Any]]:
        vectors = embed_images([image.rgb for image in images])
        return [
            {
                "vector": [float(v) for v in vector],
                "dim": int(vector.shape[0]),
                "model": EMBEDDING_MODEL,
                "normalized": True,
            }
            for vector in vectors
        ]


register(EmbeddingAnalyzer())
