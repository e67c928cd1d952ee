"""Finding matches: candidates from the index, the decision from the signals.

Shared by the collections service (index on disk or in Qdrant, signals in the
database) and by ``opensight dedupe`` (everything in memory):

1. exact candidates -- the caller's lookup by sha256 / pixel sha256;
2. near-duplicate candidates -- the ``HASH_TOP`` nearest perceptual hashes within
   ``HASH_RADIUS`` bits, and the ``verify_top`` nearest descriptors with cosine at
   least ``VERIFY_MIN_COSINE``; each is verified with local features;
3. similar -- every descriptor neighbour, scored from its cosine; in a neural
   collection, every neighbour in its embedder's index instead (``SimilarSpace``),
   scored with that embedder's calibration. Steps 1-2 never change with the embedder.

Whatever scores below ``SIMILAR_SCORE`` is left out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..signals import QUERY_FEATURES, Signals
from ..signals.hashes import to_bytes
from .index.base import CollectionIndex
from .index.usearch_backend import UsearchCollectionIndex
from .matching import MATCH_ORDER, SIMILAR_SCORE, Decision, Match, decide, similar_score

VERIFY_TOP = 20
"""Descriptor neighbours verified with local features in a search."""
DUPLICATE_VERIFY_TOP = 10
"""... and when looking for an image's duplicates (on add, and in dedupe)."""
VERIFY_MIN_COSINE = 0.55
"""Near-duplicates under the supported edits stay above 0.59 (bench); below, no check."""
HASH_TOP = 10
HASH_RADIUS = 22

Fetch = Callable[[Sequence[int]], Mapping[int, Signals]]


@dataclass(frozen=True)
class SimilarSpace:
    """Where *similar* is ranked when not by the classical descriptor: a neural index,
    the query's vector in it, and the cosines that score 0.50 and 0.90 there."""

    index: CollectionIndex
    vector: np.ndarray
    threshold: float
    full: float = 1.0


@dataclass(frozen=True)
class Hit:
    key: int
    score: float
    match: Match
    inliers: int = 0


def as_query(signals: Signals) -> Signals:
    """The signals to search with: at most ``QUERY_FEATURES`` keypoints (a stored image
    keeps more, so that a crop of it still finds enough of them)."""
    if len(signals.local) <= QUERY_FEATURES:
        return signals
    return Signals(
        signals.hashes,
        signals.descriptor,
        signals.local.head(QUERY_FEATURES),
        signals.width,
        signals.height,
    )


def find(
    query: Signals,
    index: CollectionIndex,
    fetch: Fetch,
    *,
    exact_keys: Iterable[int] = (),
    exclude: Iterable[int] = (),
    similar_k: int = 0,
    verify_top: int = VERIFY_TOP,
    similar: SimilarSpace | None = None,
) -> list[Hit]:
    """Matches of ``query`` in ``index``, best first.

    ``similar_k``: how many descriptor neighbours to consider for *similar* (0:
    only exact and near-duplicate matches are wanted). ``similar``: rank those in
    this space instead of by the descriptor (a neural collection).
    """
    query = as_query(query)
    skip = set(int(k) for k in exclude)
    hits: dict[int, Hit] = {}
    for key in exact_keys:
        if int(key) not in skip:
            hits[int(key)] = Hit(int(key), 1.0, Match.EXACT)
    skip |= set(hits)

    want = max(verify_top, similar_k) + len(skip)
    by_vector = index.search_vectors(query.descriptor, want)
    cosines = {int(k): float(s) for k, s in zip(by_vector.keys, by_vector.scores, strict=True)}
    to_verify: list[int] = []
    for key, cos in cosines.items():
        if key in skip or len(to_verify) >= verify_top:
            continue
        if cos >= VERIFY_MIN_COSINE:
            to_verify.append(key)
    by_hash = index.search_hashes(to_bytes(query.hashes.phash), HASH_TOP + len(skip))
    for key, distance in zip(by_hash.keys, by_hash.scores, strict=True):
        key = int(key)
        if key not in skip and distance <= HASH_RADIUS and key not in to_verify:
            to_verify.append(key)

    fetched = fetch(to_verify) if to_verify else {}
    for key in to_verify:
        candidate = fetched.get(key)
        if candidate is None:  # deleted meanwhile
            continue
        decision: Decision = decide(query, candidate)
        if decision.match is Match.SIMILAR and similar is not None:
            continue  # the neural space scores it below
        if decision.match is not None:
            hits[key] = Hit(key, decision.score, decision.match, decision.inliers)
    if similar_k and similar is not None:
        for hit in rank_similar(similar, similar_k, skip | set(hits)):
            hits[hit.key] = hit
    elif similar_k:
        for key, cos in cosines.items():
            if key in skip or key in hits or key in fetched:
                continue
            score = similar_score(cos)
            if score >= 0.5:
                hits[key] = Hit(key, score, Match.SIMILAR)
    return sorted(hits.values(), key=lambda h: (-h.score, MATCH_ORDER[h.match], h.key))


