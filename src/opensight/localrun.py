"""Analyze local files and URLs in this process: no server, no database, no data dir.

This is what ``opensight analyze`` runs (and what a benchmark can call): sources
are expanded (directories walked for image files), each is loaded with the same
limits and SSRF guard as the server, decoded once and run through the pipeline.
One bad image never stops the others: its :class:`LocalResult` carries the error.
"""

from __future__ import annotations

import itertools
import os
import re
import stat
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .analyzers import registry
from .analyzers.pipeline import Pipeline
from .config import Settings
from .errors import ImageTooLarge, InvalidImage, NotFound, OpenSightError
from .images import DecodedImage, ImageLimits, decode
from .netguard import FetchPolicy, fetch_bytes

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".heic", ".heif"}
)
"""What a directory walk picks up (case-insensitive). Files named explicitly are always tried."""

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


class FileUnreadable(OpenSightError):
    type, title, status = "file_unreadable", "The file could not be read", 422


def is_url(source: str) -> bool:
    """``scheme://...``; netguard refuses every scheme but http and https."""
    return bool(_URL.match(source))


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def expand_sources(inputs: Iterable[str]) -> list[str]:
    """URLs and files as given; directories replaced by their image files.

    A directory is walked recursively in sorted order; hidden files and folders
    (name starting with ``.``) are skipped and symlinked folders are not followed.
    A path that does not exist is kept: loading it reports ``not_found``.
    """
    sources: list[str] = []
    for item in inputs:
        if not is_url(item) and os.path.isdir(item):
            sources.extend(_walk(item))
        else:
            sources.append(item)
    return sources


def _walk(root: str) -> list[str]:
    found: list[tuple[tuple[str, ...], str]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        rel = os.path.relpath(dirpath, root)
        parts = () if rel == os.curdir else tuple(Path(rel).parts)
        for name in filenames:
            if name.startswith("."):
                continue
            if os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
                found.append(((*parts, name), os.path.join(dirpath, name)))
    found.sort()
    return [path for _, path in found]


@dataclass
class LocalResult:
    """The outcome for one source: every requested feature's output, or an error."""

    source: str
    results: dict[str, Any] | None = None
    error: dict[str, str] | None = None
    """``{"type": slug, "detail": text}`` when the image failed."""
    image: dict[str, Any] | None = None
    """sha256, width, height, format and bytes of the decoded image."""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_json(self) -> dict[str, Any]:
        """``{"file": source, <feature>: {...}, ...}`` or ``{"file": source, "error": {...}}``."""
        if self.error is not None:
            return {"file": self.source, "error": dict(self.error)}
        return {"file": self.source, **(self.results or {})}


class LocalAnalyzer:
    """Loads and analyzes sources with the limits of ``settings`` (``Settings()`` by default).

    Raises :class:`~opensight.errors.UnknownFeature` at construction for a bad
    feature name, so a caller can refuse before doing any work.
    """

    def __init__(
        self,
        features: Sequence[str] | str | None = None,
        settings: Settings | None = None,
        pipeline: Pipeline | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self.features = registry.normalize_features(features)
        registry.resolve_order(self.features)
        self.options = options or {}
        self.pipeline = pipeline or Pipeline(defaults=self.settings.analyzer_options)
        self.limits = ImageLimits(self.settings.max_upload_bytes, self.settings.max_pixels)
        self.fetch_policy = FetchPolicy(
            allow_private=self.settings.allow_private_urls,
            connect_timeout=self.settings.url_connect_timeout,
            read_timeout=self.settings.url_read_timeout,
            max_redirects=self.settings.url_max_redirects,
            max_bytes=self.settings.max_upload_bytes,
        )

    # ----------------------------------------------------------------- load
    def read(self, source: str) -> bytes:
        """The bytes of a URL (through the SSRF guard) or of a local file."""
        if is_url(source):
            return fetch_bytes(source, self.fetch_policy)
        try:
            info = os.stat(source)
        except FileNotFoundError:
            raise NotFound(f"no such file: {source}") from None
        except OSError as exc:
            raise FileUnreadable(f"cannot read {source}: {exc.strerror or exc}") from None
        if stat.S_ISDIR(info.st_mode):
            raise InvalidImage(f"{source} is a directory")
        if not stat.S_ISREG(info.st_mode):
            raise InvalidImage(f"{source} is not a regular file")
        limit = self.limits.max_bytes
        if info.st_size > limit:
            raise ImageTooLarge(f"the file is {info.st_size} bytes; the limit is {limit}")
        try:
            with open(source, "rb") as handle:
                data = handle.read(limit + 1)
        except OSError as exc:
            raise FileUnreadable(f"cannot read {source}: {exc.strerror or exc}") from None
        if len(data) > limit:
            raise ImageTooLarge(f"the file is larger than the limit of {limit} bytes")
        return data

    def load(self, source: str) -> DecodedImage:
        return decode(self.read(source), self.limits, source=source)

    # -------------------------------------------------------------- analyze
    def analyze_one(self, source: str) -> LocalResult:
        """Never raises for a bad image: the error is in the result."""
        started = time.perf_counter()
        result = LocalResult(source)
        try:
            image = self.load(source)
            outcome = self.pipeline.run_one(image, self.features, self.options)
            result.results = outcome.results
            result.image = image.info()
        except OpenSightError as exc:
            result.error = {"type": exc.type, "detail": exc.detail}
        except Exception as exc:  # an analyzer bug must not take the other images down
            result.error = {"type": "internal_error", "detail": f"{type(exc).__name__}: {exc}"}
        result.seconds = time.perf_counter() - started
        return result

    def run(
        self,
        sources: Sequence[str],
        workers: int = 1,
        on_done: Callable[[LocalResult], None] | None = None,
    ) -> Iterator[LocalResult]:
        """Analyze ``sources`` with ``workers`` threads; yield results in input order.

        ``on_done`` is called from the worker thread as each image finishes (in
        completion order), e.g. to advance a progress bar. At most a few images
        per worker are in flight or waiting to be consumed, so memory stays flat
        on large folders.
        """

        def task(source: str) -> LocalResult:
            result = self.analyze_one(source)
            if on_done is not None:
                on_done(result)
            return result

        if workers <= 1:
            for source in sources:
                yield task(source)
            return
        window = workers * 4
        remaining = iter(sources)
        pending: deque[Future[LocalResult]] = deque()
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="analyze")
        try:
            for source in itertools.islice(remaining, window):
                pending.append(pool.submit(task, source))
            while pending:
                yield pending.popleft().result()
                for source in itertools.islice(remaining, 1):
                    pending.append(pool.submit(task, source))
        finally:  # also when the consumer stops early: drop what has not started
            pool.shutdown(wait=True, cancel_futures=True)
