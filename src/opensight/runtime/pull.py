"""Download a catalog model from the Hugging Face Hub: resumable, checksummed, atomic.

Metadata (commit, ETag, size, CDN location) comes from ``huggingface_hub`` so
auth, ``HF_ENDPOINT`` and redirects behave as everywhere else; the body is
fetched with its ``http_get`` into a partial file kept under the model's
``.download/`` folder, so an interrupted pull (network drop, Ctrl-C) continues
with an HTTP Range request instead of starting over. Every file is hashed;
a hash that differs from the catalog (or from the Hub's LFS sha256 ETag) is
refused and the model directory removed, so nothing half-trusted stays
installed. The manifest is written last: until then the model is not installed.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from ..config import Settings
from ..errors import Conflict, ModelUnavailable, OpenSightError
from . import catalog, store
from .catalog import ModelFile, ModelSpec

#: (file name, bytes on disk so far, total bytes or None) -- called as bytes arrive.
ProgressCallback = Callable[[str, int, int | None], None]

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
DOWNLOAD_DIR = ".download"


class PullFailed(OpenSightError):
    type, title, status = "model_pull_failed", "The model could not be downloaded", 502


class ChecksumMismatch(PullFailed):
    type, title, status = "checksum_mismatch", "A downloaded model file failed its checksum", 502


@dataclass
class PulledFile:
    name: str
    sha256: str
    size_bytes: int
    verified: bool
    """True when the sha256 matched one pinned in the catalog."""
    checked_against: str
    """``catalog``, ``hub-lfs-etag`` (transport integrity only) or ``none``."""
    resumed_from: int = 0


@dataclass
class PullResult:
    model_id: str
    path: Path
    commit: str | None
    files: list[PulledFile] = field(default_factory=list)
    already_installed: bool = False

    @property
    def verified(self) -> bool:
        return bool(self.files) and all(f.verified for f in self.files)

    @property
    def unverified_files(self) -> list[str]:
        return [f.name for f in self.files if not f.verified]


def pull(
    model_id: str,
    *,
    force: bool = False,
    settings: Settings | None = None,
    endpoint: str | None = None,
    token: str | bool | None = None,
    on_progress: ProgressCallback | None = None,
) -> PullResult:
    """Install ``model_id`` into the model dir (no-op when installed, unless ``force``)."""
    spec = catalog.get(model_id)
    directory = store.model_path(spec.id, settings)
    if store.is_installed(spec.id, settings) and not force:
        manifest = store.read_manifest(spec.id, settings) or {}
        return PullResult(spec.id, directory, manifest.get("commit"), already_installed=True)
    if store.offline():
        raise ModelUnavailable(
            spec.id,
            f"cannot download model {spec.id!r}: HF_HUB_OFFLINE is set. Unset it and run "
            f"`opensight models pull {spec.id}`, or copy an installed {spec.id}/ folder into "
            f"{store.model_dir(settings)}",
        )
    endpoint = endpoint or os.environ.get("HF_ENDPOINT") or None
    directory.mkdir(parents=True, exist_ok=True)
    with _exclusive(directory):
        (directory / store.MANIFEST_NAME).unlink(missing_ok=True)  # re-pull: not installed now
        result = PullResult(spec.id, directory, None)
        item = spec.files[0] if spec.files else None
        try:
            for item in spec.files:
                pulled, commit = _pull_file(spec, item, directory, endpoint, token, on_progress)
                result.files.append(pulled)
                result.commit = result.commit or commit
        except ChecksumMismatch:
            store.remove(spec.id, settings)  # nothing half-trusted stays behind
            raise
        except OpenSightError:
            raise
        except Exception as exc:  # network, HTTP, disk: keep partial files for a resume
            raise _failure(spec, item, exc) from exc
        shutil.rmtree(directory / DOWNLOAD_DIR, ignore_errors=True)
        store.write_manifest(
            spec.id,
            {
                f.name: {
                    "sha256": f.sha256,
                    "size_bytes": f.size_bytes,
                    "verified": f.verified,
                    "checked_against": f.checked_against,
                }
                for f in result.files
            },
            settings,
            repo=spec.repo,
            revision=spec.revision,
            commit=result.commit,
            license=spec.license,
            backend=spec.backend,
            verified=result.verified,
            source="pull",
        )
    return result


def _pull_file(
    spec: ModelSpec,
    item: ModelFile,
    directory: Path,
    endpoint: str | None,
    token: str | bool | None,
    on_progress: ProgressCallback | None,
) -> tuple[PulledFile, str | None]:
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.file_download import http_get
    from huggingface_hub.utils import build_hf_headers

    url = hf_hub_url(spec.repo, item.name, revision=spec.revision, endpoint=endpoint)
    meta = get_hf_file_metadata(url, token=token, endpoint=endpoint)
    size = meta.size
    if item.size_bytes is not None and size is not None and size != item.size_bytes:
        raise ChecksumMismatch(
            f"{spec.id}: {item.name} is {size} bytes upstream, the catalog expects "
            f"{item.size_bytes}; refusing it",
            model=spec.id,
        )
    etag = (meta.etag or "").lower()
    tag = hashlib.sha1((etag or meta.commit_hash or spec.revision).encode()).hexdigest()[:12]
    partial = directory / DOWNLOAD_DIR / f"{item.name}.{tag}.part"
    partial.parent.mkdir(parents=True, exist_ok=True)
    resumed = partial.stat().st_size if partial.exists() else 0
    if size is not None and resumed > size:  # not ours or upstream changed: start over
        partial.unlink()
        resumed = 0
    if size is not None:
        free = shutil.disk_usage(partial.parent).free
        if free < size - resumed:
            raise PullFailed(
                f"not enough disk space for {spec.id}: {item.name} needs "
                f"{(size - resumed) / 1e6:.0f} MB more, {free / 1e6:.0f} MB free in "
                f"{directory.parent}",
                model=spec.id,
            )
    with open(partial, "ab") as handle:
        sink = _ProgressFile(handle, item.name, size, on_progress)
        http_get(
            meta.location,
            sink,  # type: ignore[arg-type]
            resume_size=resumed,
            headers=build_hf_headers(token=token),
            expected_size=size,
            displayed_filename=item.name,
            tqdm_class=_silent_tqdm(),
        )
    digest = sha256_file(partial)
    checked = "none"
    if item.sha256:
        checked = "catalog"
        expected = item.sha256.lower()
    elif _SHA256.match(etag):  # LFS files: the Hub's ETag is the file's sha256
        checked = "hub-lfs-etag"
        expected = etag
    else:
        expected = digest
    if digest != expected:
        partial.unlink(missing_ok=True)
        raise ChecksumMismatch(
            f"{spec.id}: {item.name} has sha256 {digest}, expected {expected} "
            f"({'catalog' if checked == 'catalog' else 'Hub LFS hash'}); refused and removed",
            model=spec.id,
        )
    target = directory / item.name
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(partial, target)
    pulled = PulledFile(
        name=item.name,
        sha256=digest,
        size_bytes=target.stat().st_size,
        verified=checked == "catalog",
        checked_against=checked,
        resumed_from=resumed,
    )
    return pulled, meta.commit_hash


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


class _ProgressFile:
    """The partial file as ``http_get`` sees it, reporting each written chunk."""

    def __init__(
        self,
        handle: BinaryIO,
        name: str,
        total: int | None,
        callback: ProgressCallback | None,
    ) -> None:
        self._handle = handle
        self._name = name
        self._total = total
        self._callback = callback
        if callback:
            callback(name, handle.tell(), total)

    def write(self, data: bytes) -> int:
        written = self._handle.write(data)
        if self._callback:
            self._callback(self._name, self._handle.tell(), self._total)
        return written

    def __getattr__(self, name: str) -> Any:  # seek, tell, truncate, flush ...
        return getattr(self._handle, name)


def _silent_tqdm() -> Any:
    """huggingface_hub draws its own tqdm bar; ours (Rich, in the CLI) replaces it."""
    from tqdm.auto import tqdm

    class Silent(tqdm):  # type: ignore[misc,type-arg,unused-ignore]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    return Silent


@contextlib.contextmanager
def _exclusive(directory: Path) -> Iterator[None]:
    """One pull per model at a time (across processes)."""
    lock_path = directory.parent / f".{directory.name}.lock"
    with open(lock_path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Conflict(f"another pull of {directory.name} is running") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _failure(spec: ModelSpec, item: ModelFile | None, exc: Exception) -> PullFailed:
    """A PullFailed that says which file, and whether running the pull again can help."""
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    name = item.name if item else "?"
    where = f"{spec.repo}@{spec.revision}"
    if isinstance(exc, GatedRepoError):
        advice = "the repository is gated: accept its terms on the Hub and set HF_TOKEN"
    elif isinstance(exc, RepositoryNotFoundError):
        advice = f"repository {spec.repo} not found (or private: set HF_TOKEN)"
    elif isinstance(exc, RevisionNotFoundError):
        advice = f"revision {spec.revision} not found in {spec.repo}"
    elif isinstance(exc, EntryNotFoundError):
        advice = f"{name} not found in {where}"
    else:
        return PullFailed(
            f"downloading {spec.id} ({name} from {where}) failed: {type(exc).__name__}: "
            f"{_first_line(exc)}; run `opensight models pull {spec.id}` again to resume",
            model=spec.id,
        )
    return PullFailed(f"cannot download {spec.id}: {advice}", model=spec.id)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""
