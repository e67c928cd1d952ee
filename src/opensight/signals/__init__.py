"""What collections compare images by, computed from pixels only (no DB, no HTTP).

* :mod:`.hashes` -- exact hashes (bytes and decoded pixels) and perceptual hashes;
* :mod:`.descriptors` -- a global descriptor for *similar* search;
* :mod:`.local` -- local features and geometric verification for *near-duplicate*.

:func:`compute_signals` computes all three for one decoded image.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..images import DecodedImage
from . import local
from .descriptors import Embedder, default_embedder
from .hashes import ImageHashes, compute_hashes, to_gray

#: Keypoints kept for an image stored in a collection / for a query image.
STORED_FEATURES = 1000
QUERY_FEATURES = 500


@dataclass
class Signals:
    """Everything collections keep about one image."""

    hashes: ImageHashes
    descriptor: np.ndarray
    """L2-normalised float32 vector of ``embedder``'s space."""
    local: local.LocalFeatures
    width: int = 0
    height: int = 0
    extra: dict[str, object] = field(default_factory=dict)


def compute_signals(
    image: DecodedImage,
    embedder: Embedder | None = None,
    features: int = STORED_FEATURES,
) -> Signals:
    rgb = image.rgb
    embedder = embedder or default_embedder()
    return Signals(
        hashes=compute_hashes(rgb, image.sha256),
        descriptor=embedder.embed(rgb),
        local=local.extract(to_gray(rgb), max_features=features),
        width=image.width,
        height=image.height,
    )


__all__ = [
    "QUERY_FEATURES",
    "STORED_FEATURES",
    "Signals",
    "compute_signals",
]
