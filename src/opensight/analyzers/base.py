"""The analyzer contract: a name, a version, what it needs, and a batch method.

Analyzers know images and models only -- never HTTP, jobs or the database.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..images import DecodedImage


@dataclass(frozen=True)
class Readiness:
    ready: bool
    missing: list[str] = field(default_factory=list)
    """Human-readable things to install or pull, e.g. 'opensight models pull siglip-base'."""


@dataclass
class AnalysisContext:
    """What an analyzer may read besides the pixels: options and earlier results."""

    options: Mapping[str, Any] = field(default_factory=dict)
    """Per-request options, keyed by analyzer name then option name."""
    previous: list[dict[str, Any]] = field(default_factory=list)
    """One dict per image: results of the analyzers that ran before, by name."""

    def options_for(self, name: str) -> Mapping[str, Any]:
        value = self.options.get(name, {})
        return value if isinstance(value, Mapping) else {}


class Analyzer(ABC):
    """Base class of every analyzer. Subclasses set the class attributes."""

    name: ClassVar[str]
    version: ClassVar[str]
    description: ClassVar[str] = ""
    license: ClassVar[str] = "Apache-2.0"
    requires: ClassVar[tuple[str, ...]] = ()
    """Other analyzers whose results this one reads (run first, same image)."""
    model: ClassVar[str | None] = None
    """Model id from the runtime registry, or None for classical analyzers."""

    def readiness(self) -> Readiness:
        return Readiness(ready=True)

    @abstractmethod
    def analyze(
        self, images: Sequence[DecodedImage], context: AnalysisContext
    ) -> list[dict[str, Any]]:
        """Return one JSON-serialisable dict per image, in order."""

    def describe(self) -> dict[str, Any]:
        ready = self.readiness()
        return {
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "license": self.license,
            "requires": list(self.requires),
            "model": self.model,
            "ready": ready.ready,
            "missing": ready.missing,
        }
