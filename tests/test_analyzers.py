"""The quality and metadata analyzers, and the pipeline that runs analyzers in order."""

from __future__ import annotations

import io
import json
import math
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
import pytest
from PIL import ExifTags, Image

from opensight.analyzers import AnalysisContext, Analyzer, registry
from opensight.analyzers.pipeline import Pipeline
from opensight.analyzers.quality import QualityAnalyzer, label_for
from opensight.errors import ValidationFailed
from opensight.images import DecodedImage, decode

try:
    import images_corpus as corpus
except ImportError:  # pragma: no cover - when tests/ is a package
    from tests import images_corpus as corpus

CLEAN = [
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
PRIMARY = {"blurry", "dark", "bright", "close"}
ALL_ISSUES = PRIMARY | {"noisy", "low_contrast", "blocky", "low_resolution"}
TEXTURES = ["grass", "gravel", "brick"]


@cache
def photo(name: str) -> np.ndarray:
    from skimage import data

    arr = data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(data, name)()
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    return np.ascontiguousarray(arr[..., :3].astype(np.uint8))


def as_image(rgb: np.ndarray, fmt: str = "PNG") -> DecodedImage:
    return DecodedImage.from_array(rgb, fmt)


def quality(rgb: np.ndarray, **options: Any) -> dict[str, Any]:
    context = AnalysisContext(options={"quality": options} if options else {})
    (result,) = QualityAnalyzer().analyze([as_image(rgb)], context)
    check_result_shape(result)
    return result


def check_result_shape(result: dict[str, Any]) -> None:
    json.dumps(result)
    assert set(result) == {"score", "label", "issues", "measures"}
    assert 0.0 <= result["score"] <= 1.0
    assert result["label"] == label_for(result["score"])
    assert set(result["issues"]) <= ALL_ISSUES
    if result["issues"]:
        assert result["label"] != "high"


def blur_at_512(rgb: np.ndarray, sigma: float = 3.0) -> np.ndarray:
    """Gaussian blur of ``sigma`` px as seen at ~512 px (scaled for larger images)."""
    scale = max(rgb.shape[:2]) / 512
    return cv2.GaussianBlur(rgb, (0, 0), sigma * max(scale, 1.0))


def motion_blur(rgb: np.ndarray, length: float, angle: float) -> np.ndarray:
    """A camera moving ``length`` px (as seen at ~512 px) in direction ``angle`` degrees."""
    length *= max(max(rgb.shape[:2]) / 512, 1.0)
    size = math.ceil(length) | 1
    canvas = np.zeros((size * 4, size * 4), np.float32)
    c = (size * 4 - 1) / 2
    dx, dy = math.cos(math.radians(angle)) * length * 2, -math.sin(math.radians(angle)) * length * 2
    p0, p1 = (
        (round((c - dx) * 16), round((c - dy) * 16)),
        (round((c + dx) * 16), round((c + dy) * 16)),
    )
    cv2.line(canvas, p0, p1, 1.0, thickness=2, lineType=cv2.LINE_AA, shift=4)
    kernel = cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA)
    return cv2.filter2D(rgb, -1, kernel / kernel.sum(), borderType=cv2.BORDER_REFLECT)


def jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def close_up(name: str, box: tuple[float, float], fraction: float) -> np.ndarray:
    """A ``fraction``-of-the-side crop at ``box`` (its top-left, as fractions), upscaled."""
    rgb = photo(name)
    height, width = rgb.shape[:2]
    side = round(fraction * max(height, width))
    y, x = int(box[1] * height), int(box[0] * width)
    return cv2.resize(
        rgb[y : y + side, x : x + side], (width, height), interpolation=cv2.INTER_CUBIC
    )


def darken(rgb: np.ndarray) -> np.ndarray:
    return (rgb.astype(np.float32) * 0.15).astype(np.uint8)


def brighten(rgb: np.ndarray) -> np.ndarray:
    return (rgb.astype(np.float32) * 0.15 + 217).astype(np.uint8)


# --- quality ------------------------------------------------------------------------------


