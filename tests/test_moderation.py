"""The NudeNet-based analyzers (moderation, anatomy, faces) and their shared detector.

Only scikit-image's bundled photographs are used (and a synthetic colour
wheel, which the detector mistakes for a body part); no explicit imagery.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
import pytest
from PIL import Image

from opensight.analyzers import AnalysisContext, _nudenet, registry
from opensight.analyzers.faces import detect_faces, merge
from opensight.analyzers.moderation import EXPLICIT, SUGGESTIVE, ModerationOptions, moderate
from opensight.analyzers.pipeline import Pipeline
from opensight.errors import ValidationFailed
from opensight.images import DecodedImage

pytestmark = pytest.mark.skipif(
    bool(_nudenet.missing()), reason="nudenet / onnxruntime not installed"
)

PHOTOS = [
    "astronaut",
    "camera",
    "coffee",
    "chelsea",
    "rocket",
    "immunohistochemistry",
    "hubble_deep_field",
    "retina",
    "moon",
    "coins",
]
#: The astronaut's face in the 512 x 512 photo, (x0, y0, x1, y1): checked by eye.
ASTRONAUT_FACE = (150, 40, 300, 200)


@cache
def photo(name: str) -> np.ndarray:
    from skimage import data

    arr = getattr(data, name)()
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    return np.ascontiguousarray(arr[..., :3].astype(np.uint8))


def as_image(rgb: np.ndarray) -> DecodedImage:
    """A fresh DecodedImage (its own detection cache) around ``rgb``."""
    return DecodedImage.from_array(rgb)


def analyze(name: str, rgb: np.ndarray, **options: Any) -> dict[str, Any]:
    context = AnalysisContext(options={name: options} if options else {})
    return registry.get(name).analyze([as_image(rgb)], context)[0]


def overlap(box: list[int], region: tuple[int, int, int, int]) -> float:
    """Intersection over the box's own area, box as [x, y, w, h], region as x0, y0, x1, y1."""
    x, y, w, h = box
    ix = max(0, min(x + w, region[2]) - max(x, region[0]))
    iy = max(0, min(y + h, region[3]) - max(y, region[1]))
    return ix * iy / max(w * h, 1)


def resized(rgb: np.ndarray, longest: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    k = longest / max(h, w)
    size = (round(w * k), round(h * k))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS))


# -- moderation ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PHOTOS)
def test_photographs_are_safe(name: str) -> None:
    result = analyze("moderation", photo(name))
    assert result["offensive"] is False
    assert result["category"] == "safe"
    assert result["labels"] == []
    assert 0.0 <= result["nsfw_score"] < ModerationOptions().threshold


def test_crops_of_large_photographs_are_not_offensive() -> None:
    rng = np.random.default_rng(7)
    for name in ("astronaut", "coffee", "rocket", "hubble_deep_field", "retina"):
        rgb = photo(name)
        h, w = rgb.shape[:2]
        for _ in range(2):
            ch, cw = int(h * rng.uniform(0.3, 0.8)), int(w * rng.uniform(0.3, 0.8))
            y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
            result = analyze("moderation", rgb[y : y + ch, x : x + cw])
            assert result["offensive"] is False, (name, x, y, cw, ch, result)


def test_labels_are_well_formed_and_follow_the_thresholds() -> None:
    # The detector reads a colour wheel as exposed buttocks (~0.74): suggestive, never explicit.
    wheel = photo("colorwheel")
    result = analyze("moderation", wheel)
    assert result["category"] == "suggestive"
    assert result["offensive"] is False
    assert result["labels"], result
    for item in result["labels"]:
        assert set(item) == {"label", "confidence", "category"}
        assert item["label"] in EXPLICIT | SUGGESTIVE
        assert item["category"] == ("explicit" if item["label"] in EXPLICIT else "suggestive")
        assert isinstance(item["confidence"], float)
        assert 0.6 <= item["confidence"] <= 1.0
    confidences = [item["confidence"] for item in result["labels"]]
    assert confidences == sorted(confidences, reverse=True)
    # A stricter suggestive threshold makes it safe; offensive="suggestive" makes it offensive.
    assert analyze("moderation", wheel, suggestive_threshold=0.95)["category"] == "safe"
    strict = analyze("moderation", wheel, offensive="suggestive")
    assert strict["offensive"] is True and strict["category"] == "suggestive"


