"""The watermark analyzer's single marks: overlaid text and logos (OCR text detector + cues)."""

from __future__ import annotations

from functools import cache
from typing import Any

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw

from opensight.analyzers import AnalysisContext
from opensight.analyzers import _watermark_text as wt
from opensight.analyzers.watermark import WatermarkAnalyzer, WatermarkOptions, detect
from opensight.errors import ValidationFailed
from opensight.images import DecodedImage

ws = pytest.importorskip("bench.watermark_set", reason="bench/ is not importable")
needs_detector = pytest.mark.skipif(
    not wt.detector_available(), reason="rapidocr-onnxruntime (the text detector) not installed"
)


@cache
def photo(name: str, long_side: int = 800) -> np.ndarray:
    from skimage import data

    return ws.resize_long(ws._rgb(getattr(data, name)()), long_side)


def centre_inside(box: list[int], truth: tuple[int, int, int, int]) -> bool:
    x, y, w, h = box
    tx, ty, tw, th = truth
    return tx <= x + w / 2 <= tx + tw and ty <= y + h / 2 <= ty + th


def marks(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [d for d in result["detections"] if d["name"] in ("text", "logo")]


@needs_detector
@pytest.mark.parametrize(
    ("name", "where", "opacity", "colour"),
    [
        ("coffee", "bottom-right", 0.35, (255, 255, 255)),
        ("astronaut", "top-left", 0.3, (255, 255, 255)),
        ("chelsea", "centre", 0.25, (0, 0, 0)),
    ],
)
def test_semi_transparent_text_is_found_where_it_is(
    name: str, where: str, opacity: float, colour: tuple[int, int, int]
) -> None:
    rng = np.random.default_rng(7)
    marked, box, _ = ws.add_text(
        photo(name), rng, opacity=opacity, where=where, text="© 2024 Jane Doe", colour=colour
    )
    result = detect(marked)
    assert result["watermarked"] is True
    found = marks(result)
    assert found, result
    assert centre_inside(found[0]["box"], box)
    assert 0.5 <= found[0]["confidence"] <= 1.0


@needs_detector
def test_logo_with_initials_is_found() -> None:
    rng = np.random.default_rng(3)
    marked, box, _ = ws.add_logo(photo("coffee"), rng, opacity=0.4, where="bottom-right")
    result = detect(marked)
    assert result["watermarked"] is True
    assert any(centre_inside(d["box"], box) for d in marks(result))


@needs_detector
def test_rows_of_coins_are_not_a_page_that_hides_a_logo() -> None:
    """The stroke grouping takes the rows of coins for lines of a page (which would hide
    every mark); the text detector does not read a page there, so its overlay boxes count,
    while a real page stays a page and the clean photo stays clean."""
    from opensight.analyzers import watermark

    coins = photo("coins")
    small = watermark._downscale(coins, 512)
    gray = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32)
    assert watermark._is_document(watermark.text_lines(gray, watermark.DEFAULTS))
    assert not watermark._detector_sees_page(coins, watermark.DEFAULTS, None)
    page = ws.resize_long(ws.text_photos()["page"], 800)
    assert watermark._detector_sees_page(page, watermark.DEFAULTS, None)
    assert detect(coins)["watermarked"] is False
    for seed in (2, 3, 5, 6):
        marked, box, _ = ws.add_logo(
            coins, np.random.default_rng(seed), opacity=0.45, where="top-left"
        )
        assert any(centre_inside(d["box"], box) for d in marks(detect(marked))), seed


@needs_detector
def test_opaque_sign_in_the_scene_is_not_a_watermark() -> None:
    """The same words on an opaque board inside the photo are scene text."""
    flagged = 0
    for seed in range(6):
        signed = ws.add_sign(photo("coffee"), np.random.default_rng(seed))
        flagged += detect(signed)["watermarked"]
    assert flagged <= 1


@needs_detector
def test_text_side_zero_never_runs_the_detector(monkeypatch: pytest.MonkeyPatch) -> None:
    """``text_side: 0`` gives the classical analysis only, without touching the detector."""
    rng = np.random.default_rng(7)
    marked, _, _ = ws.add_text(
        photo("coffee"), rng, opacity=0.35, where="bottom-right", text="© 2024 Jane Doe"
    )

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the text detector ran")

    monkeypatch.setattr(wt, "overlay_boxes", boom)
    result = detect(marked, WatermarkOptions(text_side=0))
    assert set(result) == {"detections", "watermarked"}
    with pytest.raises(AssertionError, match="detector ran"):
        detect(marked)


def test_missing_detector_falls_back_to_the_classical_marks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(1)
    marked, _, _ = ws.add_text(photo("astronaut"), rng, opacity=0.5, where="bottom-left")
    classical = detect(marked, WatermarkOptions(text_side=0))
    monkeypatch.setattr(wt, "detector_available", lambda: False)
    assert detect(marked) == classical


def test_stroke_level_is_the_opacity_of_a_white_overlay() -> None:
    """On a textured background, ``rho`` of the strokes of a white overlay is its opacity."""
    rng = np.random.default_rng(0)
    noise = rng.normal(110, 150, (240, 480)).astype(np.float32)
    base = np.clip(cv2.GaussianBlur(noise, (0, 0), 4), 0, 255).astype(np.uint8)
    rgb = np.stack([base] * 3, axis=-1)
    mask = Image.new("L", (480, 240), 0)
    font = ws.load_font(60, index=0)
    ImageDraw.Draw(mask).text((40, 80), "SAMPLE", fill=255, font=font)
    for opacity in (0.15, 0.3, 0.5):
        out = ws.blend(rgb, mask, (0, 0), (255, 255, 255), opacity)
        gray = out.mean(axis=2).astype(np.float32)
        grad = np.zeros_like(gray)
        x0, y0, x1, y1 = mask.getbbox()
        quad = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)
        tb = wt.TextBox(quad, (x0, y0, x1 - x0, y1 - y0), 0.9, 0.0)
        features = wt.box_features(out, gray, grad, tb)
        assert abs(features["level"] - opacity) < 0.06, (opacity, features["level"])


@pytest.mark.parametrize("options", [{"text_side": 50}, {"text_side": 5000}, {"text_side": "x"}])
def test_text_side_is_validated(options: dict[str, Any]) -> None:
    with pytest.raises(ValidationFailed):
        WatermarkAnalyzer().analyze(
            [DecodedImage.from_array(photo("coffee"))],
            AnalysisContext(options={"watermark": options}),
        )
