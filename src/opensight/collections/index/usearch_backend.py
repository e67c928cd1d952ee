"""Embedded HNSW indexes (usearch), in memory or as files in the data dir.

Per collection, a directory with ``vectors.usearch`` (f16 cosine HNSW) and
``hashes.usearch`` (binary vectors, Hamming). Files are written whole to a
temporary name, fsynced and renamed (``flush``), so a crash leaves the previous
complete file or the new one, never a torn one. What was added after the last
flush is not in the file: the service replays it from the database on open
(the database is the truth), and a file that cannot be read is rebuilt.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import threading
from pathlib import Path

import numpy as np
from usearch.index import Index, MetricKind, ScalarKind

from .base import HASH_BYTES, CollectionIndex, IndexBackend, Neighbours, as_hashes, as_keys

log = logging.getLogger("opensight.index")

#: HNSW parameters: graph degree, and the candidate-list sizes when adding and
#: searching. bench/collections.py (512-d embedding-like vectors): recall@10 0.96
#: at 100k with 128, 0.95 at 1M with 256 -- so the search list grows with the index.
CONNECTIVITY = 16
EXPANSION_ADD = 128
EXPANSION_SEARCH = 128
LARGE_EXPANSION_SEARCH = 256
LARGE_INDEX = 300_000
HASH_EXPANSION_SEARCH = 256
_SAFE = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


def _vector_index(dim: int) -> Index:
    return Index(
        ndim=dim,
        metric=MetricKind.Cos,
        dtype=ScalarKind.F16,
        connectivity=CONNECTIVITY,
        expansion_add=EXPANSION_ADD,
        expansion_search=EXPANSION_SEARCH,
    )


def _hash_index() -> Index:
    return Index(
        ndim=HASH_BYTES * 8,
        metric=MetricKind.Hamming,
        dtype=ScalarKind.B1,
        connectivity=CONNECTIVITY,
        expansion_add=EXPANSION_ADD,
        expansion_search=HASH_EXPANSION_SEARCH,
    )


class UsearchCollectionIndex(CollectionIndex):
    def __init__(self, dim: int, directory: Path | None = None) -> None:
        self.dim = dim
        self.directory = directory
        self._lock = threading.RLock()
        self._dirty = False
        self.vectors = _vector_index(dim)
        self.hashes = _hash_index()
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
            self._load()

    # ------------------------------------------------------------ persistence
    @property
    def _vector_path(self) -> Path:
        assert self.directory is not None
        return self.directory / "vectors.usearch"

    @property
    def _hash_path(self) -> Path:
        assert self.directory is not None
        return self.directory / "hashes.usearch"

    def _load(self) -> None:
        """Load both files; if either is missing or unreadable, start empty (the
        caller replays from the database) and delete what cannot be used."""
        paths = (self._vector_path, self._hash_path)
        if not all(p.exists() for p in paths):
            if any(p.exists() for p in paths):
                log.warning("index %s: a file is missing; rebuilding", self.directory)
            return
        try:
            vectors, hashes = _vector_index(self.dim), _hash_index()
            vectors.load(str(self._vector_path))
            hashes.load(str(self._hash_path))
            if vectors.ndim != self.dim or hashes.ndim != HASH_BYTES * 8:
                raise ValueError("dimension mismatch")
            if set(vectors.keys) != set(hashes.keys):
                raise ValueError("the two files disagree")
        except Exception as exc:  # corrupt, truncated, wrong version
            log.warning("index %s is unreadable (%s); rebuilding", self.directory, exc)
            for path in paths:
                path.unlink(missing_ok=True)
            return
        self.vectors, self.hashes = vectors, hashes

    def flush(self) -> None:
        if self.directory is None:
            return
        with self._lock:
            if not self._dirty and self._vector_path.exists():
                return
            for index, path in ((self.vectors, self._vector_path), (self.hashes, self._hash_path)):
                tmp = path.with_suffix(".tmp")
                index.save(str(tmp))
                with open(tmp, "rb+") as handle:
                    os.fsync(handle.fileno())
                os.replace(tmp, path)
            _fsync_dir(self.directory)
            self._dirty = False

    # ------------------------------------------------------------- mutation
    def add(self, keys: np.ndarray, vectors: np.ndarray, hashes: np.ndarray) -> None:
        keys = as_keys(keys)
        if keys.size == 0:
            return
        vectors = np.asarray(vectors, dtype=np.float32).reshape(keys.size, self.dim)
        packed = as_hashes(hashes)
        with self._lock:
            present = np.array([self.vectors.contains(int(k)) for k in keys], dtype=bool)
            if present.any():
                self._remove(keys[present])
            self.vectors.add(keys, vectors, threads=1)
            self.hashes.add(keys, packed, threads=1)
            self._dirty = True

    def remove(self, keys: np.ndarray) -> None:
        keys = as_keys(keys)
        with self._lock:
            self._remove(keys)
            self._dirty = True

    def _remove(self, keys: np.ndarray) -> None:
        for key in keys:
            if self.vectors.contains(int(key)):
                self.vectors.remove(int(key))
            if self.hashes.contains(int(key)):
                self.hashes.remove(int(key))

    # --------------------------------------------------------------- search
    def search_vectors(self, vector: np.ndarray, k: int) -> Neighbours:
        with self._lock:
            if len(self.vectors) == 0 or k <= 0:
                return Neighbours.empty()
            large = len(self.vectors) >= LARGE_INDEX
            wanted = LARGE_EXPANSION_SEARCH if large else EXPANSION_SEARCH
            if self.vectors.expansion_search != wanted:
                self.vectors.expansion_search = wanted  # type: ignore[misc]  # it has a setter
            found = self.vectors.search(np.asarray(vector, np.float32), min(k, len(self.vectors)))
        return Neighbours(
            np.asarray(found.keys, np.int64), 1.0 - np.asarray(found.distances, np.float32)
        )

    def search_hashes(self, hash_bytes: np.ndarray, k: int) -> Neighbours:
        with self._lock:
            if len(self.hashes) == 0 or k <= 0:
                return Neighbours.empty()
            query = np.asarray(hash_bytes, np.uint8).reshape(HASH_BYTES)
            found = self.hashes.search(query, min(k, len(self.hashes)))
        return Neighbours(np.asarray(found.keys, np.int64), np.asarray(found.distances, np.float32))

    def keys(self) -> np.ndarray:
        with self._lock:
            return np.asarray(self.vectors.keys, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.vectors)


class UsearchBackend(IndexBackend):
    """``root=None``: in memory only (``opensight dedupe``, tests)."""

    name = "usearch"
    shared = False

    def __init__(self, root: Path | None = None) -> None:
        self.root = root
        self._open: dict[str, UsearchCollectionIndex] = {}
        self._lock = threading.Lock()

    def _dir(self, name: str) -> Path | None:
        if self.root is None:
            return None
        if not _SAFE.match(name):
            raise ValueError(f"unsafe index name {name!r}")
        return self.root / name

    def open(self, name: str, dim: int) -> CollectionIndex:
        with self._lock:
            index = self._open.get(name)
            if index is None or index.dim != dim:
                index = UsearchCollectionIndex(dim, self._dir(name))
                self._open[name] = index
            return index

    def drop(self, name: str) -> None:
        with self._lock:
            self._open.pop(name, None)
            directory = self._dir(name)
            if directory is not None and directory.exists():
                shutil.rmtree(directory, ignore_errors=True)

    def flush(self) -> None:
        with self._lock:
            indexes = list(self._open.values())
        for index in indexes:
            try:
                index.flush()
            except OSError:
                log.exception("could not save index %s", index.directory)

    def close(self) -> None:
        self.flush()
        with self._lock:
            self._open.clear()


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