def test_categories_from_detections() -> None:
    def det(label: str, confidence: float) -> _nudenet.Detection:
        return _nudenet.Detection(label, confidence, (0, 0, 10, 10))

    assert moderate([])["category"] == "safe"
    neutral = moderate([det("face_female", 0.9), det("belly_exposed", 0.9)])
    assert neutral == {"offensive": False, "nsfw_score": 0.0, "category": "safe", "labels": []}
    low = moderate([det("female_breast_exposed", 0.5)])
    assert low["category"] == "safe" and low["nsfw_score"] == 0.5 and low["labels"] == []
    explicit = moderate(
        [det("buttocks_covered", 0.7), det("anus_exposed", 0.65), det("anus_exposed", 0.9)]
    )
    assert explicit["offensive"] is True
    assert explicit["category"] == "explicit"
    assert explicit["nsfw_score"] == 0.9
    assert [item["label"] for item in explicit["labels"]] == ["anus_exposed", "buttocks_covered"]
    options = ModerationOptions.from_mapping({"threshold": "0.95"})
    assert moderate([det("anus_exposed", 0.9)], options)["offensive"] is False


def test_offensive_gate_skips_the_rest() -> None:
    image = as_image(photo("colorwheel"))
    options = {"moderation": {"offensive": "suggestive"}}
    outcome = Pipeline().run_one(image, ["moderation", "faces"], options, skip_on=["offensive"])
    assert outcome.skipped_reason == "offensive"
    assert "faces" not in outcome.results


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("moderation", {"threshold": -0.1}),
        ("moderation", {"threshold": 1.5}),
        ("moderation", {"threshold": "high"}),
        ("moderation", {"threshold": True}),
        ("moderation", {"threshold": None}),
        ("moderation", {"threshold": float("nan")}),
        ("moderation", {"threshold": [0.5]}),
        ("moderation", {"suggestive_threshold": 2}),
        ("moderation", {"offensive": "nudity"}),
        ("anatomy", {"threshold": 1.01}),
        ("anatomy", {"threshold": "x"}),
        ("faces", {"threshold": -1}),
        ("faces", {"resolution": 100}),
        ("faces", {"resolution": 5000}),
        ("faces", {"resolution": "big"}),
        ("faces", {"method": "haar"}),
    ],
)
def test_bad_options_are_rejected(name: str, options: dict[str, Any]) -> None:
    with pytest.raises(ValidationFailed):
        analyze(name, photo("coffee"), **options)


def test_good_options_are_accepted() -> None:
    assert analyze("moderation", photo("coffee"), threshold="0.7", offensive="explicit")
    assert analyze("anatomy", photo("coffee"), threshold=0)["count"] >= 0
    assert analyze("faces", photo("coffee"), threshold=1, resolution="640")["count"] == 0


# -- faces -----------------------------------------------------------------------------------


def test_faces_finds_the_astronaut() -> None:
    result = analyze("faces", photo("astronaut"))
    assert result["count"] == 1 == len(result["faces"])
    face = result["faces"][0]
    assert set(face) == {"box", "confidence"}
    assert 0.4 <= face["confidence"] <= 1
    assert overlap(face["box"], ASTRONAUT_FACE) > 0.8
    _, _, w, h = face["box"]
    assert 60 <= w <= 160 and 60 <= h <= 160


@pytest.mark.parametrize("name", ["coffee", "rocket", "chelsea", "hubble_deep_field"])
def test_no_faces_without_people(name: str) -> None:
    assert analyze("faces", photo(name))["count"] == 0


def test_faces_in_a_large_image_map_back_to_original_pixels() -> None:
    """The astronaut pasted into a big grey canvas: the box must move with it."""
    canvas = np.full((1000, 1600, 3), 128, np.uint8)
    canvas[300:812, 700:1212] = photo("astronaut")
    image = as_image(canvas)
    before = _nudenet.runs
    result = detect_faces(image)
    assert _nudenet.runs - before == 2  # native pass + the 480 px look (big image)
    assert result["count"] == 1
    x0, y0, x1, y1 = ASTRONAUT_FACE
    assert overlap(result["faces"][0]["box"], (x0 + 700, y0 + 300, x1 + 700, y1 + 300)) > 0.8


def test_faces_in_a_rendered_group_photo() -> None:
    """24 people, faces ~59 px, in a 1912 x 1280 image: about 10 px at 320, none found there."""
    cols, rows, tile, gap = 6, 4, 300, 16
    canvas = np.full((rows * (tile + gap) + gap, cols * (tile + gap) + gap, 3), 200, np.uint8)
    person = resized(photo("astronaut"), tile)
    k = tile / 512
    expected = []
    for row in range(rows):
        for col in range(cols):
            x, y = gap + col * (tile + gap), gap + row * (tile + gap)
            canvas[y : y + tile, x : x + tile] = person
            fx0, fy0, fx1, fy1 = ASTRONAUT_FACE
            expected.append((x + fx0 * k, y + fy0 * k, x + fx1 * k, y + fy1 * k))
    image = as_image(canvas)
    native = [d for d in _nudenet.detections(image) if d.label.startswith("face")]
    assert sum(d.confidence >= 0.4 for d in native) < 3
    result = detect_faces(image)
    assert 22 <= result["count"] <= 24
    for face in result["faces"]:
        assert max(overlap(face["box"], region) for region in expected) > 0.8


