"""The colors and watermark analyzers (classical, no models)."""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
import pytest

from opensight.analyzers import AnalysisContext, registry
from opensight.analyzers.colors import ColorsAnalyzer, ciede2000, nearest_names, palette, to_lab
from opensight.analyzers.pipeline import Pipeline
from opensight.analyzers.watermark import WatermarkAnalyzer, detect
from opensight.errors import ValidationFailed
from opensight.images import DecodedImage

ws = pytest.importorskip("bench.watermark_set", reason="bench/ is not importable")


@cache
def photo(name: str, long_side: int = 800) -> np.ndarray:
    from skimage import data

    return ws.resize_long(ws._rgb(getattr(data, name)()), long_side)


def as_image(rgb: np.ndarray) -> DecodedImage:
    return DecodedImage.from_array(rgb)


def colors(rgb: np.ndarray, **options: Any) -> dict[str, Any]:
    context = AnalysisContext(options={"colors": options} if options else {})
    return ColorsAnalyzer().analyze([as_image(rgb)], context)[0]


# ---------------------------------------------------------------------------- colors


def test_two_colour_image_gives_both_colours_with_their_shares() -> None:
    rgb = np.zeros((300, 400, 3), np.uint8)
    rgb[:, :280] = (255, 0, 0)  # 70 %
    rgb[:, 280:] = (0, 0, 255)  # 30 %
    result = colors(rgb)
    entries = result["palette"]
    assert [e["name"] for e in entries] == ["red", "blue"]
    assert entries[0]["hex"] == "#ff0000" and entries[0]["rgb"] == [255, 0, 0]
    assert entries[1]["hex"] == "#0000ff"
    assert entries[0]["share"] == pytest.approx(0.7, abs=0.02)
    assert entries[1]["share"] == pytest.approx(0.3, abs=0.02)
    assert sum(e["share"] for e in entries) == pytest.approx(1.0, abs=1e-3)
    assert result["dominant"] == "#ff0000"
    assert result["grayscale"] is False
    assert result["mean"]["rgb"] == pytest.approx([178, 0, 76], abs=3)


def test_palette_is_sorted_by_share_and_capped_at_k() -> None:
    result = colors(photo("astronaut"))
    shares = [e["share"] for e in result["palette"]]
    assert len(shares) == 5
    assert shares == sorted(shares, reverse=True)
    assert all(0 < s <= 1 for s in shares)
    assert len(colors(photo("astronaut"), k=3)["palette"]) == 3
    for entry in result["palette"]:
        assert entry["hex"] == "#{:02x}{:02x}{:02x}".format(*entry["rgb"])


def test_palette_is_deterministic() -> None:
    rgb = photo("coffee")
    assert palette(rgb) == palette(rgb.copy())


def test_grayscale_photo_and_colour_photos() -> None:
    assert colors(photo("camera"))["grayscale"] is True
    assert colors(photo("moon"))["grayscale"] is True
    for name in ("astronaut", "coffee", "chelsea", "hubble_deep_field"):
        assert colors(photo(name))["grayscale"] is False, name


def test_names_are_sane() -> None:
    probes = np.array(
        [[255, 0, 0], [0, 0, 255], [0, 0, 0], [255, 255, 255], [255, 165, 0], [128, 128, 128]],
        np.uint8,
    )
    assert nearest_names(probes) == ["red", "blue", "black", "white", "orange", "gray"]
    near = np.array([[250, 5, 5], [0, 0, 128], [45, 200, 45], [250, 250, 245]], np.uint8)
    assert nearest_names(near) == ["red", "navy", "limegreen", "whitesmoke"]
    assert colors(np.full((32, 32, 3), (255, 0, 0), np.uint8))["palette"][0]["name"] == "red"