def test_quality_is_registered() -> None:
    analyzer = registry.get("quality")
    assert isinstance(analyzer, QualityAnalyzer)
    assert analyzer.version == "1.1.0"
    assert analyzer.describe()["ready"] is True


@pytest.mark.parametrize("name", CLEAN)
def test_clean_photos_have_no_issues(name: str) -> None:
    result = quality(photo(name))
    assert not PRIMARY & set(result["issues"])
    assert result["issues"] == []
    assert result["label"] == "high"


@pytest.mark.parametrize("name", CLEAN)
def test_blurred_photos_are_blurry(name: str) -> None:
    result = quality(blur_at_512(photo(name)))
    assert "blurry" in result["issues"]
    assert result["score"] < quality(photo(name))["score"]


@pytest.mark.parametrize("name", CLEAN)
def test_darkened_photos_are_dark(name: str) -> None:
    result = quality(darken(photo(name)))
    assert "dark" in result["issues"]
    assert "bright" not in result["issues"]


@pytest.mark.parametrize("name", CLEAN)
def test_brightened_photos_are_bright(name: str) -> None:
    result = quality(brighten(photo(name)))
    assert "bright" in result["issues"]
    assert "dark" not in result["issues"]


@pytest.mark.parametrize("name", ["retina", "hubble_deep_field"])
def test_dark_scene_with_bright_subject_is_not_dark(name: str) -> None:
    rgb = photo(name)
    assert np.median(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)) < 120  # mostly dark indeed
    result = quality(rgb)
    assert "dark" not in result["issues"]


def test_white_page_with_black_text_is_not_bright() -> None:
    page = np.full((400, 600, 3), 250, np.uint8)
    for y in range(40, 360, 24):
        cv2.putText(
            page, "The quick brown fox", (20, y), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 0), 2
        )
    result = quality(page)
    assert "bright" not in result["issues"]
    assert "blurry" not in result["issues"]


def shallow_depth_of_field(rgb: np.ndarray) -> np.ndarray:
    """A sharp centre (~30% of the area) pasted onto a heavily blurred copy."""
    height, width = rgb.shape[:2]
    out = blur_at_512(rgb, sigma=8.0)
    ch, cw = int(height * 0.55), int(width * 0.55)
    y, x = (height - ch) // 2, (width - cw) // 2
    out[y : y + ch, x : x + cw] = rgb[y : y + ch, x : x + cw]
    return out


@pytest.mark.parametrize("name", ["astronaut", "chelsea", "coffee", "rocket", "camera"])
def test_shallow_depth_of_field_is_not_blurry(name: str) -> None:
    rgb = photo(name)
    assert "blurry" in quality(blur_at_512(rgb, sigma=8.0))["issues"]  # the background alone
    result = quality(shallow_depth_of_field(rgb))
    assert "blurry" not in result["issues"]


MOTION = [(9, 0), (15, 45), (25, 90), (15, 135), (9, 160)]
"""(length at ~512 px, angle in degrees) of the camera motions tried."""


@pytest.mark.parametrize("name", ["astronaut", "camera", "coffee", "chelsea", "rocket", "coins"])
@pytest.mark.parametrize(("length", "angle"), MOTION)
def test_motion_blurred_photos_are_blurry(name: str, length: int, angle: int) -> None:
    result = quality(motion_blur(photo(name), length, angle))
    assert result["issues"] == ["blurry"]
    measures = result["measures"]
    assert measures["isotropy"] < 0.35  # detail is missing along one direction only


def test_motion_blur_is_caught_where_focus_sharpness_is_fooled() -> None:
    # Edges across the motion stay crisp: the focus measure alone calls this sharp.
    result = quality(motion_blur(photo("camera"), 15, 100))
    assert result["measures"]["sharpness"] > 1.8
    assert result["issues"] == ["blurry"]


def test_real_motion_blur_is_rejected() -> None:
    # scikit-image's clock was photographed while moving the camera; it is mostly a
    # plain wall, so it reads as a close-up rather than as blurry (see the docs).
    assert set(quality(photo("clock"))["issues"]) & {"blurry", "close"}


