"""Duplicate groups of a set of files, in memory: ``opensight dedupe DIR``.

No server, no database, no data dir: each file is decoded once (same limits as
the server), its signals computed, everything held in a :class:`MemoryCollection`,
and every image compared with its nearest candidates exactly as a collection's
``duplicates`` does. One unreadable file never stops the others.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..errors import OpenSightError
from ..signals import Signals, compute_signals
from ..signals.descriptors import default_embedder
from .engine import MemoryCollection, group_edges
from .matching import MATCH_ORDER, Match


@dataclass
class FileInfo:
    path: str
    width: int
    height: int
    bytes: int


@dataclass
class Group:
    match: Match
    files: list[FileInfo]
    """Best copy first: most pixels, then largest file, then path."""
    pairs: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        return {
            "match": str(self.match),
            "keep": self.files[0].path,
            "files": [f.path for f in self.files],
            "pairs": self.pairs,
        }


@dataclass
class DedupeResult:
    groups: list[Group]
    files: int
    failed: list[tuple[str, dict[str, str]]] = field(default_factory=list)


def dedupe(
    paths: Sequence[str],
    load: Callable[[str], Any],
    workers: int = 1,
    on_signals: Callable[[], None] | None = None,
    on_compared: Callable[[], None] | None = None,
    on_read: Callable[[int], None] | None = None,
) -> DedupeResult:
    """Group ``paths`` into duplicate groups; ``load(path) -> DecodedImage`` may raise
    :class:`OpenSightError` for a bad file (it is reported in ``failed``).

    Progress hooks: ``on_signals()`` per file read, ``on_read(n)`` once every file
    is read (``n`` readable ones), ``on_compared()`` per image compared."""
    embedder = default_embedder()

    def signals_of(path: str) -> tuple[str, Signals | None, FileInfo | None, dict[str, str] | None]:
        try:
            image = load(path)
            signals = compute_signals(image, embedder)
            info = FileInfo(path, image.width, image.height, image.byte_size)
            return path, signals, info, None
        except OpenSightError as exc:
            return path, None, None, {"type": exc.type, "detail": exc.detail}
        except Exception as exc:  # one bad file must not stop the others
            return path, None, None, {"type": "internal_error", "detail": f"{exc}"}
        finally:
            if on_signals is not None:
                on_signals()

    collection = MemoryCollection(embedder.dim)
    infos: dict[int, FileInfo] = {}
    failed: list[tuple[str, dict[str, str]]] = []
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for path, signals, info, error in pool.map(signals_of, paths):
            if signals is None or info is None:
                failed.append((path, error or {}))
                continue
            infos[collection.add(signals)] = info
        if on_read is not None:
            on_read(len(infos))

        def edges_of(key: int) -> list[Any]:
            found = list(collection.edges([key]))
            if on_compared is not None:
                on_compared()
            return found

        edges = [e for batch in pool.map(edges_of, list(infos)) for e in batch]

    groups = []
    for members, pairs in group_edges(edges):
        files = sorted(
            (infos[k] for k in members),
            key=lambda f: (-(f.width * f.height), -f.bytes, f.path),
        )
        unique = {}
        for p in pairs:
            unique[(p.a, p.b)] = p
        kind = (
            Match.EXACT
            if all(p.match is Match.EXACT for p in unique.values())
            else Match.NEAR_DUPLICATE
        )
        groups.append(
            Group(
                kind,
                files,
                [
                    {
                        "a": infos[p.a].path,
                        "b": infos[p.b].path,
                        "score": p.score,
                        "match": str(p.match),
                    }
                    for p in sorted(unique.values(), key=lambda p: (MATCH_ORDER[p.match], -p.score))
                ],
            )
        )
    groups.sort(key=lambda g: g.files[0].path)
    return DedupeResult(groups, len(paths), failed)