def test_cascade_method_finds_the_astronaut() -> None:
    pytest.importorskip("skimage")
    for method in ("cascade", "both"):
        result = analyze("faces", photo("astronaut"), method=method)
        assert result["count"] >= 1, method
        assert max(overlap(f["box"], ASTRONAUT_FACE) for f in result["faces"]) > 0.8
    assert analyze("faces", photo("coffee"), method="both")["count"] == 0


def test_merge_keeps_one_box_per_face() -> None:
    a = ((100.0, 100.0, 200.0, 200.0), 0.8)
    a_again = ((105.0, 98.0, 204.0, 203.0), 0.9)
    inside = ((120.0, 120.0, 170.0, 170.0), 0.5)
    other = ((400.0, 100.0, 480.0, 190.0), 0.6)
    assert merge([[a, a_again, inside, other]]) == [a_again, other]
    assert merge([[a], [a_again]]) == [a]  # earlier groups win (NudeNet before the cascade)


# -- anatomy ---------------------------------------------------------------------------------


def test_anatomy_output_shape() -> None:
    rgb = photo("astronaut")
    result = analyze("anatomy", rgb)
    assert set(result) == {"parts", "count"}
    assert result["count"] == len(result["parts"]) >= 1
    for part in result["parts"]:
        assert set(part) == {"label", "confidence", "box"}
        assert part["label"] in _nudenet.CLASSES
        assert 0.5 <= part["confidence"] <= 1
        x, y, w, h = part["box"]
        assert all(isinstance(v, int) for v in part["box"])
        assert x >= 0 and y >= 0 and w > 0 and h > 0
        assert x + w <= rgb.shape[1] and y + h <= rgb.shape[0]
    assert "face_female" in {part["label"] for part in result["parts"]}
    confidences = [part["confidence"] for part in result["parts"]]
    assert confidences == sorted(confidences, reverse=True)
    assert analyze("anatomy", rgb, threshold=1.0)["count"] == 0


# -- the shared detector ---------------------------------------------------------------------


def test_detection_runs_once_per_image_for_all_three() -> None:
    images = [as_image(photo(name)) for name in ("astronaut", "camera", "coffee")]
    before = _nudenet.runs
    outcomes = Pipeline().run(images, ["moderation", "anatomy", "faces"])
    assert _nudenet.runs - before == len(images)
    for outcome in outcomes:
        assert set(outcome.results) == {"moderation", "anatomy", "faces"}
        versions = {name: result["version"] for name, result in outcome.results.items()}
        assert versions == {"moderation": "1.0.0", "anatomy": "1.0.0", "faces": "1.1.0"}
    # Asking again about the same decoded images costs nothing more.
    Pipeline().run(images, ["faces", "moderation"])
    assert _nudenet.runs - before == len(images)


def test_analyzers_are_registered_and_ready() -> None:
    analyzers = registry.all_analyzers()
    for name in ("moderation", "anatomy", "faces"):
        described = analyzers[name].describe()
        assert described["ready"] is True, described
        assert "AGPL-3.0" in described["license"]
    assert "BSD-3-Clause" in analyzers["faces"].license


def test_tiny_and_odd_images_do_not_break() -> None:
    for shape in [(1, 1, 3), (7, 300, 3), (300, 5, 3), (33, 33, 3)]:
        rgb = np.full(shape, 90, np.uint8)
        for name in ("moderation", "anatomy", "faces"):
            assert analyze(name, rgb)


def test_operator_defaults_sit_under_the_request_options() -> None:
    """``OPENSIGHT_ANALYZER_OPTIONS`` (the pipeline's ``defaults``) applies where a request
    says nothing, and a request's own value wins."""
    image = as_image(photo("colorwheel"))
    strict = Pipeline(defaults={"moderation": {"offensive": "suggestive"}})
    gated = strict.run_one(image, ["moderation"], skip_on=["offensive"])
    assert gated.skipped_reason == "offensive"
    own = strict.run_one(image, ["moderation"], {"moderation": {"offensive": "explicit"}})
    assert own.results["moderation"]["offensive"] is False
    assert Pipeline().run_one(image, ["moderation"]).results["moderation"]["offensive"] is False