def test_ciede2000_reference_pair() -> None:
    # Sharma, Wu & Dalal (2005), test pair 1: 2.0425.
    d = ciede2000(np.array([50.0, 2.6772, -79.7751]), np.array([50.0, 0.0, -82.7485]))
    assert float(d) == pytest.approx(2.0425, abs=1e-4)
    assert to_lab(np.array([[255, 0, 0]]))[0] == pytest.approx([53.24, 80.09, 67.20], abs=0.1)


def test_single_colour_and_tiny_images() -> None:
    result = colors(np.full((5, 7, 3), 200, np.uint8))
    assert len(result["palette"]) == 1
    assert result["palette"][0]["share"] == 1.0
    assert result["grayscale"] is True
    assert colors(np.zeros((1, 1, 3), np.uint8))["dominant"] == "#000000"


@pytest.mark.parametrize(
    "options",
    [
        {"k": 0},
        {"k": 17},
        {"k": 2.5},
        {"k": "x"},
        {"k": True},
        {"working_size": 8},
        {"min_share": 0.9},
    ],
)
def test_colors_options_are_validated(options: dict[str, Any]) -> None:
    with pytest.raises(ValidationFailed):
        colors(np.zeros((8, 8, 3), np.uint8), **options)


# ---------------------------------------------------------------------------- watermark


def test_clean_photo_has_no_detections() -> None:
    for name in ("astronaut", "coffee", "rocket"):
        result = detect(photo(name))
        assert result == {"detections": [], "watermarked": False}, name


def test_tiled_text_at_40_percent_is_a_pattern() -> None:
    rng = np.random.default_rng(0)
    marked, _, _ = ws.add_pattern(
        photo("astronaut"), rng, opacity=0.4, text="SAMPLE", angle=30.0, colour=(255, 255, 255)
    )
    result = detect(marked)
    assert result["watermarked"] is True
    assert [d["name"] for d in result["detections"]] == ["pattern"]
    top = result["detections"][0]
    assert top["box"] == [0, 0, 800, 800]
    assert 0.5 <= top["confidence"] <= 1.0


def test_bottom_banner_is_a_banner() -> None:
    rng = np.random.default_rng(0)
    marked, box, _ = ws.add_banner(photo("astronaut"), rng, where="bottom", band_opacity=0.5)
    result = detect(marked)
    assert result["watermarked"] is True
    names = [d["name"] for d in result["detections"]]
    assert names[0] == "banner"
    _, y, w, h = result["detections"][0]["box"]
    assert w == 800 and abs(y - box[1]) <= 6 and abs((y + h) - 800) <= 2


def test_page_and_natural_text_are_not_watermarked() -> None:
    from skimage import data

    assert detect(ws._rgb(data.page()))["watermarked"] is False
    assert detect(photo("page"))["watermarked"] is False
    assert detect(ws._rgb(data.text()))["watermarked"] is False


def test_letterbox_bars_are_not_a_banner() -> None:
    bars = ws.add_letterbox(photo("coffee"), np.random.default_rng(1))
    assert detect(bars)["watermarked"] is False


def test_watermark_via_pipeline_and_options() -> None:
    assert "watermark" in registry.all_analyzers()
    assert "colors" in registry.all_analyzers()
    outcome = Pipeline().run_one(as_image(photo("astronaut")), ["watermark", "colors"])
    assert outcome.results["watermark"]["watermarked"] is False
    assert outcome.results["watermark"]["version"] == WatermarkAnalyzer.version
    assert outcome.results["colors"]["version"] == ColorsAnalyzer.version
    with pytest.raises(ValidationFailed):
        WatermarkAnalyzer().analyze(
            [as_image(photo("astronaut"))],
            AnalysisContext(options={"watermark": {"working_size": 10}}),
        )
    with pytest.raises(ValidationFailed):
        WatermarkAnalyzer().analyze(
            [as_image(photo("astronaut"))],
            AnalysisContext(options={"watermark": {"min_confidence": "x"}}),
        )


def test_tiny_image_is_not_analysed() -> None:
    assert detect(np.zeros((16, 16, 3), np.uint8)) == {"detections": [], "watermarked": False}
