"""The ocr analyzer: reading order, rotation, inversion, coordinates, engines, options."""

from __future__ import annotations

import io
import shutil
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from opensight.analyzers import AnalysisContext, registry
from opensight.analyzers import ocr as ocr_module
from opensight.analyzers.ocr import OcrOptions, parse_tesseract_tsv, reading_order
from opensight.analyzers.pipeline import Pipeline
from opensight.errors import ValidationFailed
from opensight.images import decode

FONT_NAMES = ("DejaVuSans.ttf", "LiberationSans-Regular.ttf", "FreeSans.ttf", "Arial.ttf")
FONT_DIRS = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"), Path.home() / ".fonts")
PARAGRAPH = [
    "The first line of the paragraph,",
    "then comes the second line",
    "and the third one ends it.",
]

needs_rapidocr = pytest.mark.skipif(
    ocr_module.rapidocr_model_dir() is None, reason="rapidocr-onnxruntime is not installed"
)


@cache
def font_path() -> Path | None:
    for name in FONT_NAMES:
        for root in FONT_DIRS:
            if root.is_dir():
                found = next(iter(root.rglob(name)), None)
                if found is not None:
                    return found
    return None


def font(size: int) -> ImageFont.FreeTypeFont:
    path = font_path()
    if path is None:
        pytest.skip("no TrueType font found (apt-get install fonts-dejavu-core)")
    return ImageFont.truetype(str(path), size)


def render(
    lines: Sequence[str],
    size: int = 28,
    ink: tuple[int, int, int] = (0, 0, 0),
    paper: tuple[int, int, int] = (255, 255, 255),
    angle: float = 0.0,
    canvas: tuple[int, int] | None = None,
    at: tuple[int, int] = (40, 40),
) -> np.ndarray:
    """Lines of text 1.5 x ``size`` apart, on a canvas (default: just big enough),
    rotated ``angle`` degrees counter-clockwise."""
    face = font(size)
    step = round(size * 1.5)
    if canvas is None:
        width = max(round(face.getlength(line)) for line in lines) + 2 * at[0]
        canvas = (width, step * (len(lines) - 1) + size + 2 * at[1])
    image = Image.new("RGB", canvas, paper)
    draw = ImageDraw.Draw(image)
    for row, line in enumerate(lines):
        draw.text((at[0], at[1] + row * step), line, font=face, fill=ink)
    if angle:
        image = image.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=paper)
    return np.asarray(image)


def analyze(rgb: np.ndarray, **options: Any) -> dict[str, Any]:
    """The analyzer on a PNG of ``rgb`` decoded the way the server does it."""
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "PNG")
    image = decode(buffer.getvalue())
    context = AnalysisContext(options={"ocr": options} if options else {})
    return registry.get("ocr").analyze([image], context)[0]


