"""The vector index interface: one per collection, two spaces per image.

Each image of a collection is an integer ``key`` (the database row's key, never
reused) with two vectors:

* a float *descriptor* (cosine similarity; the embedder's dimension), searched
  for similar images and near-duplicate candidates;
* a 64-bit perceptual *hash* (Hamming distance), searched for near-duplicate
  candidates.

The database is the truth; an index is a rebuildable copy. ``keys()`` lets the
service compare the two and replay what is missing or remove what is stale.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

HASH_BYTES = 8


@dataclass(frozen=True)
class Neighbours:
    keys: np.ndarray
    """int64 keys, best first."""
    scores: np.ndarray
    """Cosine similarity (vectors, higher is closer) or Hamming distance (hashes, lower)."""

    def __len__(self) -> int:
        return int(self.keys.shape[0])

    @classmethod
    def empty(cls) -> Neighbours:
        return cls(np.zeros(0, np.int64), np.zeros(0, np.float32))


class CollectionIndex(ABC):
    """The vectors of one collection."""

    dim: int

    @abstractmethod
    def add(self, keys: np.ndarray, vectors: np.ndarray, hashes: np.ndarray) -> None:
        """Add (or overwrite) ``keys``: float vectors N x dim, hashes N x 8 uint8."""

    @abstractmethod
    def remove(self, keys: np.ndarray) -> None:
        """Remove ``keys``; keys that are absent are ignored."""

    @abstractmethod
    def search_vectors(self, vector: np.ndarray, k: int) -> Neighbours:
        """Up to ``k`` nearest by cosine similarity, most similar first."""

    @abstractmethod
    def search_hashes(self, hash_bytes: np.ndarray, k: int) -> Neighbours:
        """Up to ``k`` nearest by Hamming distance, closest first."""

    @abstractmethod
    def keys(self) -> np.ndarray:
        """Every key in the index (int64, any order)."""

    @abstractmethod
    def __len__(self) -> int: ...

    def flush(self) -> None:  # noqa: B027 - optional hook
        """Make what was added durable where the backend needs it (no-op by default)."""

    def close(self) -> None:
        self.flush()


class IndexBackend(ABC):
    """Where the collections' indexes live."""

    name: str
    shared: bool = False
    """True when every server process sees the same index (a Qdrant server): a
    process then never needs to replay other processes' writes."""

    @abstractmethod
    def open(self, name: str, dim: int) -> CollectionIndex:
        """The index called ``name`` (created empty when new). It may be missing
        entries (a crash, a lost file): the caller reconciles it with the database."""

    @abstractmethod
    def drop(self, name: str) -> None:
        """Delete the index called ``name`` (no error when absent)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        pass


def as_keys(keys: np.ndarray | list[int]) -> np.ndarray:
    return np.asarray(keys, dtype=np.int64).reshape(-1)


def as_hashes(hashes: np.ndarray | list[bytes]) -> np.ndarray:
    arr = np.asarray(hashes, dtype=np.uint8)
    return arr.reshape(-1, HASH_BYTES)