@pytest.mark.parametrize("name", CLEAN)
@pytest.mark.parametrize("q", [5, 10, 20])
def test_heavily_compressed_jpegs_are_blocky(name: str, q: int) -> None:
    result = quality(jpeg(photo(name), q))
    assert "blocky" in result["issues"]
    assert result["measures"]["blockiness"] > 1.25


@pytest.mark.parametrize("name", CLEAN)
@pytest.mark.parametrize("q", [75, 90])
def test_normal_jpegs_are_not_blocky(name: str, q: int) -> None:
    assert quality(jpeg(photo(name), q))["issues"] == []


def test_text_on_an_eight_pixel_line_pitch_is_not_blocky() -> None:
    page = np.full((400, 600, 3), 250, np.uint8)
    for y in range(40, 360, 16):  # every text line on the same phase of an 8 x 8 grid
        cv2.putText(page, "The quick brown fox", (20, y), cv2.FONT_HERSHEY_SIMPLEX, 0.4, 0, 1)
    assert "blocky" not in quality(page)["issues"]


@pytest.mark.parametrize("name", TEXTURES)
def test_plain_textures_are_close(name: str) -> None:
    result = quality(photo(name))
    assert result["issues"] == ["close"]
    assert result["label"] != "high"


@pytest.mark.parametrize(
    ("name", "box", "fraction"),
    [
        ("astronaut", (0.16, 0.01), 0.05),  # the wall
        ("astronaut", (0.10, 0.58), 0.03),  # the sleeve
        ("camera", (0.80, 0.60), 0.05),  # the lawn
        ("coffee", (0.40, 0.30), 0.04),  # the crema
        ("chelsea", (0.88, 0.35), 0.06),  # the background
        ("retina", (0.60, 0.40), 0.03),  # the fundus
        ("retina", (0.30, 0.60), 0.08),
        ("moon", (0.60, 0.32), 0.05),
        ("motorcycle", (0.10, 0.82), 0.05),  # the floor
    ],
)
def test_extreme_close_ups_are_close_not_blurry(
    name: str, box: tuple[float, float], fraction: float
) -> None:
    result = quality(close_up(name, box, fraction))
    assert result["issues"] == ["close"]


@pytest.mark.parametrize("name", ["page", "text"])
def test_documents_are_not_close(name: str) -> None:
    assert quality(photo(name))["issues"] == []


@pytest.mark.parametrize("name", ["astronaut", "chelsea", "coffee", "rocket", "camera"])
def test_night_scene_with_a_lit_subject_is_not_dark(name: str) -> None:
    rgb = photo(name)
    height, width = rgb.shape[:2]
    yy, xx = np.mgrid[0:height, 0:width]
    lit = np.hypot(yy / height - 0.5, xx / width - 0.5) < 0.2
    night = (rgb * np.where(lit, 1.0, 0.08)[..., None]).astype(np.uint8)
    assert np.median(cv2.cvtColor(night, cv2.COLOR_RGB2GRAY)) < 48
    assert quality(night)["issues"] == []


@pytest.mark.parametrize("name", ["astronaut", "camera"])
def test_heavily_blurred_photos_are_blurry_not_close(name: str) -> None:
    assert quality(blur_at_512(photo(name), sigma=5.0))["issues"] == ["blurry"]


def test_dark_blurry_photo_is_only_dark() -> None:
    # The exposure is the thing to fix; detail measures are unreliable in a few levels.
    assert quality(darken(blur_at_512(photo("coffee"))))["issues"] == ["dark"]


def test_noise_is_measured_at_the_working_size_on_large_photos() -> None:
    rng = np.random.default_rng(5)
    rgb = photo("retina")  # 1411 px: noise of sigma 60 is about 27 once viewed at 640 px
    noisy = np.clip(rgb + rng.normal(0, 60, rgb.shape), 0, 255).astype(np.uint8)
    assert "noisy" in quality(noisy)["issues"]
    assert "noisy" not in quality(rgb)["issues"]