def similarity(a: str, b: str) -> float:
    """1 - normalised edit distance."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return 1.0 - previous[-1] / max(len(a), len(b), 1)


def ink_bbox(rgb: np.ndarray, paper: tuple[int, int, int] = (255, 255, 255)) -> tuple[int, ...]:
    """x0, y0, x1, y1 (exclusive) of the pixels that are not paper."""
    ys, xs = np.nonzero(np.abs(rgb.astype(int) - np.array(paper)).sum(axis=2) > 60)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


# -- the rapidocr engine ----------------------------------------------------------------------


@needs_rapidocr
def test_reads_a_word_through_the_pipeline() -> None:
    buffer = io.BytesIO()
    Image.fromarray(render(["Hello"], size=40)).save(buffer, "PNG")
    outcome = Pipeline().run_one(decode(buffer.getvalue()), ["ocr"])
    result = outcome.results["ocr"]
    assert result["text"] == "Hello"
    assert [line["text"] for line in result["lines"]] == ["Hello"]
    assert result["engine"] == "rapidocr"
    assert result["language"] is None
    assert result["version"] == ocr_module.OcrAnalyzer.version
    line = result["lines"][0]
    assert 0.9 <= line["confidence"] <= 1.0
    assert len(line["polygon"]) == 4 and all(len(p) == 2 for p in line["polygon"])
    assert len(line["box"]) == 4


@needs_rapidocr
def test_reads_a_paragraph_in_order_with_its_spaces() -> None:
    result = analyze(render(PARAGRAPH))
    assert result["text"] == "\n".join(PARAGRAPH)
    assert [line["text"] for line in result["lines"]] == PARAGRAPH
    assert abs(result["angle"]) < 3
    tops = [line["box"][1] for line in result["lines"]]
    assert tops == sorted(tops)


@needs_rapidocr
@pytest.mark.parametrize("angle", [20, -30])
def test_reads_rotated_text(angle: float) -> None:
    result = analyze(render(PARAGRAPH, angle=angle))
    texts = [line["text"] for line in result["lines"]]
    assert len(texts) == 3, texts
    for read, truth in zip(texts, PARAGRAPH, strict=True):
        assert similarity(read, truth) >= 0.95, (read, truth)
    assert result["angle"] == pytest.approx(angle, abs=3)
    # the polygon follows the text: its top side is tilted by the angle
    (x0, y0), (x1, y1) = result["lines"][0]["polygon"][:2]
    assert -np.degrees(np.arctan2(y1 - y0, x1 - x0)) == pytest.approx(angle, abs=4)


@needs_rapidocr
def test_reads_tightly_spaced_tilted_lines_after_deskewing() -> None:
    face = font(24)
    image = Image.new("RGB", (760, 40 + 26 * 4), "white")
    draw = ImageDraw.Draw(image)
    lines = [
        "Store in a cool, dry place below 25 C.",
        "Keep out of reach of children.",
        "Press the red button twice to reset.",
        "All trains to Central Station are delayed.",
    ]
    for row, line in enumerate(lines):
        draw.text((20, 20 + row * 26), line, font=face, fill="black")
    rgb = np.asarray(image.rotate(25, expand=True, fillcolor="white", resample=Image.BICUBIC))
    result = analyze(rgb)
    assert similarity(result["text"], "\n".join(lines)) >= 0.97, result["text"]


@needs_rapidocr
@pytest.mark.parametrize(
    ("ink", "paper"), [((255, 255, 255), (0, 0, 0)), ((250, 235, 120), (30, 40, 90))]
)
def test_reads_light_text_on_dark(ink: tuple[int, int, int], paper: tuple[int, int, int]) -> None:
    result = analyze(render(PARAGRAPH, ink=ink, paper=paper))
    assert [line["text"] for line in result["lines"]] == PARAGRAPH


@needs_rapidocr
def test_reads_upside_down_text() -> None:
    result = analyze(render(PARAGRAPH, angle=180))
    assert [line["text"] for line in result["lines"]] == PARAGRAPH
    assert abs(result["angle"]) == pytest.approx(180, abs=3)


@needs_rapidocr
@pytest.mark.parametrize(
    ("canvas", "at", "size"),
    [
        ((900, 600), (310, 260), 36),  # detected at its own size
        ((2600, 1900), (900, 1100), 60),  # downscaled for the detector
        ((260, 90), (20, 25), 20),  # upscaled for the detector
    ],
)
def test_boxes_and_polygons_are_in_original_pixels(
    canvas: tuple[int, int], at: tuple[int, int], size: int
) -> None:
    rgb = render(["Polygons map back"], size=size, canvas=canvas, at=at)
    x0, y0, x1, y1 = ink_bbox(rgb)
    result = analyze(rgb)
    assert result["text"] == "Polygons map back"
    bx, by, bw, bh = result["lines"][0]["box"]
    slack = 2
    assert bx <= x0 + slack and by <= y0 + slack, (result["lines"][0]["box"], (x0, y0, x1, y1))
    assert bx + bw >= x1 - slack and by + bh >= y1 - slack
    assert bw * bh <= 3 * (x1 - x0) * (y1 - y0)  # and it is not the whole image
    polygon = np.array(result["lines"][0]["polygon"], np.float32)
    for corner in [(x0, y0), (x1 - 1, y0), (x1 - 1, y1 - 1), (x0, y1 - 1)]:
        assert cv2.pointPolygonTest(polygon, corner, True) >= -slack


@needs_rapidocr
def test_rotated_polygon_contains_the_rotated_text() -> None:
    rgb = render(["Rotated text reads fine"], size=32, angle=20)
    ys, xs = np.nonzero(rgb.min(axis=2) < 128)
    result = analyze(rgb)
    assert result["text"] == "Rotated text reads fine"
    polygon = np.array(result["lines"][0]["polygon"], np.float32)
    inside = [
        cv2.pointPolygonTest(polygon, (float(x), float(y)), True)
        for x, y in zip(xs, ys, strict=True)
    ]
    assert min(inside) >= -2
    # a rotated rectangle hugs the text far tighter than its axis-aligned box
    assert cv2.contourArea(polygon) < 0.7 * np.prod(result["lines"][0]["box"][2:])


@needs_rapidocr
@pytest.mark.parametrize("shape", [(240, 320), (16, 16), (1, 1)])
def test_an_image_without_text_has_no_lines(shape: tuple[int, int]) -> None:
    result = analyze(np.full((*shape, 3), 255, np.uint8))
    assert result["text"] == ""
    assert result["lines"] == []
    assert result["angle"] is None
    assert result["engine"] == "rapidocr"


@needs_rapidocr
def test_two_columns_are_read_one_after_the_other() -> None:
    left = ["Rivers and lakes", "hold most fresh", "water on land."]
    right = ["Glaciers hold", "even more of it", "frozen as ice."]
    face = font(24)
    image = Image.new("RGB", (700, 220), "white")
    draw = ImageDraw.Draw(image)
    for row, (a, b) in enumerate(zip(left, right, strict=True)):
        draw.text((30, 40 + row * 40), a, font=face, fill="black")
        draw.text((400, 40 + row * 40), b, font=face, fill="black")
    result = analyze(np.asarray(image))
    assert [line["text"] for line in result["lines"]] == left + right


@needs_rapidocr
def test_one_engine_per_process_shared_by_threads() -> None:
    assert ocr_module.rapid_engine() is ocr_module.rapid_engine()
    rgb = render(["Hello"], size=40)
    with ThreadPoolExecutor(max_workers=3) as pool:
        texts = list(pool.map(lambda _: analyze(rgb)["text"], range(3)))
    assert texts == ["Hello"] * 3


# -- reading order (geometry only) ------------------------------------------------------------


def quad(x: float, y: float, w: float, h: float) -> np.ndarray:
    return np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], np.float32)


def test_reading_order_rows_then_left_to_right() -> None:
    quads = [quad(300, 10, 100, 20), quad(10, 12, 100, 20), quad(10, 50, 200, 20)]
    assert reading_order(quads) == [[1, 0], [2]]


def test_reading_order_columns_of_text() -> None:
    left = [quad(10, 10 + 30 * i, 300, 20) for i in range(4)]
    right = [quad(360, 10 + 30 * i, 300, 20) for i in range(4)]
    title = [quad(10, -40, 500, 30)]
    order = reading_order(title + right + left)
    assert order == [[0], [5], [6], [7], [8], [1], [2], [3], [4]]


def test_reading_order_keeps_a_receipt_in_rows() -> None:
    labels = [quad(10, 10 + 30 * i, 300, 20) for i in range(4)]
    prices = [quad(500, 10 + 30 * i, 60, 20) for i in range(4)]
    assert reading_order(labels + prices) == [[i, i + 4] for i in range(4)]


def test_reading_order_of_tilted_lines() -> None:
    center = (200.0, 200.0)
    lines = [quad(50, 100 + 40 * i, 300, 24) for i in range(3)]
    tilted = [ocr_module._rotate_points(q, 25, center) for q in lines]
    assert reading_order(tilted[::-1], angle=25) == [[2], [1], [0]]


# -- options, readiness, Tesseract ------------------------------------------------------------


def test_options_are_validated() -> None:
    assert OcrOptions.from_mapping({}) == OcrOptions()
    assert OcrOptions.from_mapping({"engine": " Tesseract ", "psm": 6}).engine == "tesseract"
    assert OcrOptions.from_mapping({"unrelated": 1}) == OcrOptions()
    for bad in (
        {"engine": "abbyy"},
        {"text_score": "high"},
        {"box_thresh": -1},
        {"invert": 1},
        {"lang": "eng; rm -rf /"},
        {"det_max_side": 8},
    ):
        with pytest.raises(ValidationFailed):
            OcrOptions.from_mapping(bad)
    with pytest.raises(ValidationFailed):
        analyze(np.full((20, 20, 3), 255, np.uint8), engine="abbyy")


def test_readiness_needs_rapidocr_only() -> None:
    analyzer = registry.get("ocr")
    readiness = analyzer.readiness()
    described = analyzer.describe()
    assert described["name"] == "ocr" and described["license"] == "Apache-2.0"
    if ocr_module.rapidocr_model_dir() is not None:
        assert readiness.ready
    tesseract_missing = any("tesseract" in item for item in readiness.missing)
    assert tesseract_missing == (shutil.which("tesseract") is None)


def test_parse_tesseract_tsv_groups_words_into_lines() -> None:
    header = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext"
    rows = [
        "1\t1\t0\t0\t0\t0\t0\t0\t400\t200\t-1\t",
        "5\t1\t1\t1\t1\t1\t10\t20\t50\t18\t96.5\tHello",
        "5\t1\t1\t1\t1\t2\t70\t21\t60\t18\t91.0\tworld",
        "5\t1\t1\t1\t2\t1\t10\t60\t40\t18\t88.0\tagain",
        "5\t1\t1\t1\t2\t2\t60\t60\t40\t18\t-1\t ",
    ]
    lines = parse_tesseract_tsv("\n".join([header, *rows]) + "\n")
    assert [line.text for line in lines] == ["Hello world", "again"]
    first = lines[0].as_dict(400, 200)
    assert first["box"] == [10, 20, 120, 19]
    assert 0.9 < first["confidence"] < 0.97
    assert parse_tesseract_tsv("") == []


@pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract is not installed")
def test_tesseract_engine() -> None:
    result = analyze(render(PARAGRAPH), engine="tesseract")
    assert result["engine"] == "tesseract"
    assert [line["text"] for line in result["lines"]] == PARAGRAPH
    assert result["text"] == "\n".join(PARAGRAPH)
    x, y = result["lines"][0]["box"][:2]
    assert x >= 30 and y >= 30  # the text starts at (40, 40)
    empty = analyze(np.full((120, 200, 3), 255, np.uint8), engine="tesseract")
    assert empty["text"] == "" and empty["lines"] == []
