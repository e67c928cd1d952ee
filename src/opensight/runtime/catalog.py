"""Which models exist: id, tasks, source (repo, revision, files + sha256), licence, size.

Family modules under ``opensight.runtime.models`` register their specs on
import; the catalog imports them lazily on first lookup, so importing the
catalog stays cheap and a family that is not written yet is simply absent.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from ..errors import NotFound, ValidationFailed

Backend = Literal["onnx", "transformers"]

#: Model ids are directory names under the model dir: keep them path-safe.
MODEL_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class ModelFile:
    """One file of a model, as named in its source repo (may include a subfolder)."""

    name: str
    sha256: str | None = None
    """Expected lowercase hex digest; None when it could not be verified upstream."""
    size_bytes: int | None = None


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to fetch, verify, describe and load one model."""

    id: str
    tasks: tuple[str, ...]
    repo: str
    """Hugging Face repo id the files come from."""
    revision: str
    """Branch, tag or commit; a commit hash pins the exact bytes."""
    files: tuple[ModelFile, ...]
    license: str
    backend: Backend = "onnx"
    description: str = ""
    size_mb: float | None = None
    """Download size; None when unknown (never guessed)."""
    verified: bool = False
    """True only when every file's sha256 above was checked against the real upstream file."""
    config: Mapping[str, Any] = field(default_factory=dict)
    """Free-form input/output spec (image size, mean/std, labels file, ...) for the analyzer."""

    def __post_init__(self) -> None:
        if not MODEL_ID_PATTERN.match(self.id):
            raise ValueError(f"invalid model id {self.id!r}")
        for item in self.files:
            name = item.name
            if not name or name.startswith("/") or ".." in name.split("/") or "\\" in name:
                raise ValueError(f"model {self.id}: unsafe file name {name!r}")
        object.__setattr__(self, "tasks", tuple(self.tasks))
        object.__setattr__(self, "files", tuple(self.files))
        object.__setattr__(self, "config", MappingProxyType(dict(self.config)))

    @property
    def total_size_bytes(self) -> int | None:
        sizes = [f.size_bytes for f in self.files]
        return None if any(s is None for s in sizes) else sum(s or 0 for s in sizes)

    def describe(self) -> dict[str, Any]:
        """JSON-friendly summary (the CLI's ``models list --json`` entry, minus install state)."""
        return {
            "id": self.id,
            "tasks": list(self.tasks),
            "license": self.license,
            "backend": self.backend,
            "size_mb": self.size_mb,
            "repo": self.repo,
            "revision": self.revision,
            "verified": self.verified,
            "description": self.description,
            "files": [
                {"name": f.name, "sha256": f.sha256, "size_bytes": f.size_bytes} for f in self.files
            ],
        }


_SPECS: dict[str, ModelSpec] = {}
_LOCK = threading.RLock()
_FAMILIES_LOADED = False

#: Family modules (under ``opensight.runtime.models``) imported on first lookup. Any other
#: module found in that package is imported too, so a new family needs no edit here.
FAMILY_MODULES: tuple[str, ...] = ("siglip", "rtdetr", "dfine", "owlv2", "florence2")


def register(spec: ModelSpec) -> ModelSpec:
    """Add (or replace) a spec under its id."""
    with _LOCK:
        _SPECS[spec.id] = spec
    return spec


def _load_families() -> None:
    global _FAMILIES_LOADED
    if _FAMILIES_LOADED:
        return
    with _LOCK:
        if _FAMILIES_LOADED:
            return
        _FAMILIES_LOADED = True
        package = f"{__package__}.models"
        names = list(FAMILY_MODULES)
        try:
            pkg = importlib.import_module(package)
            names += [
                m.name for m in pkgutil.iter_modules(getattr(pkg, "__path__", [])) if not m.ispkg
            ]
        except ModuleNotFoundError:
            pass
        for module in dict.fromkeys(names):
            name = f"{package}.{module}"
            try:
                importlib.import_module(name)
            except ModuleNotFoundError as exc:
                if exc.name != name:  # a dependency is missing: that is a real error
                    raise
        from .store import current_settings

        extra = current_settings().model_catalog
        if extra is not None:
            for spec in load_file(Path(extra)):
                register(spec)


def spec_from_dict(data: Mapping[str, Any]) -> ModelSpec:
    """A spec from its JSON form (the ``describe()`` fields; files as names or objects)."""
    try:
        files = tuple(
            ModelFile(name=f) if isinstance(f, str) else ModelFile(**dict(f)) for f in data["files"]
        )
        total = sum(f.size_bytes or 0 for f in files)
        size_mb = data.get("size_mb")
        if size_mb is None and files and all(f.size_bytes is not None for f in files):
            size_mb = round(total / 1e6, 3)
        return ModelSpec(
            id=str(data["id"]),
            tasks=tuple(data.get("tasks", ())),
            repo=str(data["repo"]),
            revision=str(data.get("revision", "main")),
            files=files,
            license=str(data.get("license", "unknown")),
            backend=data.get("backend", "onnx"),
            description=str(data.get("description", "")),
            size_mb=size_mb,
            verified=bool(data.get("verified", all(f.sha256 for f in files))),
            config=dict(data.get("config", {})),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValidationFailed(f"invalid model spec {dict(data).get('id')!r}: {exc}") from exc


def load_file(path: Path) -> list[ModelSpec]:
    """Specs from a JSON file holding one spec object or an array of them."""
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ValidationFailed(f"cannot read model catalog {path}: {exc}") from exc
    items = data if isinstance(data, list) else [data]
    return [spec_from_dict(item) for item in items]


def all_specs() -> list[ModelSpec]:
    """Every registered model, sorted by id."""
    _load_families()
    with _LOCK:
        return [_SPECS[key] for key in sorted(_SPECS)]


def get(model_id: str) -> ModelSpec:
    """The spec of ``model_id``; unknown ids raise ``NotFound`` naming the known ones."""
    _load_families()
    with _LOCK:
        spec = _SPECS.get(model_id)
        known = ", ".join(sorted(_SPECS)) or "none"
    if spec is None:
        raise NotFound(f"unknown model {model_id!r}; known models: {known}")
    return spec


def check_id(model_id: str) -> str:
    """Refuse ids that cannot be a directory name (path traversal, separators)."""
    if not MODEL_ID_PATTERN.match(model_id):
        raise ValidationFailed(f"invalid model id {model_id!r}")
    return model_id
