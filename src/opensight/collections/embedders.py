"""Which vector space ranks a collection's *similar* results, chosen once at creation.

* ``classic-v1`` -- the classical global descriptor (:mod:`opensight.signals.descriptors`):
  no model, works offline; "looks alike" means same colours, tones and layout.
* a neural model id (``siglip-base-patch16-224``) -- the ``embedding`` analyzer's
  image vectors (the model runtime, its preprocessing and its batcher); "looks
  alike" means "shows the same kind of thing", and text queries work too.

``auto`` (the default) takes the neural model when it is installed at creation
time, else the classical descriptor. The choice is stored with the collection
(``embedder``, ``dim``) and never changes: vectors of different spaces never mix,
and a neural collection whose model was removed answers ``ModelUnavailable``
rather than silently searching another space.

Every collection -- neural or not -- also keeps the classical descriptor, the
hashes and the local features: exact and near-duplicate decisions come from those
only, so ``match`` means the same in every collection. Only the *similar* score
depends on the embedder, through its :class:`Calibration`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..errors import ModelUnavailable, ValidationFailed
from ..signals.descriptors import ClassicalEmbedder
from .matching import SIMILAR_COSINE

AUTO = "auto"
CLASSICAL = ClassicalEmbedder.name
CLASSICAL_ALIASES = frozenset({"classical", CLASSICAL})
#: The neural model ``auto`` picks (the ``embedding`` analyzer's).
DEFAULT_NEURAL_MODEL = "siglip-base-patch16-224"
#: The task a model must serve to be a collection embedder.
EMBEDDING_TASK = "embedding"


@dataclass(frozen=True)
class Calibration:
    """Cosine -> *similar* score on the shared scale: ``threshold`` scores 0.50 and
    ``full`` 0.90 (capped just below, so a similar image never outranks a verified
    near-duplicate); below ``threshold`` the score falls under 0.50 and is not returned."""

    threshold: float
    full: float = 1.0
    verified: bool = False
    """Whether the threshold was measured (see docs/collections.md)."""


#: Image-to-image calibration per embedder. ``classic-v1``: measured (99th percentile
#: of unrelated photos' cosine = 0.79). SigLIP: chosen, NOT measured here (no real
#: weights on the build machine) -- unrelated photos are expected well below 0.70,
#: pictures of the same kind of thing above it.
IMAGE_CALIBRATION: dict[str, Calibration] = {
    CLASSICAL: Calibration(SIMILAR_COSINE, verified=True),
    DEFAULT_NEURAL_MODEL: Calibration(0.70),
}
#: Text-to-image calibration (SigLIP's text and image vectors are far apart: a
#: fitting caption gives a cosine of roughly 0.10 to 0.20). Chosen, not measured.
TEXT_CALIBRATION: dict[str, Calibration] = {DEFAULT_NEURAL_MODEL: Calibration(0.10, 0.30)}
_FALLBACK_IMAGE = Calibration(0.70)
_FALLBACK_TEXT = Calibration(0.10, 0.30)


class CollectionEmbedder(Protocol):
    name: str
    dim: int
    neural: bool

    def require(self) -> None:
        """Raise ``ModelUnavailable`` when the embedder cannot run now."""

    def embed(self, rgb: np.ndarray) -> np.ndarray: ...

    def embed_text(self, text: str) -> np.ndarray: ...

    @property
    def calibration(self) -> Calibration: ...

    @property
    def text_calibration(self) -> Calibration: ...


class Classical:
    """The classical descriptor as a collection embedder (always available)."""

    name = CLASSICAL
    dim = ClassicalEmbedder.dim
    neural = False

    def require(self) -> None:
        return None

    def embed(self, rgb: np.ndarray) -> np.ndarray:
        return ClassicalEmbedder().embed(rgb)

    def embed_text(self, text: str) -> np.ndarray:
        raise ValidationFailed(
            "text search needs a neural collection (created with embedder auto while the "
            f"embedding model is installed, or {DEFAULT_NEURAL_MODEL!r}); this one is classical"
        )

    @property
    def calibration(self) -> Calibration:
        return IMAGE_CALIBRATION[CLASSICAL]

    @property
    def text_calibration(self) -> Calibration:
        raise AssertionError("classical collections have no text calibration")


@dataclass
class Neural:
    """A runtime embedding model: vectors come from the ``embedding`` analyzer's
    public functions (its preprocessing, the runtime's batcher)."""

    name: str
    dim: int
    neural: bool = True

    def require(self) -> None:
        from ..runtime import store

        store.require(self.name)

    def _check(self, vectors: np.ndarray) -> np.ndarray:
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            got = vectors.shape[-1] if vectors.ndim else 0
            raise ModelUnavailable(
                self.name,
                f"model {self.name!r} now gives {got}-d vectors but this collection was built "
                f"with {self.dim}-d ones; reinstall the model it was built with "
                f"(`opensight models pull {self.name}`) or create a new collection",
            )
        return np.asarray(vectors[0], dtype=np.float32)

    def embed(self, rgb: np.ndarray) -> np.ndarray:
        from ..analyzers.embedding import embed_images

        return self._check(embed_images([rgb], self.name))

    def embed_text(self, text: str) -> np.ndarray:
        from ..analyzers.embedding import embed_text

        return self._check(embed_text([text], self.name))

    @property
    def calibration(self) -> Calibration:
        return IMAGE_CALIBRATION.get(self.name, _FALLBACK_IMAGE)

    @property
    def text_calibration(self) -> Calibration:
        return TEXT_CALIBRATION.get(self.name, _FALLBACK_TEXT)


def _embedding_models() -> list[str]:
    from ..runtime import catalog

    return [spec.id for spec in catalog.all_specs() if EMBEDDING_TASK in spec.tasks]


def _probe_dim(model_id: str) -> int:
    """The model's vector size, from one embedding of a small grey picture."""
    from ..analyzers.embedding import embed_images

    vectors = embed_images([np.full((32, 32, 3), 128, np.uint8)], model_id)
    return int(vectors.shape[1])


def choose(choice: str | None) -> CollectionEmbedder:
    """The embedder of a new collection: ``auto`` (None), ``classical`` or a model id.

    A model id that is not an embedding model is a ``ValidationFailed``; one that is
    not installed a ``ModelUnavailable`` naming ``opensight models pull``.
    """
    from ..runtime import store

    choice = AUTO if choice is None else choice
    if not isinstance(choice, str):
        raise ValidationFailed("embedder must be a string: auto, classical or a model id")
    if choice in CLASSICAL_ALIASES:
        return Classical()
    if choice == AUTO:
        if not store.is_installed(DEFAULT_NEURAL_MODEL):
            return Classical()
        choice = DEFAULT_NEURAL_MODEL
    models = _embedding_models()
    if choice not in models:
        raise ValidationFailed(
            f"unknown embedder {choice!r}; use auto, classical or an embedding model "
            f"({', '.join(models) or 'none known'})"
        )
    store.require(choice)
    return Neural(choice, _probe_dim(choice))


def of_collection(embedder: str, dim: int) -> CollectionEmbedder:
    """The embedder a collection was created with (its model need not be installed now)."""
    if embedder == CLASSICAL:
        return Classical()
    return Neural(embedder, dim)
