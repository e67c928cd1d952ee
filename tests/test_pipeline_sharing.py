"""One job, one image, one text-detector map: ``ocr`` and ``watermark`` share the DB map.

Both look at a large photo at 800 px (``ocr``'s coarse look, ``watermark``'s ``text_side``);
the map is kept on the decoded image (``ocr.probability_memo``), so the detector runs once
for both, and the results are the same as when each analyzer runs alone.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
import pytest

from opensight.analyzers import ocr
from opensight.analyzers.pipeline import Pipeline
from opensight.images import DecodedImage

ws = pytest.importorskip("bench.watermark_set", reason="bench/ is not importable")
pytestmark = pytest.mark.skipif(
    ocr.rapidocr_model_dir() is None, reason="rapidocr-onnxruntime not installed"
)


@cache
def marked_photo(name: str = "coffee", long_side: int = 1225) -> np.ndarray:
    """A ~1 MP photo with a semi-transparent caption (text for both analyzers)."""
    from skimage import data

    rgb = ws.resize_long(ws._rgb(getattr(data, name)()), long_side)
    marked, _, _ = ws.add_text(
        rgb, np.random.default_rng(3), opacity=0.5, where="bottom-right", text="© 2024 Jane Doe"
    )
    return np.ascontiguousarray(marked)


@pytest.fixture
def detector_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """The canvas shape (H, W) of every real run of the DB detector."""
    calls: list[tuple[int, int]] = []
    original = ocr.RapidEngine._probability

    def counted(self: ocr.RapidEngine, bgr: np.ndarray, scale: float) -> tuple[np.ndarray, int]:
        prob, margin = original(self, bgr, scale)
        calls.append(prob.shape)
        return prob, margin

    monkeypatch.setattr(ocr.RapidEngine, "_probability", counted)
    return calls


def run(rgb: np.ndarray, features: list[str]) -> dict[str, Any]:
    return Pipeline().run_one(DecodedImage.from_array(rgb), features).results


def test_ocr_and_watermark_run_the_detector_once_on_a_photo(
    detector_calls: list[tuple[int, int]],
) -> None:
    rgb = marked_photo()
    both = run(rgb, ["ocr", "watermark"])
    whole_image_maps = [shape for shape in detector_calls if shape == (576, 832)]
    assert len(whole_image_maps) == 1, detector_calls  # 1225 x 816 at 800 px: 832 x 576 canvas
    assert "Jane Doe" in both["ocr"]["text"]
    assert both["watermark"]["watermarked"]

    detector_calls.clear()
    alone = {name: run(rgb, [name])[name] for name in ("ocr", "watermark")}
    assert [shape for shape in detector_calls if shape == (576, 832)] == [(576, 832)] * 2
    assert alone == both  # sharing the map changes nothing in either result


def test_the_map_is_never_shared_between_images(detector_calls: list[tuple[int, int]]) -> None:
    first, second = marked_photo("coffee"), marked_photo("chelsea")
    images = [DecodedImage.from_array(first), DecodedImage.from_array(second)]
    outcomes = Pipeline().run(images, ["ocr", "watermark"])
    assert len([s for s in detector_calls if s == (576, 832)]) == 2  # one per image
    again = run(second, ["ocr", "watermark"])
    assert outcomes[1].results == again


def test_read_text_reuses_a_memo_and_gives_the_same_text(
    detector_calls: list[tuple[int, int]],
) -> None:
    rgb = marked_photo()
    memo: ocr.ProbabilityMemo = {}
    first = ocr.read_text(rgb, memo=memo)
    runs = len(detector_calls)
    assert runs >= 1 and len(memo) == 1
    assert ocr.read_text(rgb, memo=memo) == first
    # the coarse look came from the memo: only the regions around the text ran again
    again = detector_calls[runs:]
    assert again and all(shape != (576, 832) for shape in again)
    assert ocr.read_text(rgb) == first  # without a memo: the same reading
