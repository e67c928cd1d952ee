"""When ``faces`` runs its second, higher-resolution NudeNet pass (a 1 MP photo's costliest
step): only when a look at ``LOOK_SIZE`` px finds a face candidate the native pass did not."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from opensight.analyzers import _nudenet
from opensight.analyzers.faces import LOOK_SIZE, FacesOptions, detect_faces
from opensight.images import DecodedImage

pytestmark = pytest.mark.skipif(
    bool(_nudenet.missing()), reason="nudenet / onnxruntime not installed"
)


def photo(name: str, longest: int | None = None) -> np.ndarray:
    from skimage import data

    arr = getattr(data, name)()
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    rgb = np.ascontiguousarray(arr[..., :3].astype(np.uint8))
    if longest is None:
        return rgb
    h, w = rgb.shape[:2]
    k = longest / max(h, w)
    size = (round(w * k), round(h * k))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS))


def passes(rgb: np.ndarray, **options: object) -> tuple[dict[str, object], list[int]]:
    """The faces result and the sizes NudeNet ran at (a fresh image: no cached pass)."""
    image = DecodedImage.from_array(rgb)
    result = detect_faces(image, FacesOptions.from_mapping(options))
    return result, sorted(image.__dict__.get(_nudenet._CACHE_ATTR, {}))


@pytest.mark.parametrize("name", ["coffee", "rocket", "hubble_deep_field"])
def test_a_photo_without_people_skips_the_second_pass(name: str) -> None:
    result, sizes = passes(photo(name, 1225))
    assert result["count"] == 0
    assert sizes == [_nudenet.NATIVE_SIZE, LOOK_SIZE]


def test_a_face_the_native_pass_found_needs_no_second_pass() -> None:
    canvas = np.full((816, 1225, 3), 128, np.uint8)
    canvas[150:662, 350:862] = photo("astronaut")
    result, sizes = passes(canvas)
    assert result["count"] == 1
    assert sizes == [_nudenet.NATIVE_SIZE, LOOK_SIZE]


def group(cols: int, rows: int, tile: int, gap: int = 16) -> np.ndarray:
    canvas = np.full((rows * (tile + gap) + gap, cols * (tile + gap) + gap, 3), 200, np.uint8)
    person = photo("astronaut", tile)
    for row in range(rows):
        for col in range(cols):
            x, y = gap + col * (tile + gap), gap + row * (tile + gap)
            canvas[y : y + tile, x : x + tile] = person
    return canvas


@pytest.mark.parametrize(
    ("cols", "rows", "tile", "least"),
    [(6, 4, 300, 22), (8, 6, 200, 34), (4, 3, 400, 12)],
)
def test_small_faces_still_get_the_second_pass(cols: int, rows: int, tile: int, least: int) -> None:
    """The group photos of bench/acc_moderation.py (faces ~59, ~39 and ~78 px): the 960 px
    pass found 24, 36 and 12 before the look was added, and still runs on each."""
    rgb = group(cols, rows, tile)
    result, sizes = passes(rgb)
    assert sizes == [_nudenet.NATIVE_SIZE, LOOK_SIZE, 960]
    assert result["count"] >= least


def test_a_small_second_pass_runs_without_a_look() -> None:
    """An image whose second pass would be about the look's size (here 700 px) gets it."""
    _, sizes = passes(photo("coffee", 700))
    assert sizes == [_nudenet.NATIVE_SIZE, 700]