@pytest.mark.parametrize(
    "shape",
    [(1, 1), (2, 2), (3, 3), (1, 4000), (4000, 1), (2, 1300), (8, 8), (5, 9000), (300, 300)],
)
@pytest.mark.parametrize("value", [0, 128, 255])
def test_tiny_flat_and_extreme_aspect_images_do_not_crash(
    shape: tuple[int, int], value: int
) -> None:
    result = quality(np.full((*shape, 3), value, np.uint8))
    assert "blurry" not in result["issues"]  # nothing to be blurred
    if value == 128:
        assert not PRIMARY & set(result["issues"])
    if shape[0] * shape[1] < 40_000:
        assert "low_resolution" in result["issues"]


@pytest.mark.parametrize("shape", [(1, 1), (2, 2), (1, 4000), (64, 64)])
def test_random_pixels_do_not_crash(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(7)
    quality(rng.integers(0, 256, (*shape, 3), dtype=np.uint8))


def test_flat_grey_is_low_contrast_but_not_blurry() -> None:
    result = quality(np.full((400, 400, 3), 128, np.uint8))
    assert result["issues"] == ["low_contrast"]
    assert result["measures"]["sharpness"] is None


def test_heavy_noise_is_noisy() -> None:
    rng = np.random.default_rng(3)
    rgb = photo("astronaut").astype(np.float32) + rng.normal(0, 35, photo("astronaut").shape)
    result = quality(np.clip(rgb, 0, 255).astype(np.uint8))
    assert "noisy" in result["issues"]
    assert "blurry" not in result["issues"]


def test_measures_are_reported() -> None:
    measures = quality(photo("astronaut"))["measures"]
    for key in (
        "sharpness",
        "detail_min",
        "isotropy",
        "brightness",
        "contrast",
        "noise",
        "blockiness",
        "layout",
        "thumbnail_sharpness",
        "structure",
        "texture_ratio",
        "texture_evenness",
        "luma_p50",
        "megapixels",
    ):
        assert key in measures
    assert 0 < measures["brightness"] < 1


def test_options_override_thresholds() -> None:
    assert "blurry" in quality(photo("astronaut"), blur_threshold=100)["issues"]
    assert "blurry" not in quality(blur_at_512(photo("astronaut")), blur_threshold=0.1)["issues"]
    assert "dark" in quality(photo("hubble_deep_field"), dark_tail=255)["issues"]
    assert "low_resolution" in quality(photo("astronaut"), min_pixels=10**7)["issues"]
    assert "blocky" not in quality(jpeg(photo("coffee"), 10), blockiness_threshold=100)["issues"]
    no_close = {"close_texture_ratio": 0, "close_plain": 0, "close_structure": 0, "close_soft": 0}
    assert "close" not in quality(photo("grass"), **no_close)["issues"]
    assert "blurry" not in quality(motion_blur(photo("camera"), 15, 100), motion_detail=0)["issues"]
    assert quality(photo("astronaut"), unrelated="ignored")["issues"] == []


@pytest.mark.parametrize("bad", ["fast", None, -1, float("nan"), True])
def test_bad_options_are_rejected(bad: Any) -> None:
    with pytest.raises(ValidationFailed):
        quality(photo("camera"), blur_threshold=bad)


@pytest.mark.parametrize(
    "options",
    [
        {"peak_fraction": 5},
        {"peak_fraction": 0},
        {"bright_median": 255, "bright_tail": 255, "dark_median": 0, "dark_tail": 0},
        {"block": 100_000, "working_size": 16},
        {"working_size": "4000", "min_pixels": 0, "noise_quantile": 3},
    ],
)
def test_extreme_options_do_not_crash(options: dict[str, Any]) -> None:
    quality(photo("camera"), **options)
    quality(np.zeros((1, 1, 3), np.uint8), **options)


@pytest.mark.parametrize(
    "options", [{"bright_median": 300}, {"block": 2}, {"working_size": 8}, {"dark_tail": 1e9}]
)
def test_out_of_range_options_are_rejected(options: dict[str, Any]) -> None:
    with pytest.raises(ValidationFailed):
        quality(photo("camera"), **options)


def test_batch_keeps_order() -> None:
    images = [as_image(photo("astronaut")), as_image(darken(photo("coffee")))]
    results = QualityAnalyzer().analyze(images, AnalysisContext())
    assert len(results) == 2
    assert "dark" not in results[0]["issues"]
    assert "dark" in results[1]["issues"]


def test_decoded_photo_jpeg_is_clean(tmp_path: Path) -> None:
    path = corpus.build_one("photo.jpg", tmp_path)
    assert path is not None
    image = decode(path.read_bytes())
    (result,) = QualityAnalyzer().analyze([image], AnalysisContext())
    assert result["issues"] == []
    image.gray  # noqa: B018 - a cached full-size grey copy is used when present
    (again,) = QualityAnalyzer().analyze([image], AnalysisContext())
    assert again["issues"] == []
    assert abs(again["measures"]["sharpness"] - result["measures"]["sharpness"]) < 0.2


# --- metadata -----------------------------------------------------------------------------


def metadata(image: DecodedImage) -> dict[str, Any]:
    (result,) = registry.get("metadata").analyze([image], AnalysisContext())
    json.dumps(result)
    return result


def jpeg_with_exif() -> bytes:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "Canon"
    exif[ExifTags.Base.Model] = "EOS R5"
    exif[ExifTags.Base.DateTime] = "2023:07:14 10:00:00"
    sub = exif.get_ifd(ExifTags.IFD.Exif)
    sub[ExifTags.Base.DateTimeOriginal] = "2023:07:14 09:30:00"
    sub[ExifTags.Base.LensModel] = "RF 24-70mm F2.8 L IS USM"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (48.0, 51.0, 29.64)
    gps[ExifTags.GPS.GPSLongitudeRef] = "W"
    gps[ExifTags.GPS.GPSLongitude] = (2.0, 17.0, 40.2)
    gps[ExifTags.GPS.GPSAltitude] = 35.5
    buf = io.BytesIO()
    Image.fromarray(photo("chelsea")).save(buf, format="JPEG", exif=exif.tobytes())
    return buf.getvalue()


def test_metadata_is_registered() -> None:
    assert registry.get("metadata").version == "1.0.0"


def test_metadata_reads_camera_time_and_gps() -> None:
    result = metadata(decode(jpeg_with_exif()))
    assert result["format"] == "jpeg"
    assert (result["width"], result["height"]) == (451, 300)
    assert result["camera"] == {
        "make": "Canon",
        "model": "EOS R5",
        "lens": "RF 24-70mm F2.8 L IS USM",
    }
    assert result["taken_at"] == "2023-07-14T09:30:00"  # DateTimeOriginal wins over DateTime
    assert result["has_gps"] is True
    assert result["gps"]["latitude"] == pytest.approx(48.858233, abs=1e-5)
    assert result["gps"]["longitude"] == pytest.approx(-2.294500, abs=1e-5)
    assert result["gps"]["altitude"] == pytest.approx(35.5)
    assert result["exif"]["Make"] == "Canon"
    assert result["animated"] is False


def test_metadata_of_a_plain_photo() -> None:
    buf = io.BytesIO()
    Image.fromarray(photo("coffee")).save(buf, format="JPEG")
    result = metadata(decode(buf.getvalue()))
    assert result["has_gps"] is False
    assert result["gps"] is None
    assert result["camera"] is None
    assert result["taken_at"] is None
    assert result["color_profile"] is None
    assert result["orientation"] == 1
    assert result["mode"] == "RGB"


def test_metadata_falls_back_to_datetime() -> None:
    exif = Image.Exif()
    exif[ExifTags.Base.DateTime] = "2020:01:02 03:04:05"
    exif[ExifTags.Base.Model] = "Pixel 8"
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), "red").save(buf, format="JPEG", exif=exif.tobytes())
    result = metadata(decode(buf.getvalue()))
    assert result["taken_at"] == "2020-01-02T03:04:05"
    assert result["camera"] == {"make": None, "model": "Pixel 8", "lens": None}


