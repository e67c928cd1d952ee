"""Vector index backends: embedded usearch files, or a Qdrant server."""

from __future__ import annotations

from pathlib import Path

from .base import CollectionIndex, IndexBackend, Neighbours
from .usearch_backend import UsearchBackend


def open_backend(
    url: str | None, data_dir: Path | None, ivf_threshold: int | None = None
) -> IndexBackend:
    """``None`` / ``usearch://``: files under ``data_dir/index`` (memory when no data dir);
    ``qdrant://host:6333``: a Qdrant server (see :mod:`.qdrant_backend`). ``ivf_threshold``:
    the embedded index's HNSW -> IVF switch (None: the module default; 0: never)."""
    if not url or url in ("usearch://", "usearch"):
        return UsearchBackend(data_dir / "index" if data_dir is not None else None, ivf_threshold)
    if url == "memory://":
        return UsearchBackend(None, ivf_threshold)
    if url.startswith("qdrant"):
        from .qdrant_backend import QdrantBackend

        return QdrantBackend.from_url(url)
    raise ValueError(f"unknown index URL {url!r}; use usearch:// or qdrant://host:6333")


__all__ = ["CollectionIndex", "IndexBackend", "Neighbours", "UsearchBackend", "open_backend"]
