"""opensight.images.decode over the bad-file corpus, plus the byte and pixel limits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from opensight import errors
from opensight.images import HEIF_AVAILABLE, DecodedImage, ImageLimits, decode, sha256_hex

try:
    import images_corpus as corpus
except ImportError:  # pragma: no cover - when tests/ is a package
    from tests import images_corpus as corpus

ERROR_CLASSES = {
    "invalid_image": errors.InvalidImage,
    "image_too_large": errors.ImageTooLarge,
    "unsupported_media_type": errors.UnsupportedMediaType,
}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return corpus.build_corpus(tmp_path_factory.mktemp("corpus"))


def _file(files: dict[str, Path], name: str) -> Path:
    if name not in files:
        pytest.skip(corpus.SKIPPED.get(name, f"{name} was not built"))
    return files[name]


def _decode(files: dict[str, Path], name: str, **kwargs) -> DecodedImage:
    path = _file(files, name)
    return decode(path.read_bytes(), source=str(path), **kwargs)


def test_corpus_is_complete(files: dict[str, Path]) -> None:
    assert set(corpus.EXPECTED) == set(corpus.BUILDERS)
    assert set(files) | set(corpus.SKIPPED) == set(corpus.EXPECTED)
    assert set(corpus.SKIPPED) <= corpus.OPTIONAL


@pytest.mark.parametrize("name", sorted(corpus.EXPECTED))
def test_corpus_file_decodes_as_expected(files: dict[str, Path], name: str) -> None:
    expected = corpus.EXPECTED[name]
    path = _file(files, name)
    data = path.read_bytes()
    if expected[0] == "ok":
        _, (width, height), fmt = expected
        image = decode(data, source=str(path))
        assert (image.width, image.height) == (width, height)
        assert image.format.lower() == fmt
        assert image.rgb.dtype == np.uint8
        assert image.rgb.shape == (height, width, 3)
        assert image.rgb.flags["C_CONTIGUOUS"]
        assert image.sha256 == sha256_hex(data)
        assert image.byte_size == len(data)
        assert image.source == str(path)
        assert image.gray.shape == (height, width)
        info = image.info()
        assert (info["width"], info["height"], info["format"]) == (width, height, fmt)
    else:
        slug, status = expected
        with pytest.raises(errors.OpenSightError) as caught:
            decode(data)
        assert isinstance(caught.value, ERROR_CLASSES[slug])
        assert caught.value.type == slug
        assert caught.value.status == status


def test_empty_file_is_invalid(files: dict[str, Path]) -> None:
    with pytest.raises(errors.InvalidImage, match="empty"):
        _decode(files, "empty.jpg")


def test_truncated_jpeg_is_invalid_not_partially_decoded(files: dict[str, Path]) -> None:
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    data = _file(files, "truncated.jpg").read_bytes()
    with Image.open(_file(files, "truncated.jpg")) as img:  # the header itself is fine
        assert img.format == "JPEG"
    with pytest.raises(errors.InvalidImage) as caught:
        decode(data)
    assert caught.value.status == 422


def test_text_file_named_jpg_is_unsupported(files: dict[str, Path]) -> None:
    with pytest.raises(errors.UnsupportedMediaType) as caught:
        _decode(files, "text.jpg")
    assert caught.value.status == 415


def test_png_bomb_is_rejected_from_the_header_alone(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _file(files, "bomb.png")
    assert path.stat().st_size < 1024
    with Image.open(path) as img:
        assert img.size == corpus.BOMB_SIZE

    def no_decoding(self, *args, **kwargs):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(errors.ImageTooLarge, match="30000x30000") as caught:
        decode(path.read_bytes())
    assert caught.value.status == 413


def test_pixel_limit_is_enforced_without_decoding(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _file(files, "photo.jpg").read_bytes()
    width, height = corpus.PHOTO_SIZE
    assert decode(data, ImageLimits(max_pixels=width * height)).width == width

    def no_decoding(self, *args, **kwargs):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(errors.ImageTooLarge) as caught:
        decode(data, ImageLimits(max_pixels=width * height - 1))
    assert caught.value.status == 413


def test_byte_limit(files: dict[str, Path]) -> None:
    data = _file(files, "photo.jpg").read_bytes()
    assert decode(data, ImageLimits(max_bytes=len(data))).byte_size == len(data)
    with pytest.raises(errors.ImageTooLarge, match="bytes") as caught:
        decode(data, ImageLimits(max_bytes=len(data) - 1))
    assert caught.value.status == 413


def test_cmyk_jpeg_becomes_sane_rgb(files: dict[str, Path]) -> None:
    image = _decode(files, "cmyk.jpg")
    assert image.mode == "CMYK"
    for i, colour in enumerate(corpus.CMYK_BANDS):
        centre = image.rgb[32, i * 32 + 16].astype(int)
        assert np.abs(centre - np.array(colour)).max() <= 16, (i, centre, colour)


def test_16bit_png_is_scaled_not_clipped(files: dict[str, Path]) -> None:
    image = _decode(files, "16bit.png")
    assert image.mode.startswith("I")
    row = image.rgb[0, :, 0].astype(int)
    assert row[0] == 0
    assert row[-1] == 255
    assert abs(row[128] - 128) <= 2  # mid-scale, not clipped to 255
    assert np.all(np.diff(row) >= 0)
    assert len(np.unique(row)) > 200
    assert np.array_equal(image.rgb[..., 0], image.rgb[..., 2])


def test_palette_transparency_is_flattened_onto_white(files: dict[str, Path]) -> None:
    image = _decode(files, "palette_alpha.png")
    assert image.mode == "P"
    assert image.has_alpha is True
    assert image.rgb[15, 5].tolist() == [255, 255, 255]  # transparent (index 0 is black)
    assert image.rgb[15, 35].tolist() == [200, 0, 0]


def test_exif_rotation_is_applied_and_recorded(files: dict[str, Path]) -> None:
    image = _decode(files, "rotated.jpg")
    stored_w, stored_h = corpus.ROTATED_STORED_SIZE
    assert (image.width, image.height) == (stored_h, stored_w)  # portrait upright
    assert image.orientation == 6
    original = corpus.landscape_rgb().astype(int)
    clockwise = np.rot90(original, k=-1)
    anticlockwise = np.rot90(original, k=1)
    got = image.rgb.astype(int)
    error_cw = np.abs(got - clockwise).mean()
    assert error_cw < 8
    assert error_cw < np.abs(got - anticlockwise).mean() / 3


def test_animated_gif_counts_frames_and_decodes_the_first(files: dict[str, Path]) -> None:
    image = _decode(files, "animated.gif")
    assert image.frames == 3
    assert image.rgb[10, 10].tolist() == list(corpus.GIF_COLOURS[0])


def test_heic_decodes(files: dict[str, Path]) -> None:
    if not HEIF_AVAILABLE:
        pytest.skip("pillow-heif is not usable on this platform")
    image = _decode(files, "photo.heic")
    assert image.format == "HEIF"
    source = corpus.photo_rgb((320, 240)).astype(int)
    assert np.abs(image.rgb.astype(int) - source).mean() < 12


def test_one_pixel_png(files: dict[str, Path]) -> None:
    image = _decode(files, "pixel.png")
    assert image.rgb.shape == (1, 1, 3)
    assert image.rgb[0, 0].tolist() == [10, 120, 200]
    assert image.gray.shape == (1, 1)


def test_photo_has_no_exif_gps_or_rotation(files: dict[str, Path]) -> None:
    image = _decode(files, "photo.jpg")
    assert image.format == "JPEG"
    assert image.orientation == 1
    assert image.gps is None
    assert image.has_alpha is False
    assert image.frames == 1