def test_metadata_names_the_colour_profile() -> None:
    ImageCms = pytest.importorskip("PIL.ImageCms")
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), "blue").save(buf, format="JPEG", icc_profile=icc)
    result = metadata(decode(buf.getvalue()))
    assert result["color_profile"] is not None
    assert "srgb" in result["color_profile"].lower()


def test_metadata_of_corpus_files(tmp_path: Path) -> None:
    gif = corpus.build_one("animated.gif", tmp_path)
    rotated = corpus.build_one("rotated.jpg", tmp_path)
    palette = corpus.build_one("palette_alpha.png", tmp_path)
    assert gif and rotated and palette
    result = metadata(decode(gif.read_bytes()))
    assert (result["format"], result["frames"], result["animated"]) == ("gif", 3, True)
    result = metadata(decode(rotated.read_bytes()))
    assert (result["width"], result["height"], result["orientation"]) == (400, 600, 6)
    assert result["exif"]["Orientation"] == 6
    result = metadata(decode(palette.read_bytes()))
    assert (result["has_alpha"], result["mode"]) == (True, "P")


# --- pipeline -----------------------------------------------------------------------------


class Recorder(Analyzer):
    """A test analyzer that logs its calls and what it could see of earlier results."""

    version: ClassVar[str] = "0.0.1"

    def __init__(self, name: str, requires: tuple[str, ...], log: list[str]) -> None:
        self.name = name  # type: ignore[misc]
        self.requires = requires  # type: ignore[misc]
        self.log = log

    def analyze(
        self, images: Sequence[DecodedImage], context: AnalysisContext
    ) -> list[dict[str, Any]]:
        self.log.append(self.name)
        for previous in context.previous:
            missing = [dep for dep in self.requires if dep not in previous]
            assert not missing, f"{self.name} ran before {missing}"
        return [{"saw": sorted(previous)} for previous in context.previous]


