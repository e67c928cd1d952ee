"""Qdrant indexes for scale-out (``OPENSIGHT_INDEX_URL=qdrant://host:6333``).

One Qdrant collection per OpenSight collection (``opensight_<name>``), each point
the image's integer key with two named vectors: ``d``, the descriptor (cosine),
and ``h``, the 64-bit perceptual hash as 64 values of +1/-1 with the dot product
(so ``hamming = (64 - dot) / 2``, exactly). Every server process talks to the
same Qdrant, so nothing has to be replayed between processes. Tests run the same
code against qdrant-client's local mode (``QdrantClient(":memory:")`` or a path).
"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import urlparse

import numpy as np

from .base import HASH_BYTES, CollectionIndex, IndexBackend, Neighbours, as_hashes, as_keys

_HASH_DIM = HASH_BYTES * 8
_BATCH = 256


def _signs(hashes: np.ndarray) -> np.ndarray:
    bits = np.unpackbits(as_hashes(hashes), axis=1).astype(np.float32)
    return bits * 2.0 - 1.0


class QdrantCollectionIndex(CollectionIndex):
    def __init__(self, client: Any, collection: str, dim: int) -> None:
        from qdrant_client import models

        self._models = models
        self.client = client
        self.collection = collection
        self.dim = dim
        if not client.collection_exists(collection):
            client.create_collection(
                collection,
                vectors_config={
                    "d": models.VectorParams(size=dim, distance=models.Distance.COSINE),
                    "h": models.VectorParams(size=_HASH_DIM, distance=models.Distance.DOT),
                },
            )

    def add(self, keys: np.ndarray, vectors: np.ndarray, hashes: np.ndarray) -> None:
        keys = as_keys(keys)
        if keys.size == 0:
            return
        vectors = np.asarray(vectors, dtype=np.float32).reshape(keys.size, self.dim)
        signs = _signs(hashes)
        for start in range(0, keys.size, _BATCH):
            part = slice(start, start + _BATCH)
            points = [
                self._models.PointStruct(
                    id=int(key), vector={"d": vec.tolist(), "h": sign.tolist()}
                )
                for key, vec, sign in zip(keys[part], vectors[part], signs[part], strict=True)
            ]
            self.client.upsert(self.collection, points=points, wait=True)

    def remove(self, keys: np.ndarray) -> None:
        keys = as_keys(keys)
        if keys.size:
            self.client.delete(
                self.collection,
                points_selector=self._models.PointIdsList(points=[int(k) for k in keys]),
                wait=True,
            )

    def _query(self, vector: list[float], using: str, k: int) -> list[Any]:
        if k <= 0:
            return []
        response = self.client.query_points(
            self.collection, query=vector, using=using, limit=k, with_payload=False
        )
        return list(response.points)

    def search_vectors(self, vector: np.ndarray, k: int) -> Neighbours:
        points = self._query(np.asarray(vector, np.float32).tolist(), "d", k)
        return Neighbours(
            np.array([int(p.id) for p in points], np.int64),
            np.array([p.score for p in points], np.float32),
        )

    def search_hashes(self, hash_bytes: np.ndarray, k: int) -> Neighbours:
        points = self._query(_signs(hash_bytes)[0].tolist(), "h", k)
        return Neighbours(
            np.array([int(p.id) for p in points], np.int64),
            np.array([round((_HASH_DIM - p.score) / 2) for p in points], np.float32),
        )

    def keys(self) -> np.ndarray:
        found: list[int] = []
        offset = None
        while True:
            records, offset = self.client.scroll(
                self.collection, limit=1024, offset=offset, with_payload=False, with_vectors=False
            )
            found.extend(int(r.id) for r in records)
            if offset is None:
                return np.array(found, dtype=np.int64)

    def __len__(self) -> int:
        return int(self.client.count(self.collection, exact=True).count)


class QdrantBackend(IndexBackend):
    name = "qdrant"
    shared = True

    def __init__(self, client: Any, prefix: str = "opensight_") -> None:
        self.client = client
        self.prefix = prefix
        self._open: dict[str, QdrantCollectionIndex] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str) -> QdrantBackend:
        """``qdrant://host:6333`` (``qdrants://`` for TLS; ``?api_key=...``),
        ``qdrant+memory://`` (in-process) or ``qdrant+path:///dir`` (local files)."""
        try:
            from qdrant_client import QdrantClient
        except ImportError:  # pragma: no cover - depends on the install
            raise RuntimeError(
                "OPENSIGHT_INDEX_URL names Qdrant but qdrant-client is not installed; "
                "pip install 'opensight[qdrant]'"
            ) from None
        parsed = urlparse(url)
        if parsed.scheme == "qdrant+memory":
            return cls(QdrantClient(":memory:"))
        if parsed.scheme == "qdrant+path":
            return cls(QdrantClient(path=parsed.path))
        if parsed.scheme not in ("qdrant", "qdrants"):
            raise ValueError(f"not a Qdrant URL: {url!r}")
        params = dict(part.split("=", 1) for part in parsed.query.split("&") if "=" in part)
        client = QdrantClient(
            host=parsed.hostname or "localhost",
            port=parsed.port or 6333,
            https=parsed.scheme == "qdrants",
            api_key=params.get("api_key"),
            timeout=int(params.get("timeout", 30)),
        )
        return cls(client, prefix=params.get("prefix", "opensight_"))

    def open(self, name: str, dim: int) -> CollectionIndex:
        with self._lock:
            index = self._open.get(name)
            if index is None or index.dim != dim:
                index = QdrantCollectionIndex(self.client, self.prefix + name, dim)
                self._open[name] = index
            return index

    def drop(self, name: str) -> None:
        with self._lock:
            self._open.pop(name, None)
            if self.client.collection_exists(self.prefix + name):
                self.client.delete_collection(self.prefix + name)

    def close(self) -> None:
        with self._lock:
            self._open.clear()
        self.client.close()
