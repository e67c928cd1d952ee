"""Exact and perceptual hashes of an image.

* ``sha256`` -- of the encoded bytes: the same file.
* ``pixel_sha256`` -- of the decoded, upright 8-bit RGB pixels (plus their shape):
  the same picture saved twice, re-encoded losslessly or with its metadata stripped.
* ``phash`` -- 64-bit DCT hash (the pHash of Zauner / ``imagehash.phash``): grey
  copy shrunk to 32 x 32 with area averaging, 2-D DCT, the 8 x 8 lowest
  frequencies compared with their median. Bits are read row by row, first bit
  most significant, like ``imagehash``'s hex string. (OpenCV resampling and DCT
  scaling make a few bits differ from ``imagehash``'s values; the distance between
  two images is what matters and behaves the same.)
* ``dhash`` -- 64-bit gradient hash: 9 x 8 grey copy, each pixel brighter than its
  right-hand neighbour is a 1 bit.
* ``colorhash`` -- ``imagehash.colorhash`` (binbits 3) of a small thumbnail: which
  hue and saturation ranges the image is made of (42 bits as hex).

The perceptual hashes are computed from one shrunk copy, so a 24 MP photo costs a
few milliseconds (``imagehash`` on the full image takes ~10 x longer).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import cv2
import numpy as np

HASH_BITS = 64
_SHRINK_SIDE = 256
"""Perceptual hashes start from a copy no larger than this (area-averaged)."""


@dataclass(frozen=True)
class ImageHashes:
    sha256: str
    pixel_sha256: str
    phash: int
    dhash: int
    colorhash: str

    def to_json(self) -> dict[str, str]:
        return {
            "sha256": self.sha256,
            "pixel_sha256": self.pixel_sha256,
            "phash": to_hex(self.phash),
            "dhash": to_hex(self.dhash),
            "colorhash": self.colorhash,
        }


def to_hex(value: int) -> str:
    return f"{value:016x}"


def from_hex(value: str) -> int:
    return int(value, 16)


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def to_bytes(value: int) -> np.ndarray:
    """A 64-bit hash as 8 bytes, most significant first (the layout of binary indexes)."""
    return np.frombuffer(value.to_bytes(8, "big"), dtype=np.uint8).copy()


def from_bytes(data: np.ndarray | bytes) -> int:
    return int.from_bytes(bytes(np.asarray(data, dtype=np.uint8)), "big")


def bytes_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pixel_sha256(rgb: np.ndarray) -> str:
    """sha256 of the H x W x 3 uint8 pixels, prefixed by the shape (so 2x3 != 3x2)."""
    arr = np.ascontiguousarray(rgb, dtype=np.uint8)
    digest = hashlib.sha256(f"{arr.shape[0]}x{arr.shape[1]}x{arr.shape[2]};".encode())
    digest.update(arr.data)
    return digest.hexdigest()


def to_gray(rgb: np.ndarray) -> np.ndarray:
    if rgb.ndim == 2:
        return rgb
    return cv2.cvtColor(np.ascontiguousarray(rgb[..., :3]), cv2.COLOR_RGB2GRAY)


def shrink(image: np.ndarray, side: int = _SHRINK_SIDE) -> np.ndarray:
    """Area-averaged copy whose longest side is at most ``side`` (never enlarged)."""
    h, w = image.shape[:2]
    scale = side / max(h, w)
    if scale >= 1:
        return image
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _bits_to_int(bits: np.ndarray) -> int:
    return int.from_bytes(np.packbits(bits.astype(np.uint8).ravel()).tobytes(), "big")


def phash(gray: np.ndarray) -> int:
    small = cv2.resize(gray, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
    low = cv2.dct(small)[:8, :8]
    return _bits_to_int(low > np.median(low))


def dhash(gray: np.ndarray) -> int:
    small = cv2.resize(gray, (9, 8), interpolation=cv2.INTER_AREA).astype(np.int16)
    return _bits_to_int(small[:, 1:] > small[:, :-1])


def colorhash(rgb: np.ndarray) -> str:
    import imagehash
    from PIL import Image

    thumb = shrink(np.ascontiguousarray(rgb[..., :3], dtype=np.uint8), 64)
    return str(imagehash.colorhash(Image.fromarray(thumb, "RGB"), binbits=3))


def compute_hashes(rgb: np.ndarray, data_sha256: str) -> ImageHashes:
    """Every hash of one decoded image; ``data_sha256`` is the sha256 of its bytes."""
    small = shrink(np.ascontiguousarray(rgb[..., :3], dtype=np.uint8))
    gray = to_gray(small)
    return ImageHashes(
        sha256=data_sha256,
        pixel_sha256=pixel_sha256(rgb),
        phash=phash(gray),
        dhash=dhash(gray),
        colorhash=colorhash(small),
    )
