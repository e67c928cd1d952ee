"""Local features with geometric verification: the near-duplicate decision.

Extraction: the grey image is scaled so its longest side is ``WORK_SIDE`` px
(up or down, so a quarter-size copy and the original are seen at the same
scale), histogram-equalised (brightness and contrast edits then change little),
and ORB keypoints are detected on an 8-level pyramid. Up to ``MAX_FEATURES``
keypoints are kept: their positions and 256-bit binary descriptors.

Verification of a pair: each descriptor of the query is matched to its two
nearest (Hamming) in the candidate, kept when clearly better than the second
(Lowe's ratio test), and a similarity transform (rotation, scale, translation)
is fitted to the kept matches with RANSAC. The number of matches that agree
with that one transform (*inliers*) is the evidence: two different pictures
rarely give more than a handful, a crop, a rotated, rescaled, re-compressed,
recoloured or captioned copy gives dozens.

Serialised form (:meth:`LocalFeatures.to_bytes`): a 7-byte header (version,
count, working width and height) then ``count`` x (x, y as uint16 in 1/64 px,
32 descriptor bytes): ~17 KB for 500 keypoints.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import cv2
import numpy as np

WORK_SIDE = 512
MAX_FEATURES = 500
DETECT_FEATURES = 6000
GRID = 8
FAST_THRESHOLD = 5
BLUR_SIGMA = 1.0
CLAHE_CLIP = 3.0
EQUALIZE = 0
RATIO = 0.8
RANSAC_PX = 6.0
_HEADER = struct.Struct("<BHHH")
_VERSION = 1
_FIXED = 64.0
_RECORD = np.dtype([("x", "<u2"), ("y", "<u2"), ("d", "u1", (32,))])


@dataclass(frozen=True)
class LocalFeatures:
    xy: np.ndarray
    """N x 2 float32 positions at the working size."""
    descriptors: np.ndarray
    """N x 32 uint8 ORB descriptors."""
    width: int
    height: int

    def __len__(self) -> int:
        return int(self.xy.shape[0])

    def head(self, n: int) -> LocalFeatures:
        """The first ``n`` keypoints: a spatially even subset (see :func:`extract`)."""
        if n >= len(self):
            return self
        return LocalFeatures(self.xy[:n], self.descriptors[:n], self.width, self.height)

    def to_bytes(self) -> bytes:
        n = len(self)
        records = np.empty(n, dtype=_RECORD)
        records["x"] = np.clip(np.round(self.xy[:, 0] * _FIXED), 0, 65535)
        records["y"] = np.clip(np.round(self.xy[:, 1] * _FIXED), 0, 65535)
        records["d"] = self.descriptors
        return _HEADER.pack(_VERSION, n, self.width, self.height) + records.tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> LocalFeatures:
        version, n, width, height = _HEADER.unpack_from(data)
        if version != _VERSION:
            raise ValueError(f"unknown local-feature format version {version}")
        records = np.frombuffer(data, dtype=_RECORD, count=n, offset=_HEADER.size)
        xy = np.stack([records["x"], records["y"]], axis=1).astype(np.float32) / _FIXED
        return cls(xy, np.ascontiguousarray(records["d"]), width, height)


def working_gray(gray: np.ndarray, side: int = WORK_SIDE) -> np.ndarray:
    """The grey image at the working size, lightly smoothed and contrast-stretched.

    The blur (sigma ``BLUR_SIGMA`` px) keeps JPEG blocking and noise from becoming
    corners; the linear stretch of the 1st..99th percentiles to 0..255 undoes
    brightness and contrast edits without amplifying noise the way histogram
    equalisation would on flat or two-tone pictures.
    """
    h, w = gray.shape[:2]
    scale = side / max(h, w)
    if scale != 1:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        gray = cv2.resize(gray, size, interpolation=interp)
    if BLUR_SIGMA > 0:
        gray = cv2.GaussianBlur(gray, (0, 0), BLUR_SIGMA)
    if EQUALIZE == 1:
        return cv2.equalizeHist(gray)
    if EQUALIZE == 2:
        return gray
    if CLAHE_CLIP > 0:
        return cv2.createCLAHE(clipLimit=CLAHE_CLIP, tileGridSize=(8, 8)).apply(gray)
    lo, hi = np.percentile(gray, (1, 99))
    if hi - lo < 1:
        return gray
    stretched = (gray.astype(np.float32) - float(lo)) * (255.0 / float(hi - lo))
    return np.clip(stretched, 0, 255).astype(np.uint8)


def extract(gray: np.ndarray, max_features: int | None = None) -> LocalFeatures:
    """ORB keypoints of a grey (H x W uint8) image, spread over the whole picture.

    ``DETECT_FEATURES`` candidates are detected, then up to ``MAX_FEATURES`` are
    kept round-robin over a ``GRID`` x ``GRID`` grid (strongest first in each
    cell): overlaid text has very strong corners and would otherwise take every
    slot, leaving nothing of the picture underneath to match.
    """
    limit = max_features or MAX_FEATURES
    work = working_gray(gray)
    h, w = work.shape[:2]
    orb = cv2.ORB.create(
        nfeatures=DETECT_FEATURES, scaleFactor=1.2, nlevels=8, edgeThreshold=15,
        patchSize=31, fastThreshold=FAST_THRESHOLD,
    )  # fmt: skip
    keypoints, descriptors = orb.detectAndCompute(work, None)
    if descriptors is None or not keypoints:
        return LocalFeatures(np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8), w, h)
    xy = np.array([kp.pt for kp in keypoints], dtype=np.float32)
    if len(keypoints) > limit:
        response = np.array([kp.response for kp in keypoints], dtype=np.float32)
        cx = np.minimum((xy[:, 0] * GRID / w).astype(np.int32), GRID - 1)
        cy = np.minimum((xy[:, 1] * GRID / h).astype(np.int32), GRID - 1)
        cell = cy * GRID + cx
        order = np.lexsort((-response, cell))  # by cell, strongest first
        sorted_cells = cell[order]
        starts = np.searchsorted(sorted_cells, sorted_cells, side="left")
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order)) - starts
        keep = np.lexsort((-response, rank))[:limit]
        xy, descriptors = xy[keep], descriptors[keep]
    return LocalFeatures(xy, np.ascontiguousarray(descriptors, dtype=np.uint8), w, h)


@dataclass(frozen=True)
class Verification:
    inliers: int
    """Matches consistent with one similarity transform."""
    matches: int
    """Matches that passed the ratio test."""
    scale: float = 1.0
    rotation: float = 0.0
    """Degrees."""


NO_MATCH = Verification(0, 0)


def verify(query: LocalFeatures, candidate: LocalFeatures) -> Verification:
    """Geometric verification of ``query`` against ``candidate``."""
    if len(query) < 3 or len(candidate) < 3:
        return NO_MATCH
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
    pairs = matcher.knnMatch(query.descriptors, candidate.descriptors, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < RATIO * p[1].distance]
    if len(good) < 3:
        return Verification(0, len(good))
    src = query.xy[[m.queryIdx for m in good]]
    dst = candidate.xy[[m.trainIdx for m in good]]
    cv2.setRNGSeed(len(good))  # RANSAC draws from OpenCV's per-thread RNG: same pair, same answer
    model, mask = cv2.estimateAffinePartial2D(
        src, dst, method=cv2.RANSAC, ransacReprojThreshold=RANSAC_PX, maxIters=2000,
        confidence=0.995,
    )  # fmt: skip
    if model is None or mask is None:
        return Verification(0, len(good))
    scale = math.hypot(float(model[0, 0]), float(model[1, 0]))
    rotation = math.degrees(math.atan2(float(model[1, 0]), float(model[0, 0])))
    if not 0.1 <= scale <= 10:
        return Verification(0, len(good), scale, rotation)
    inliers = _distinct(dst[mask.ravel().astype(bool)])
    return Verification(inliers, len(good), scale, rotation)


def _distinct(points: np.ndarray) -> int:
    """Inliers counted once per 2-px cell: repeated keypoints on one spot are one piece of evidence."""
    if len(points) == 0:
        return 0
    cells = np.unique(np.round(points / 2.0).astype(np.int32), axis=0)
    return int(cells.shape[0])
