"""Face detection without a download: NudeNet's face classes, optionally an LBP cascade.

Per image: ``{"faces": [{"box": [x, y, w, h], "confidence"}], "count": n}``,
best first, boxes in the image's pixels.

Why NudeNet: OpenCV 5 ships neither Haar cascades nor the YuNet model, and
nothing may be downloaded at run time. Two detectors are installed:

* **NudeNet 320n** (``_nudenet``): a YOLOv8n whose classes include
  ``face_female`` and ``face_male`` (reported here as just faces; its gender
  guess is unreliable, men are often ``face_female``). Frontal, three-quarter
  and profile faces, with a confidence, ~20 ms per pass at 320 px.
* **scikit-image's LBP frontal-face cascade** (``skimage.feature.Cascade``
  with ``data.lbp_frontal_face_cascade_filename()``, the cascade OpenCV
  trained): frontal faces only, no confidence, and slow in scikit-image's
  implementation (~0.8 s at 640 px on one core).

Measured on scikit-image images (``bench/acc_moderation.py``; numbers in
``docs/analyzers/moderation.md``): both find the astronaut; only NudeNet finds
the camera man (a profile); neither puts a face on the 18 photographs without
people. On rendered group photos -- the astronaut tiled 4 x 3, 6 x 4 and
8 x 6 in ~1700 x 1300 px, faces ~78, ~59 and ~39 px -- NudeNet (native pass
plus the 960 px pass) found 12/12, 24/24 and 36/48 (48/48 with
``resolution: 1280``, twice the time), its native pass alone 0/24 and 0/48;
the cascade found 12/12, 0/24 and 0/48, and took 1-1.4 s per image against
NudeNet's 0.1-0.6 s. The cascade is better only on tight, blurry, grey face
crops without hair or shoulders: scikit-image's 25 px LFW faces enlarged into
a mosaic, 17/24 against NudeNet's 0/24. Hence:

* ``method: "nudenet"`` (default) -- NudeNet's shared native pass (the one
  ``moderation`` and ``anatomy`` use, run once per image), plus, for images
  larger than 640 px, a second pass with the longest side at ``resolution``
  (default 960); the two are merged. A face needs about 20 px at the pass's
  scale: ~40 px in a 1700 px image, ~85 px in a 4000 px one. The second pass
  (~0.15 s of CPU on a 1 MP photo) runs only when a look at 480 px (~35 ms)
  finds a face candidate that no native face covers (see
  :func:`needs_second_pass`); a pass under 1.6 x 480 px runs without a look.
* ``method: "cascade"`` -- the LBP cascade alone, on grey at 640 px at most,
  with 8 overlapping hits required (scikit-image's default, 4, put false
  faces on 5 of 18 scikit-image images, 8 on none). Cascade faces have no
  score and are reported with confidence 0.5.
* ``method: "both"`` -- NudeNet's faces, plus cascade faces that do not
  overlap one.

Merging keeps the most confident box of any group whose IoU exceeds 0.4 or
where one box lies 70 % inside another (NudeNet's faces first with ``both``).

Options (``options: {"faces": {...}}``), validated: ``threshold`` (0..1,
default 0.4: false faces on scikit-image photos and crops stayed at or below
0.37, all on a cat), ``resolution`` (320..1920, default 960), ``method``.

Licence: AGPL-3.0 for ``nudenet``/``both`` (NudeNet and its YOLOv8n-based
weights, see ``_nudenet``); BSD-3-Clause for ``cascade`` (scikit-image; its
cascade file is OpenCV's ``lbpcascade_frontalface``, under OpenCV's BSD-style
licence). scikit-image is only a test extra of OpenSight: without it,
``cascade`` and ``both`` answer ``model_unavailable``.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ModelUnavailable, ValidationFailed
from ..images import DecodedImage
from . import _nudenet
from .base import AnalysisContext, Analyzer, Readiness
from .quality import working_gray
from .registry import register

FACE_CLASSES = frozenset({"face_female", "face_male"})
METHODS = ("nudenet", "cascade", "both")
MIN_RESOLUTION, MAX_RESOLUTION = _nudenet.NATIVE_SIZE, 1920
SECOND_PASS_ABOVE = 2 * _nudenet.NATIVE_SIZE
"""Images whose longest side is above this may get a second, higher-resolution pass."""
LOOK_SIZE = 480
"""Longest side of the look that decides whether the second pass runs (see
:func:`needs_second_pass`)."""
LOOK_GAIN = 1.6
"""A second pass at most this x ``LOOK_SIZE`` runs without a look (it costs little more)."""
MERGE_IOU = 0.4
MERGE_CONTAINED = 0.7
CASCADE_CONFIDENCE = 0.5
CASCADE_WORKING_SIZE = 640
CASCADE_SCALE_FACTOR = 1.2
CASCADE_MIN_NEIGHBORS = 8
CASCADE_MIN_SIZE = 24

_Face = tuple[tuple[float, float, float, float], float]
"""``((x0, y0, x1, y1), confidence)``."""


@dataclass(frozen=True)
class FacesOptions:
    threshold: float = 0.4
    resolution: int = 960
    method: str = "nudenet"

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> FacesOptions:
        threshold = _nudenet.probability_option("faces", options, "threshold", cls.threshold)
        raw = options.get("resolution", cls.resolution)
        message = (
            f"faces option 'resolution' must be a number from {MIN_RESOLUTION} to {MAX_RESOLUTION}"
        )
        if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
            raise ValidationFailed(message)
        try:
            number = float(raw)
        except ValueError:
            raise ValidationFailed(message) from None
        if not math.isfinite(number) or not MIN_RESOLUTION <= number <= MAX_RESOLUTION:
            raise ValidationFailed(message)
        method = options.get("method", cls.method)
        if method not in METHODS:
            raise ValidationFailed("faces option 'method' must be one of: " + ", ".join(METHODS))
        return cls(threshold=threshold, resolution=round(number), method=method)


DEFAULTS = FacesOptions()


class FacesAnalyzer(Analyzer):
    name = "faces"
    version = "1.1.0"
    description = "Face boxes, offline (NudeNet 320n faces; optional LBP cascade)."
    license = _nudenet.LICENSE + "; with method 'cascade': BSD-3-Clause (scikit-image LBP cascade)"

    def readiness(self) -> Readiness:
        missing = _nudenet.missing()
        return Readiness(ready=not missing, missing=missing)

    def analyze(
        self, images: Sequence[DecodedImage], context: AnalysisContext
    ) -> list[dict[str, Any]]:
        opts = FacesOptions.from_mapping(context.options_for(self.name))
        if opts.method != "nudenet":
            _cascade()  # fail before any work when scikit-image is missing
        return [detect_faces(image, opts) for image in images]


def detect_faces(image: DecodedImage, opts: FacesOptions = DEFAULTS) -> dict[str, Any]:
    """Faces on one image (see the module docstring)."""
    groups: list[list[_Face]] = []
    if opts.method in ("nudenet", "both"):
        found = nudenet_faces(image, opts.resolution, opts.threshold)
        groups.append([f for f in found if f[1] >= opts.threshold])
    if opts.method in ("cascade", "both") and opts.threshold <= CASCADE_CONFIDENCE:
        groups.append(cascade_faces(image))
    faces = merge(groups)
    return {
        "faces": [
            {"box": _xywh(box), "confidence": round(confidence, 4)} for box, confidence in faces
        ],
        "count": len(faces),
    }


def nudenet_faces(
    image: DecodedImage,
    resolution: int = DEFAULTS.resolution,
    threshold: float = DEFAULTS.threshold,
) -> list[_Face]:
    """NudeNet's faces: its shared native pass, plus one at ``resolution`` for big images
    when :func:`needs_second_pass` says so."""
    native = [_face(d) for d in _nudenet.detections(image) if d.label in FACE_CLASSES]
    longest = max(image.width, image.height)
    size = min(longest, resolution)
    if longest <= SECOND_PASS_ABOVE or resolution <= _nudenet.NATIVE_SIZE:
        return native
    if not needs_second_pass(image, size, [f for f in native if f[1] >= threshold]):
        return native
    second = _nudenet.detections(image, size)
    return native + [_face(d) for d in second if d.label in FACE_CLASSES]


def needs_second_pass(image: DecodedImage, size: int, native: Sequence[_Face]) -> bool:
    """Whether the pass at ``size`` may find faces the native pass missed.

    It costs ~0.15 s of CPU on a 1 MP photo (960 px), most photos have no face the native
    pass misses, and a face too small for the native pass (under ~20 px at 320) still
    shows as a candidate (confidence >= 0.2) at ``LOOK_SIZE``: on the astronaut tiled 8 x 6
    (39 px faces in 1744 px, 11 px at 480) the look scored its faces 0.29..0.35, and
    0.16 at most on photographs without people (a cat's face). So a look at ``LOOK_SIZE``
    (~40 ms) runs first, and the pass runs only when the look has a face candidate that
    no native face (at the caller's threshold) covers."""
    if size <= LOOK_GAIN * LOOK_SIZE:
        return True  # the look would cost about as much as the pass
    look = [_face(d) for d in _nudenet.detections(image, LOOK_SIZE) if d.label in FACE_CLASSES]
    return any(not any(_overlaps(f[0], n[0]) for n in native) for f in look)


def _face(detection: _nudenet.Detection) -> _Face:
    return (_xyxy(detection.box), detection.confidence)


_local = threading.local()


def _cascade() -> Any:
    """This thread's scikit-image LBP cascade (one per thread: a Cython object not
    documented as thread-safe; loading one takes a few milliseconds)."""
    cascade = getattr(_local, "cascade", None)
    if cascade is None:
        try:
            from skimage import data
            from skimage.feature import Cascade
        except ImportError:
            raise ModelUnavailable(
                "skimage-lbp-frontal-face",
                "faces method 'cascade' needs scikit-image: pip install scikit-image",
            ) from None
        cascade = Cascade(data.lbp_frontal_face_cascade_filename())
        _local.cascade = cascade
    return cascade


def cascade_faces(image: DecodedImage) -> list[_Face]:
    """Frontal faces from the LBP cascade, on grey at ``CASCADE_WORKING_SIZE`` at most."""
    gray = working_gray(image, CASCADE_WORKING_SIZE)
    h, w = gray.shape
    if min(h, w) < CASCADE_MIN_SIZE:
        return []
    scale_x, scale_y = image.width / w, image.height / h
    found = _cascade().detect_multi_scale(
        img=gray,
        scale_factor=CASCADE_SCALE_FACTOR,
        step_ratio=1,
        min_size=(CASCADE_MIN_SIZE, CASCADE_MIN_SIZE),
        max_size=(h, w),
        min_neighbor_number=CASCADE_MIN_NEIGHBORS,
    )
    faces: list[_Face] = []
    for hit in found:
        x0, y0 = hit["c"] * scale_x, hit["r"] * scale_y
        x1, y1 = x0 + hit["width"] * scale_x, y0 + hit["height"] * scale_y
        faces.append(((x0, y0, min(x1, image.width), min(y1, image.height)), CASCADE_CONFIDENCE))
    return faces


def merge(groups: Sequence[Sequence[_Face]]) -> list[_Face]:
    """Greedy suppression: earlier groups first, most confident first within a group.

    A face is dropped when its IoU with a kept face exceeds ``MERGE_IOU`` or
    when ``MERGE_CONTAINED`` of the smaller of the two lies inside the other.
    The result is sorted by confidence.
    """
    kept: list[_Face] = []
    for group in groups:
        for face in sorted(group, key=lambda f: -f[1]):
            if not any(_overlaps(face[0], other[0]) for other in kept):
                kept.append(face)
    kept.sort(key=lambda f: (-f[1], f[0]))
    return kept


def _overlaps(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    if inter <= 0:
        return False
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[2] - b[0]) * (b[3] - b[1])
    union = area_a + area_b - inter
    return inter / union > MERGE_IOU or inter / max(min(area_a, area_b), 1e-9) > MERGE_CONTAINED


def _xyxy(box: tuple[int, int, int, int]) -> tuple[float, float, float, float]:
    x, y, w, h = box
    return (float(x), float(y), float(x + w), float(y + h))


def _xywh(box: tuple[float, float, float, float]) -> list[int]:
    x0, y0, x1, y1 = (round(v) for v in box)
    return [x0, y0, max(0, x1 - x0), max(0, y1 - y0)]


register(FacesAnalyzer())
