"""The ocr detector's coarse look: a large image is detected at full scale only where
text was seen at ``det_coarse_side``, with the same reading as the whole-image pass."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw

from opensight.analyzers import ocr
from opensight.analyzers.ocr import OcrOptions, read_text
from opensight.errors import ValidationFailed

from .test_ocr import font, needs_rapidocr

COARSE = OcrOptions(det_coarse_side=640)
"""A coarser look than the default (800, the watermark's ``text_side``): smaller maps here."""


def photo_like(width: int = 1200, height: int = 800) -> np.ndarray:
    """A smooth colour gradient with soft blobs: photo-sized, no text, no sharp edges."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    rgb = np.stack(
        [x / width * 200 + 30, y / height * 180 + 40, (x + y) / (width + height) * 150 + 60], -1
    )
    rgb += 25 * np.sin(x / 97.0)[..., None] * np.cos(y / 71.0)[..., None]
    return np.clip(rgb, 0, 255).astype(np.uint8)


def with_text(rgb: np.ndarray, text: str, at: tuple[int, int], size: int = 44) -> np.ndarray:
    image = Image.fromarray(rgb)
    ImageDraw.Draw(image).text(
        at, text, font=font(size), fill=(255, 255, 255), stroke_width=2, stroke_fill=(0, 0, 0)
    )
    return np.asarray(image)


@pytest.fixture
def detector_inputs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[int, ...]]]:
    """The input shapes of every detector run, recorded on the real engine."""
    engine = ocr.rapid_engine()
    shapes: list[tuple[int, ...]] = []
    real_run = engine._run

    def run(session: Any, batch: np.ndarray) -> np.ndarray:
        if session is engine.det:
            shapes.append(tuple(batch.shape))
        return real_run(session, batch)

    monkeypatch.setattr(engine, "_run", run)
    yield shapes


@needs_rapidocr
def test_a_photo_without_text_costs_one_coarse_look(detector_inputs: list[tuple[int, ...]]) -> None:
    result = read_text(photo_like(), COARSE)
    assert result["lines"] == [] and result["text"] == ""
    assert len(detector_inputs) == 1
    _, _, height, width = detector_inputs[0]
    assert max(height, width) <= COARSE.det_coarse_side + 64  # margin, stride


@needs_rapidocr
def test_text_is_detected_at_full_scale_around_what_the_coarse_look_saw(
    detector_inputs: list[tuple[int, ...]],
) -> None:
    rgb = with_text(photo_like(), "Grand Opening Today", (700, 600))
    result = read_text(rgb, COARSE)
    assert result["text"] == "Grand Opening Today"
    x, y, w, _h = result["lines"][0]["box"]
    assert 680 <= x <= 720 and 580 <= y <= 620 and w > 300
    _coarse, *regions = detector_inputs
    assert regions, "the text's region was detected at full scale"
    full_pixels = 1200 * 800
    assert sum(s[2] * s[3] for s in regions) < full_pixels / 4  # only around the text

    detector_inputs.clear()
    whole = read_text(rgb, OcrOptions(det_coarse_side=0))
    assert whole["text"] == result["text"]
    assert (
        len(detector_inputs) == 1 and detector_inputs[0][2] * detector_inputs[0][3] >= full_pixels
    )


@needs_rapidocr
def test_small_images_are_detected_whole(detector_inputs: list[tuple[int, ...]]) -> None:
    rgb = with_text(photo_like(700, 460), "Fresh Fish", (100, 100))
    assert read_text(rgb, COARSE)["text"] == "Fresh Fish"
    assert len(detector_inputs) == 1  # 700 px is too close to 640 for a coarse look to pay
    _, _, height, width = detector_inputs[0]
    assert max(height, width) > 700


def test_det_coarse_side_is_validated() -> None:
    assert OcrOptions.from_mapping({"det_coarse_side": 0}).det_coarse_side == 0
    assert OcrOptions.from_mapping({"det_coarse_side": 480}).det_coarse_side == 480
    with pytest.raises(ValidationFailed):
        OcrOptions.from_mapping({"det_coarse_side": 8})
