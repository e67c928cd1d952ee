"""Which analyzers exist. Built-ins register on import; others via ``register``."""

from __future__ import annotations

import importlib
from collections.abc import Iterable

from ..errors import UnknownFeature
from .base import Analyzer

_REGISTRY: dict[str, Analyzer] = {}
_BUILTINS_LOADED = False


def register(analyzer: Analyzer) -> Analyzer:
    """Add (or replace) an analyzer instance under its name."""
    _REGISTRY[analyzer.name] = analyzer
    return analyzer


#: Modules of the built-in analyzers; each registers itself on import.
BUILTIN_MODULES = (
    "quality",
    "metadata",
    "ocr",
    "moderation",
    "anatomy",
    "faces",
    "colors",
    "hashes",
    "watermark",
    "caption",
    "ask",
    "embedding",
    "tags",
    "objects",
    "detect",
)


def _load_builtins() -> None:
    global _BUILTINS_LOADED
    if _BUILTINS_LOADED:
        return
    _BUILTINS_LOADED = True
    for module in BUILTIN_MODULES:
        name = f"{__package__}.{module}"
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # a dependency is missing: that is a real error
                raise


def all_analyzers() -> dict[str, Analyzer]:
    _load_builtins()
    return dict(sorted(_REGISTRY.items()))


def get(name: str) -> Analyzer:
    _load_builtins()
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise UnknownFeature(f"unknown feature {name!r}; known: {known}") from None


DEFAULT_FEATURES: tuple[str, ...] = ("quality", "metadata")


def resolve_order(features: Iterable[str]) -> list[str]:
    """Requested features plus what they require, dependencies first (stable)."""
    ordered: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in ordered:
            return
        if name in visiting:
            raise UnknownFeature(f"analyzer dependency cycle at {name!r}")
        visiting.add(name)
        for dep in get(name).requires:
            visit(dep)
        visiting.discard(name)
        ordered.append(name)

    for feature in features:
        visit(feature)
    return ordered


def normalize_features(features: Iterable[str] | str | None) -> list[str]:
    """Parse a comma list or list of names; validate them; keep the caller's order."""
    if features is None:
        return list(DEFAULT_FEATURES)
    if isinstance(features, str):
        features = features.split(",")
    names: list[str] = []
    for raw in features:
        name = str(raw).strip().lower()
        if name and name not in names:
            get(name)
            names.append(name)
    return names or list(DEFAULT_FEATURES)
