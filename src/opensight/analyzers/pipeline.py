"""Run requested analyzers in dependency order over images decoded once."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import ValidationFailed
from ..images import DecodedImage
from . import registry
from .base import AnalysisContext

TimingHook = Callable[[str, float], None]

#: Skip reasons a caller may gate on, and the quality issue / moderation flag behind each.
GATE_REASONS = ("blurry", "dark", "bright", "close", "offensive")


@dataclass
class Outcome:
    """The result of one image: every requested feature's output, or why it stopped."""

    results: dict[str, Any] = field(default_factory=dict)
    skipped_reason: str | None = None

    @property
    def status(self) -> str:
        return "skipped" if self.skipped_reason else "completed"


class Pipeline:
    """Runs features over a batch. ``on_timing`` receives (analyzer, seconds) per call."""

    def __init__(
        self,
        on_timing: TimingHook | None = None,
        defaults: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.on_timing = on_timing
        self.defaults = dict(defaults or {})
        """Operator defaults per analyzer (``OPENSIGHT_ANALYZER_OPTIONS``), under each
        request's options. Checked here, so a typo stops the server at start."""
        for name, values in self.defaults.items():
            registry.get(name)  # UnknownFeature names the known analyzers
            if not isinstance(values, Mapping):
                raise ValidationFailed(f"analyzer options of {name!r} must be an object")

    def _with_defaults(self, options: Mapping[str, Any] | None) -> Mapping[str, Any]:
        if not self.defaults:
            return options or {}
        merged = dict(options or {})
        for name, values in self.defaults.items():
            given = merged.get(name)
            merged[name] = {**values, **(given if isinstance(given, Mapping) else {})}
        return merged

    def run(
        self,
        images: Sequence[DecodedImage],
        features: Sequence[str],
        options: Mapping[str, Any] | None = None,
        skip_on: Sequence[str] = (),
    ) -> list[Outcome]:
        """Analyze ``images``; with ``skip_on``, stop an image early at a gate reason.

        Gates let a front end (CloudSight) refuse blurry or offensive images
        before expensive analyzers run: the quality analyzer's ``issues`` and the
        moderation analyzer's ``offensive`` flag are checked after each runs.
        """
        order = registry.resolve_order(features)
        requested = set(features)
        outcomes = [Outcome() for _ in images]
        previous: list[dict[str, Any]] = [{} for _ in images]
        active = list(range(len(images)))
        gates = set(skip_on)
        options = self._with_defaults(options)
        for name in order:
            if not active:
                break
            analyzer = registry.get(name)
            context = AnalysisContext(options=options, previous=[previous[i] for i in active])
            started = time.perf_counter()
            results = analyzer.analyze([images[i] for i in active], context)
            if self.on_timing:
                self.on_timing(name, time.perf_counter() - started)
            still_active = []
            for index, result in zip(active, results, strict=True):
                result.setdefault("version", analyzer.version)  # every result says who made it
                previous[index][name] = result
                if name in requested:
                    outcomes[index].results[name] = result
                reason = _gate_reason(name, result, gates)
                if reason:
                    outcomes[index].skipped_reason = reason
                else:
                    still_active.append(index)
            active = still_active
        return outcomes

    def run_one(
        self,
        image: DecodedImage,
        features: Sequence[str],
        options: Mapping[str, Any] | None = None,
        skip_on: Sequence[str] = (),
    ) -> Outcome:
        return self.run([image], features, options, skip_on)[0]


def _gate_reason(name: str, result: Mapping[str, Any], gates: set[str]) -> str | None:
    if not gates:
        return None
    if name == "quality":
        for issue in result.get("issues", []):
            if issue in gates:
                return str(issue)
    if name == "moderation" and "offensive" in gates and result.get("offensive"):
        return "offensive"
    return None
