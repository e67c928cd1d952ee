"""Signals: hashes, the global descriptor, local features, and the match decision."""

from __future__ import annotations

import io
from functools import cache

import cv2
import imagehash
import numpy as np
import pytest
from PIL import Image

from opensight.analyzers import AnalysisContext, registry
from opensight.collections import matching
from opensight.collections.engine import MemoryCollection, group_edges
from opensight.collections.matching import Match, decide
from opensight.images import decode
from opensight.signals import QUERY_FEATURES, compute_signals, hashes, local
from opensight.signals.descriptors import DESCRIPTOR_DIM, global_descriptor


@cache
def photo(name: str = "astronaut") -> np.ndarray:
    from skimage import data

    arr = getattr(data, name)()
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    return np.ascontiguousarray(arr[..., :3])


def encoded(arr: np.ndarray, fmt: str = "JPEG", quality: int = 92) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(arr).save(buffer, fmt, **({"quality": quality} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def signals_of(arr: np.ndarray, fmt: str = "JPEG", quality: int = 92, features: int = 1000):
    return compute_signals(decode(encoded(arr, fmt, quality)), features=features)


# ------------------------------------------------------------------- hashes
def test_exact_hashes_bytes_and_pixels() -> None:
    arr = photo()
    png = decode(encoded(arr, "PNG"))
    other_png = decode(encoded(arr, "PNG") + b"")  # same bytes
    bmp = decode(encoded(arr, "BMP"))
    h_png = hashes.compute_hashes(png.rgb, png.sha256)
    h_bmp = hashes.compute_hashes(bmp.rgb, bmp.sha256)
    assert h_png.sha256 == hashes.bytes_sha256(encoded(arr, "PNG"))
    assert h_png.sha256 != h_bmp.sha256  # different files ...
    assert h_png.pixel_sha256 == h_bmp.pixel_sha256  # ... same pixels
    assert hashes.compute_hashes(other_png.rgb, other_png.sha256) == h_png
    # shape is part of the pixel hash
    flat = np.zeros((2, 3, 3), np.uint8)
    assert hashes.pixel_sha256(flat) != hashes.pixel_sha256(flat.reshape(3, 2, 3))


def test_perceptual_hashes_are_stable_and_close_to_imagehash() -> None:
    arr = photo()
    gray = hashes.to_gray(arr)
    ph, dh = hashes.phash(hashes.shrink(gray)), hashes.dhash(hashes.shrink(gray))
    assert 0 <= ph < 2**64 and 0 <= dh < 2**64
    reference = int(str(imagehash.phash(Image.fromarray(arr))), 16)
    assert hashes.hamming(ph, reference) <= 12  # same algorithm, different resampling
    small = cv2.resize(arr, (256, 256), interpolation=cv2.INTER_AREA)
    assert hashes.hamming(ph, hashes.phash(hashes.to_gray(small))) <= 4
    other = hashes.phash(hashes.to_gray(photo("camera")))
    assert hashes.hamming(ph, other) > 16
    assert hashes.from_hex(hashes.to_hex(ph)) == ph
    assert hashes.from_bytes(hashes.to_bytes(ph)) == ph
    assert len(hashes.colorhash(arr)) == 11


def test_hashes_analyzer_uses_the_same_functions() -> None:
    arr = photo()
    image = decode(encoded(arr, "PNG"))
    analyzer = registry.get("hashes")
    [result] = analyzer.analyze([image], AnalysisContext())
    expected = hashes.compute_hashes(image.rgb, image.sha256)
    assert result == expected.to_json()
    assert set(result) == {"sha256", "pixel_sha256", "phash", "dhash", "colorhash"}


# --------------------------------------------------------------- descriptor
def test_descriptor_is_unit_and_discriminates() -> None:
    a = global_descriptor(photo())
    assert a.shape == (DESCRIPTOR_DIM,) and a.dtype == np.float32
    assert abs(float(np.linalg.norm(a)) - 1) < 1e-4
    jpeg = global_descriptor(np.asarray(Image.open(io.BytesIO(encoded(photo(), quality=30)))))
    other = global_descriptor(photo("coins"))
    assert float(a @ jpeg) > 0.95
    assert float(a @ other) < matching.SIMILAR_COSINE
    assert global_descriptor(np.zeros((8, 8, 3), np.uint8)).shape == (DESCRIPTOR_DIM,)


# ----------------------------------------------------------- local features
def test_local_features_roundtrip_and_spread() -> None:
    feats = local.extract(hashes.to_gray(photo()), max_features=1000)
    assert 500 < len(feats) <= 1000
    again = local.LocalFeatures.from_bytes(feats.to_bytes())
    assert np.array_equal(again.descriptors, feats.descriptors)
    assert np.abs(again.xy - feats.xy).max() <= 1 / 64
    assert len(feats.to_bytes()) == 7 + 36 * len(feats)
    head = feats.head(100)  # the first keypoints cover the whole picture
    assert np.ptp(head.xy[:, 0]) > 0.7 * feats.width and np.ptp(head.xy[:, 1]) > 0.7 * feats.height
    empty = local.extract(np.full((50, 50), 128, np.uint8))
    assert len(empty) == 0 and local.LocalFeatures.from_bytes(empty.to_bytes()).width == 512
    assert local.verify(empty, feats).inliers == 0
    with pytest.raises(ValueError):
        local.LocalFeatures.from_bytes(b"\x09" + feats.to_bytes()[1:])


def _edits(arr: np.ndarray) -> dict[str, np.ndarray]:
    h, w = arr.shape[:2]
    rot = cv2.warpAffine(arr, cv2.getRotationMatrix2D((w / 2, h / 2), 5, 1), (w, h))
    gray = np.stack([cv2.cvtColor(arr, cv2.COLOR_RGB2GRAY)] * 3, -1)
    captioned = arr.copy()
    cv2.putText(captioned, "CAPTION 2026", (20, h - 40), cv2.FONT_HERSHEY_SIMPLEX, 2,
                (255, 255, 255), 5)  # fmt: skip
    return {
        "crop": np.ascontiguousarray(arr[h // 5 : h - h // 5, w // 5 : w - w // 5]),
        "rotate": rot,
        "quarter": cv2.resize(arr, (w // 2, h // 2), interpolation=cv2.INTER_AREA),
        "jpeg20": np.asarray(Image.open(io.BytesIO(encoded(arr, quality=20)))),
        "brighter": np.clip(arr.astype(np.float32) * 1.3 + 30, 0, 255).astype(np.uint8),
        "gray": gray,
        "text": captioned,
    }


@pytest.mark.parametrize(
    "edit", ["crop", "rotate", "quarter", "jpeg20", "brighter", "gray", "text"]
)
def test_near_duplicate_survives_edits(edit: str) -> None:
    original = signals_of(photo())
    query = signals_of(_edits(photo())[edit], features=QUERY_FEATURES)
    decision = decide(query, original)
    assert decision.match is Match.NEAR_DUPLICATE, decision
    assert matching.NEAR_DUPLICATE_SCORE <= decision.score < 1.0


def test_different_pictures_are_not_near_duplicates() -> None:
    a = signals_of(photo("astronaut"))
    for name in ("coffee", "chelsea", "camera", "rocket"):
        decision = decide(signals_of(photo(name), features=QUERY_FEATURES), a)
        assert decision.match is not Match.NEAR_DUPLICATE and decision.score < 0.9, name


def test_exact_decision_and_score_scale() -> None:
    a = signals_of(photo(), "PNG")
    b = signals_of(photo(), "BMP")
    assert decide(a, b).match is Match.EXACT and decide(a, b).score == 1.0
    assert matching.match_for(1.0) is Match.EXACT
    assert matching.match_for(matching.near_duplicate_score(matching.MIN_INLIERS)) is (
        Match.NEAR_DUPLICATE
    )
    assert matching.near_duplicate_score(10_000) < 1.0
    assert matching.match_for(matching.similar_score(matching.SIMILAR_COSINE)) is Match.SIMILAR
    assert matching.similar_score(0.99999) < matching.NEAR_DUPLICATE_SCORE
    assert matching.match_for(matching.similar_score(0.5)) is None


def test_memory_collection_search_and_groups() -> None:
    collection = MemoryCollection(DESCRIPTOR_DIM)
    keys = {}
    for name in ("astronaut", "coffee", "camera"):
        keys[name] = collection.add(signals_of(photo(name)))
    keys["astronaut-copy"] = collection.add(signals_of(photo("astronaut"), "PNG"))
    keys["coffee-crop"] = collection.add(signals_of(_edits(photo("coffee"))["crop"]))
    hits = collection.search(signals_of(_edits(photo())["rotate"], features=QUERY_FEATURES))
    assert hits[0].match is Match.NEAR_DUPLICATE
    assert {h.key for h in hits[:2]} == {keys["astronaut"], keys["astronaut-copy"]}
    groups = group_edges(collection.edges())
    members = sorted(sorted(g) for g, _ in groups)
    assert members == sorted(
        [
            sorted([keys["astronaut"], keys["astronaut-copy"]]),
            sorted([keys["coffee"], keys["coffee-crop"]]),
        ]
    )
