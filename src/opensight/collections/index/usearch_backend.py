"""Embedded indexes (usearch HNSW, faiss IVF), in memory or as files in the data dir.

Per collection, a directory with ``vectors.usearch`` (f16 cosine HNSW) -- or
``vectors.ivf`` once the collection is large (:mod:`.ivf`) -- and
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
from .ivf import MIN_SIZE, PQ_BITS, IvfVectors

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
#: Vectors move from the HNSW to an IVF (``ivf.py``) at this size: measured at 100k
#: (bench/collections.py), the IVF has higher recall (0.98 vs 0.96), searches in
#: 0.4 ms vs 1.0 ms and builds 10x faster.
IVF_THRESHOLD = 100_000
#: Retrain the IVF's partition when the collection has grown this many times.
RETRAIN_GROWTH = 4.0
#: Train in a background thread (searches and adds go on meanwhile); False: inline.
BACKGROUND_BUILD = True
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
    """Hashes in a usearch binary HNSW; vectors in an f16 HNSW while the collection
    is small, in an :class:`IvfVectors` once it reaches ``IVF_THRESHOLD`` (trained on
    its own vectors, retrained when it has grown ``RETRAIN_GROWTH`` times)."""

    def __init__(
        self, dim: int, directory: Path | None = None, ivf_threshold: int | None = None
    ) -> None:
        self.dim = dim
        self.directory = directory
        self.ivf_threshold = IVF_THRESHOLD if ivf_threshold is None else ivf_threshold
        """Vectors at which the HNSW gives way to an IVF (0: never)."""
        self._lock = threading.RLock()
        self._dirty = False
        self.vectors: Index | IvfVectors = _vector_index(dim)
        self.hashes = _hash_index()
        self._pending: list[tuple[np.ndarray, np.ndarray | None]] | None = None
        """While an IVF is trained in the background: the changes made meanwhile
        (keys, vectors; ``None`` vectors = removed), replayed into it before the swap."""
        self._builder: threading.Thread | None = None
        self._build_failed = False
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
            self._load()

    # ------------------------------------------------------------ persistence
    @property
    def _vector_path(self) -> Path:
        assert self.directory is not None
        return self.directory / "vectors.usearch"

    @property
    def _ivf_path(self) -> Path:
        assert self.directory is not None
        return self.directory / "vectors.ivf"

    @property
    def _hash_path(self) -> Path:
        assert self.directory is not None
        return self.directory / "hashes.usearch"

    def _load(self) -> None:
        """Load the vectors (the IVF file when there is one: it is the newer) and
        the hashes; if a file is missing or unreadable, start empty (the caller
        replays from the database) and delete what cannot be used."""
        ivf = self._ivf_path.exists()
        paths = (self._ivf_path if ivf else self._vector_path, self._hash_path)
        if not all(p.exists() for p in paths):
            if any(p.exists() for p in paths):
                log.warning("index %s: a file is missing; rebuilding", self.directory)
            return
        try:
            vectors: Index | IvfVectors
            if ivf:
                vectors = IvfVectors.load(self._ivf_path, self.dim)
                self._vector_path.unlink(missing_ok=True)  # superseded by the IVF
            else:
                vectors = _vector_index(self.dim)
                vectors.load(str(self._vector_path))
                if vectors.ndim != self.dim:
                    raise ValueError("dimension mismatch")
            hashes = _hash_index()
            hashes.load(str(self._hash_path))
            if hashes.ndim != HASH_BYTES * 8:
                raise ValueError("dimension mismatch")
            if set(_keys_of(vectors).tolist()) != set(hashes.keys):
                raise ValueError("the two files disagree")
        except Exception as exc:  # corrupt, truncated, wrong version
            log.warning("index %s is unreadable (%s); rebuilding", self.directory, exc)
            for path in (*paths, self._vector_path):
                path.unlink(missing_ok=True)
            return
        self.vectors, self.hashes = vectors, hashes

    def flush(self) -> None:
        if self.directory is None:
            return
        with self._lock:
            ivf = isinstance(self.vectors, IvfVectors)
            vector_path = self._ivf_path if ivf else self._vector_path
            if not self._dirty and vector_path.exists():
                return
            for index, path in ((self.vectors, vector_path), (self.hashes, self._hash_path)):
                tmp = path.with_suffix(".tmp")
                if isinstance(index, IvfVectors):
                    index.save(tmp)
                else:
                    index.save(str(tmp))
                with open(tmp, "rb+") as handle:
                    os.fsync(handle.fileno())
                os.replace(tmp, path)
            if ivf:
                self._vector_path.unlink(missing_ok=True)
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
            present = np.array([self.hashes.contains(int(k)) for k in keys], dtype=bool)
            if present.any():
                self._remove(keys[present])
            if self._bulk_load(keys.size):
                # as large as what is there: train the IVF on both now, never
                # grow the HNSW past the threshold first
                old_keys, old_vectors = _snapshot(self.vectors, self.dim)
                self.vectors = IvfVectors.build(
                    self.dim,
                    np.concatenate([old_keys, keys]),
                    np.concatenate([old_vectors, vectors]),
                )
            elif isinstance(self.vectors, IvfVectors):
                self.vectors.add(keys, vectors)
            else:
                self.vectors.add(keys, vectors, threads=1)
            self.hashes.add(keys, packed, threads=1)
            if self._pending is not None:
                self._pending.append((keys, vectors))
            self._dirty = True
            self._maybe_retrain()

    def remove(self, keys: np.ndarray) -> None:
        keys = as_keys(keys)
        with self._lock:
            self._remove(keys)
            if self._pending is not None:
                self._pending.append((keys, None))
            self._dirty = True

    def _remove(self, keys: np.ndarray) -> None:
        if isinstance(self.vectors, IvfVectors):
            self.vectors.remove(keys)
        else:
            for key in keys:
                if self.vectors.contains(int(key)):
                    self.vectors.remove(int(key))
        for key in keys:
            if self.hashes.contains(int(key)):
                self.hashes.remove(int(key))

    # ----------------------------------------------------- HNSW -> IVF switch
    def _bulk_load(self, adding: int) -> bool:
        size = len(self.vectors)
        return (
            not isinstance(self.vectors, IvfVectors)
            and self._pending is None
            and self.ivf_threshold > 0
            and size + adding >= max(self.ivf_threshold, MIN_SIZE)
            and adding >= size
        )

    def _maybe_retrain(self) -> None:
        """Train an IVF in the background once the HNSW reaches the threshold, or
        a new partition once the IVF has grown ``RETRAIN_GROWTH`` times."""
        if self._pending is not None or self._build_failed:
            return
        size = len(self.vectors)
        if isinstance(self.vectors, IvfVectors):
            due = size >= RETRAIN_GROWTH * max(self.vectors.trained, 1)
        else:
            due = self.ivf_threshold > 0 and size >= max(self.ivf_threshold, MIN_SIZE)
        if not due:
            return
        keys, vectors = _snapshot(self.vectors, self.dim)
        self._pending = []
        if not BACKGROUND_BUILD:
            self._swap_in(keys, vectors)
            return
        self._builder = threading.Thread(
            target=self._swap_in, args=(keys, vectors), name="ivf-train", daemon=True
        )
        self._builder.start()

    def _swap_in(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        try:
            store = IvfVectors.build(self.dim, keys, vectors)
        except Exception:
            log.exception("index %s: could not train the IVF; staying as is", self.directory)
            with self._lock:
                self._pending, self._build_failed = None, True
            return
        with self._lock:
            for changed, added in self._pending or []:
                if added is None:
                    store.remove(changed)
                else:
                    store.add(changed, added)
            self.vectors, self._pending, self._dirty = store, None, True
        log.info("index %s: %s", self.directory or "memory", self.kind)

    def wait_for_training(self, timeout: float | None = None) -> None:
        """Block until a background training (if any) has been swapped in."""
        builder = self._builder
        if builder is not None:
            builder.join(timeout)

    @property
    def kind(self) -> str:
        """What searches the vectors now, e.g. ``hnsw`` or ``ivf4096/512+pq64x4``."""
        store = self.vectors
        if isinstance(store, IvfVectors):
            return f"ivf{store.nlist}/{store.nprobe}+pq{store.index.pq.M}x{PQ_BITS}"
        return "hnsw"

    # --------------------------------------------------------------- search
    def search_vectors(self, vector: np.ndarray, k: int) -> Neighbours:
        with self._lock:
            if len(self.vectors) == 0 or k <= 0:
                return Neighbours.empty()
            if isinstance(self.vectors, IvfVectors):
                keys, scores = self.vectors.search(vector, k)
                return Neighbours(keys, scores)
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
            return _keys_of(self.vectors)

    def __len__(self) -> int:
        return len(self.vectors)


def _keys_of(vectors: Index | IvfVectors) -> np.ndarray:
    if isinstance(vectors, IvfVectors):
        return vectors.keys()
    return np.asarray(vectors.keys, dtype=np.int64)


def _snapshot(vectors: Index | IvfVectors, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Copies of every (key, vector), to train an IVF on."""
    if isinstance(vectors, IvfVectors):
        return vectors.snapshot()
    keys = _keys_of(vectors)
    if keys.size == 0:
        return keys, np.zeros((0, dim), np.float32)
    return keys, np.asarray(vectors.get(keys, dtype=ScalarKind.F32), np.float32).reshape(-1, dim)


class UsearchBackend(IndexBackend):
    """``root=None``: in memory only (``opensight dedupe``, tests)."""

    name = "usearch"
    shared = False

    def __init__(self, root: Path | None = None, ivf_threshold: int | None = None) -> None:
        self.root = root
        self.ivf_threshold = ivf_threshold
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
                index = UsearchCollectionIndex(dim, self._dir(name), self.ivf_threshold)
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