def rank_similar(space: SimilarSpace, k: int, exclude: Iterable[int] = ()) -> list[Hit]:
    """The ``k`` nearest of ``space.vector`` in ``space.index`` scored as *similar*
    (those scoring below 0.50 left out), best first."""
    skip = set(int(x) for x in exclude)
    found = space.index.search_vectors(space.vector, k + len(skip))
    hits: list[Hit] = []
    for key, cos in zip(found.keys, found.scores, strict=True):
        if int(key) in skip or len(hits) >= k:
            continue
        score = similar_score(float(cos), space.threshold, space.full)
        if score >= SIMILAR_SCORE:
            hits.append(Hit(int(key), score, Match.SIMILAR))
    return hits


def duplicates_of(
    key: int, signals: Signals, index: CollectionIndex, fetch: Fetch, exact_keys: Iterable[int]
) -> list[Hit]:
    """The exact and near-duplicate matches of one member of the index (itself excluded)."""
    return find(
        signals,
        index,
        fetch,
        exact_keys=exact_keys,
        exclude=[key],
        verify_top=DUPLICATE_VERIFY_TOP,
    )


class UnionFind:
    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, x: int) -> int:
        self.parent.setdefault(x, x)
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def groups(self) -> list[list[int]]:
        out: dict[int, list[int]] = {}
        for x in self.parent:
            out.setdefault(self.find(x), []).append(x)
        return sorted((sorted(g) for g in out.values() if len(g) > 1), key=lambda g: g[0])


@dataclass(frozen=True)
class Edge:
    a: int
    b: int
    score: float
    match: Match


def group_edges(edges: Iterable[Edge]) -> list[tuple[list[int], list[Edge]]]:
    """Connected components of duplicate edges: (sorted member keys, their edges)."""
    uf = UnionFind()
    kept = list(edges)
    for edge in kept:
        uf.union(edge.a, edge.b)
    by_root: dict[int, list[Edge]] = {}
    for edge in kept:
        by_root.setdefault(uf.find(edge.a), []).append(edge)
    return [(members, by_root[uf.find(members[0])]) for members in uf.groups()]


class MemoryCollection:
    """A collection held in memory: ``opensight dedupe`` and the benchmarks."""

    def __init__(self, dim: int) -> None:
        self.index = UsearchCollectionIndex(dim)
        self.signals: dict[int, Signals] = {}
        self._by_exact: dict[str, list[int]] = {}
        self._next = 1

    def __len__(self) -> int:
        return len(self.signals)

    def add(self, signals: Signals) -> int:
        key = self._next
        self._next += 1
        self.signals[key] = signals
        for digest in {signals.hashes.sha256, signals.hashes.pixel_sha256}:
            self._by_exact.setdefault(digest, []).append(key)
        self.index.add(
            np.array([key]), signals.descriptor[None, :], to_bytes(signals.hashes.phash)[None, :]
        )
        return key

    def _fetch(self, keys: Sequence[int]) -> Mapping[int, Signals]:
        return {k: self.signals[k] for k in keys if k in self.signals}

    def exact_keys(self, signals: Signals) -> list[int]:
        found = self._by_exact.get(signals.hashes.sha256, []) + self._by_exact.get(
            signals.hashes.pixel_sha256, []
        )
        return sorted(set(found))

    def search(
        self, query: Signals, similar_k: int = 10, verify_top: int = VERIFY_TOP
    ) -> list[Hit]:
        return find(
            query,
            self.index,
            self._fetch,
            exact_keys=self.exact_keys(query),
            similar_k=similar_k,
            verify_top=verify_top,
        )

    def edges(self, keys: Iterable[int] | None = None) -> Iterator[Edge]:
        """Duplicate edges from each of ``keys`` (default: all) to the others."""
        for key in keys if keys is not None else list(self.signals):
            signals = self.signals[key]
            for hit in duplicates_of(
                key, signals, self.index, self._fetch, self.exact_keys(signals)
            ):
                yield Edge(min(key, hit.key), max(key, hit.key), hit.score, hit.match)
