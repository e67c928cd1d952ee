"""A classical global descriptor: "looks alike" without a neural network.

Used for *similar* search (and as one source of near-duplicate candidates) when no
neural embedding model is installed, so visual search works offline. It is built
from a copy whose longest side is 256 px and concatenates, each block
Hellinger-mapped (square root of a normalised histogram) and weighted:

* colour -- joint HSV histogram, 8 hues x 4 saturations x 4 values (128 d);
* tone -- grey-level histogram, 32 bins (32 d);
* shape -- a pyramid of gradient-orientation histograms (HOG-like), 8 unsigned
  orientations over 1 x 1, 2 x 2 and 4 x 4 cells, magnitude-weighted (168 d);
* layout -- an 8 x 8 grey thumbnail, zero mean and unit norm (64 d).

The whole is L2-normalised float32 (392 d), so cosine similarity is a dot product.
The blocks are chosen to degrade gracefully under the edits a near-duplicate goes
through (JPEG, rescale, brightness, small rotations and crops); grayscale copies
lose only the colour block.
"""

from __future__ import annotations

from typing import Protocol

import cv2
import numpy as np

from .hashes import shrink

DESCRIPTOR_DIM = 392
_WORK_SIDE = 256
_WEIGHTS = {"color": 0.8, "tone": 0.5, "shape": 1.0, "layout": 0.6}


class Embedder(Protocol):
    """Turns RGB pixels into an L2-normalised vector; ``name`` identifies the vector space."""

    name: str
    dim: int

    def embed(self, rgb: np.ndarray) -> np.ndarray: ...


def _unit(vec: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vec))
    return vec / norm if norm > 0 else vec


def _hellinger(hist: np.ndarray) -> np.ndarray:
    total = float(hist.sum())
    return np.sqrt(hist / total) if total > 0 else hist


def _color(small_rgb: np.ndarray) -> np.ndarray:
    hsv = cv2.cvtColor(small_rgb, cv2.COLOR_RGB2HSV)
    hist = cv2.calcHist([hsv], [0, 1, 2], None, [8, 4, 4], [0, 180, 0, 256, 0, 256])
    return _hellinger(hist.ravel())


def _tone(gray: np.ndarray) -> np.ndarray:
    hist = cv2.calcHist([gray], [0], None, [32], [0, 256])
    return _hellinger(hist.ravel())


def _shape(gray: np.ndarray) -> np.ndarray:
    g = gray.astype(np.float32)
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)
    mag, ang = cv2.cartToPolar(gx, gy, angleInDegrees=True)
    bins = ((ang % 180.0) / 22.5).astype(np.int32) % 8
    h, w = gray.shape
    parts = []
    for cells in (1, 2, 4):
        ys = np.linspace(0, h, cells + 1).astype(int)
        xs = np.linspace(0, w, cells + 1).astype(int)
        for i in range(cells):
            for j in range(cells):
                b = bins[ys[i] : ys[i + 1], xs[j] : xs[j + 1]].ravel()
                m = mag[ys[i] : ys[i + 1], xs[j] : xs[j + 1]].ravel()
                hist = np.bincount(b, weights=m, minlength=8).astype(np.float32)
                parts.append(_hellinger(hist) / cells)
    return np.concatenate(parts)


def _layout(gray: np.ndarray) -> np.ndarray:
    thumb = cv2.resize(gray, (8, 8), interpolation=cv2.INTER_AREA).astype(np.float32).ravel()
    return _unit(thumb - thumb.mean())


def global_descriptor(rgb: np.ndarray) -> np.ndarray:
    small = shrink(np.ascontiguousarray(rgb[..., :3], dtype=np.uint8), _WORK_SIDE)
    gray = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    blocks = {
        "color": _color(small),
        "tone": _tone(gray),
        "shape": _shape(gray),
        "layout": _layout(gray),
    }
    vec = np.concatenate([_unit(blocks[k].astype(np.float32)) * w for k, w in _WEIGHTS.items()])
    return _unit(vec).astype(np.float32)


class ClassicalEmbedder:
    """The offline default: :func:`global_descriptor`."""

    name = "classic-v1"
    dim = DESCRIPTOR_DIM

    def embed(self, rgb: np.ndarray) -> np.ndarray:
        return global_descriptor(rgb)


def default_embedder() -> Embedder:
    """The embedder new collections use.

    The classical descriptor until the model runtime provides a neural image
    embedding; a collection records its embedder's ``name`` so its vectors are
    never mixed with another space.
    """
    return ClassicalEmbedder()