@pytest.fixture
def log(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    registry.all_analyzers()  # load the built-ins before adding test analyzers
    for name, requires in {
        "t_first": ("quality",),
        "t_second": ("t_first", "metadata"),
        "t_after_quality": ("quality",),
    }.items():
        monkeypatch.setitem(registry._REGISTRY, name, Recorder(name, requires, calls))
    for name in ("quality", "metadata"):
        original = registry._REGISTRY[name]

        class Logged(type(original)):  # type: ignore[misc]
            def analyze(self, images, context, _name=name):
                calls.append(_name)
                return super().analyze(images, context)

        monkeypatch.setitem(registry._REGISTRY, name, Logged())
    return calls


def test_pipeline_runs_features_in_dependency_order(log: list[str]) -> None:
    timings: list[tuple[str, float]] = []
    outcome = Pipeline(on_timing=lambda name, s: timings.append((name, s))).run_one(
        as_image(photo("astronaut")), ["t_second"]
    )
    assert log == ["quality", "t_first", "metadata", "t_second"]
    assert outcome.status == "completed"
    assert list(outcome.results) == ["t_second"]  # dependencies run, but only requested return
    assert outcome.results["t_second"]["saw"] == ["metadata", "quality", "t_first"]
    assert [name for name, _ in timings] == log
    assert all(seconds >= 0 for _, seconds in timings)


def test_pipeline_skip_on_blurry_stops_the_image(log: list[str]) -> None:
    blurry = as_image(blur_at_512(photo("astronaut")))
    sharp = as_image(photo("astronaut"))
    outcomes = Pipeline().run(
        [blurry, sharp], ["quality", "t_after_quality", "metadata"], skip_on=["blurry"]
    )
    assert outcomes[0].status == "skipped"
    assert outcomes[0].skipped_reason == "blurry"
    assert list(outcomes[0].results) == ["quality"]
    assert "blurry" in outcomes[0].results["quality"]["issues"]
    assert outcomes[1].status == "completed"
    assert set(outcomes[1].results) == {"quality", "t_after_quality", "metadata"}
    assert log == ["quality", "t_after_quality", "metadata"]  # once each, for the sharp one


def test_pipeline_without_gates_runs_everything(log: list[str]) -> None:
    outcome = Pipeline().run_one(as_image(blur_at_512(photo("astronaut"))), ["t_after_quality"])
    assert outcome.status == "completed"
    assert log == ["quality", "t_after_quality"]
    outcome = Pipeline().run_one(
        as_image(blur_at_512(photo("astronaut"))), ["quality"], skip_on=["dark"]
    )
    assert outcome.status == "completed"
