"""A queued job waits out a saturated model instead of failing (sync callers get 503)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from opensight.analyzers.pipeline import Outcome
from opensight.config import Settings
from opensight.errors import Overloaded
from opensight.images import DecodedImage
from opensight.services import analysis
from opensight.services.analysis import AnalysisService


class FlakyPipeline:
    """Full queue for the first ``busy`` calls, then a result."""

    def __init__(self, busy: int) -> None:
        self.busy = busy
        self.calls = 0

    def run_one(self, image: Any, features: Any, options: Any, skip_on: Any) -> Outcome:
        self.calls += 1
        if self.calls <= self.busy:
            raise Overloaded("model queue full", retry_after=0.01)
        return Outcome(results={"x": {"ok": True}})


def _service(pipeline: FlakyPipeline) -> AnalysisService:
    return AnalysisService(Settings(), images=None, jobs=None, pipeline=pipeline)  # type: ignore[arg-type]


def _image() -> DecodedImage:
    return DecodedImage.from_array(np.zeros((8, 8, 3), np.uint8))


def test_a_worker_waits_for_capacity_and_completes() -> None:
    pipeline = FlakyPipeline(busy=3)
    outcome = _service(pipeline)._run_waiting_for_capacity(_image(), ["x"], {}, [])
    assert outcome.results == {"x": {"ok": True}}
    assert pipeline.calls == 4


def test_a_model_that_stays_saturated_fails_the_job(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(analysis, "OVERLOAD_PATIENCE_SECONDS", 0.3)
    pipeline = FlakyPipeline(busy=10_000)
    with pytest.raises(Overloaded):
        _service(pipeline)._run_waiting_for_capacity(_image(), ["x"], {}, [])
    assert 1 < pipeline.calls < 100
