"""Image preprocessing of Hugging Face image processors, in NumPy/Pillow/OpenCV.

The exported models expect exactly the tensors their ``preprocessor_config.json``
describes; these functions reproduce the reference (transformers' PIL-backend
image processors) step by step so that no torch or transformers is needed at
run time. The parity tests compare them with the reference on the same pixels.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

#: PIL resampling codes as stored in preprocessor_config.json ("resample": 2 = bilinear).
_PIL_RESAMPLE = {
    0: Image.Resampling.NEAREST,
    1: Image.Resampling.LANCZOS,
    2: Image.Resampling.BILINEAR,
    3: Image.Resampling.BICUBIC,
    4: Image.Resampling.BOX,
    5: Image.Resampling.HAMMING,
}


@dataclass(frozen=True)
class ImageProcessorConfig:
    """The fields of ``preprocessor_config.json`` our families use (defaults per family)."""

    height: int
    width: int
    resample: int = 2
    do_resize: bool = True
    do_rescale: bool = True
    rescale_factor: float = 1 / 255
    do_normalize: bool = True
    image_mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    image_std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    do_pad: bool = False

    @classmethod
    def load(cls, path: Path, defaults: ImageProcessorConfig) -> ImageProcessorConfig:
        """Read ``path`` (missing keys keep ``defaults``); a missing file means the defaults."""
        try:
            raw = json.loads(path.read_text("utf-8"))
        except FileNotFoundError:
            return defaults
        return cls.from_mapping(raw, defaults)

    @classmethod
    def from_mapping(
        cls, raw: Mapping[str, Any], defaults: ImageProcessorConfig
    ) -> ImageProcessorConfig:
        height, width = defaults.height, defaults.width
        size = raw.get("size")
        if isinstance(size, Mapping):
            if "height" in size and "width" in size:
                height, width = int(size["height"]), int(size["width"])
            elif "shortest_edge" in size:  # square models only: CLIP-style configs
                height = width = int(size["shortest_edge"])
        elif isinstance(size, int):
            height = width = size

        def triple(key: str, default: tuple[float, float, float]) -> tuple[float, float, float]:
            value = raw.get(key)
            if value is None:
                return default
            if isinstance(value, (int, float)):
                return (float(value),) * 3
            a, b, c = (float(v) for v in value)
            return (a, b, c)

        return cls(
            height=height,
            width=width,
            resample=int(raw.get("resample", defaults.resample)),
            do_resize=bool(raw.get("do_resize", defaults.do_resize)),
            do_rescale=bool(raw.get("do_rescale", defaults.do_rescale)),
            rescale_factor=float(raw.get("rescale_factor", defaults.rescale_factor)),
            do_normalize=bool(raw.get("do_normalize", defaults.do_normalize)),
            image_mean=triple("image_mean", defaults.image_mean),
            image_std=triple("image_std", defaults.image_std),
            do_pad=bool(raw.get("do_pad", defaults.do_pad)),
        )


def resize_pil(rgb: np.ndarray, height: int, width: int, resample: int) -> np.ndarray:
    """Resize 8-bit RGB with Pillow, as transformers' PIL backend does (no reducing gap)."""
    if rgb.shape[0] == height and rgb.shape[1] == width:
        return rgb
    image = Image.fromarray(np.ascontiguousarray(rgb[..., :3], dtype=np.uint8), "RGB")
    return np.asarray(image.resize((width, height), resample=_PIL_RESAMPLE.get(resample, resample)))


def rescale(image: np.ndarray, factor: float) -> np.ndarray:
    """``image * factor`` computed in float64 and stored as float32 (the reference's order)."""
    return (image.astype(np.float64) * factor).astype(np.float32)


def normalize(image: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Per-channel ``(x - mean) / std`` on an H x W x C float32 image."""
    m = np.asarray(mean, dtype=np.float32)
    s = np.asarray(std, dtype=np.float32)
    return ((image - m) / s).astype(np.float32)


def resized_tensor(rgb: np.ndarray, cfg: ImageProcessorConfig) -> np.ndarray:
    """Resize (PIL) -> rescale -> normalize -> 3 x H x W float32 (SigLIP, RT-DETR, CLIP...)."""
    image: np.ndarray = np.ascontiguousarray(rgb[..., :3], dtype=np.uint8)
    if cfg.do_resize:
        image = resize_pil(image, cfg.height, cfg.width, cfg.resample)
    out = rescale(image, cfg.rescale_factor) if cfg.do_rescale else image.astype(np.float32)
    if cfg.do_normalize:
        out = normalize(out, cfg.image_mean, cfg.image_std)
    return np.ascontiguousarray(out.transpose(2, 0, 1))


# --------------------------------------------------------------------------- OWLv2
def gaussian_kernel(sigma: float, truncate: float = 4.0) -> np.ndarray:
    """``scipy.ndimage.gaussian_filter``'s 1-D kernel (radius ``int(truncate*sigma+0.5)``)."""
    radius = int(truncate * float(sigma) + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    phi = np.exp(-0.5 / (float(sigma) ** 2) * x * x)
    out: np.ndarray = phi / phi.sum()
    return out


def _mirror(index: np.ndarray, size: int) -> np.ndarray:
    """SciPy's ``mode='mirror'``: reflect about the edge samples (d c b | a b c d | c b a)."""
    if size == 1:
        return np.zeros_like(index)
    period = 2 * (size - 1)
    index = np.mod(index, period)
    out: np.ndarray = np.where(index > size - 1, period - index, index)
    return out


def _resize_taps(valid: int, side: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Source indices and weights (n_out x K) of OWLv2's resize along one axis.

    The reference pads the image with zeros to ``side``, Gaussian-filters it (sigma
    ``(side / n_out - 1) / 2`` when shrinking, mirror edges) and samples it linearly at
    ``(j + 0.5) * side / n_out - 0.5`` (``ndimage.zoom(order=1, grid_mode=True,
    mode='mirror')``). Both steps are linear, so each output sample is a short weighted sum
    of source samples; taps that land in the zero padding (``>= valid``) get weight 0, so
    the padded square is never built.
    """
    coord = (np.arange(n_out, dtype=np.float64) + 0.5) * (side / n_out) - 0.5
    coord = _mirror(coord, side) if side > 1 else np.zeros_like(coord)
    low = np.clip(np.floor(coord).astype(np.intp), 0, side - 1)
    high = np.minimum(low + 1, side - 1)
    frac = coord - low
    sigma = max(0.0, (side / n_out - 1.0) / 2.0)
    kernel = gaussian_kernel(sigma) if sigma > 1e-15 else np.ones(1)
    offsets = np.arange(len(kernel)) - len(kernel) // 2
    index = np.concatenate(
        [_mirror(low[:, None] + offsets, side), _mirror(high[:, None] + offsets, side)], axis=1
    )
    weight = np.concatenate([(1.0 - frac)[:, None] * kernel, frac[:, None] * kernel], axis=1)
    inside = index < valid
    return np.where(inside, index, 0), np.where(inside, weight, 0.0)


def _apply_taps(image: np.ndarray, index: np.ndarray, weight: np.ndarray, axis: int) -> np.ndarray:
    """``sum_k weight[:, k] * image.take(index[:, k], axis)`` in float32."""
    shape = [1] * image.ndim
    shape[axis] = -1
    out: np.ndarray | None = None
    for k in range(index.shape[1]):
        w = weight[:, k]
        if not w.any():
            continue
        term = np.take(image, index[:, k], axis=axis).astype(np.float32)
        term *= w.astype(np.float32).reshape(shape)
        out = term if out is None else out + term
    if out is None:
        size = list(image.shape)
        size[axis] = index.shape[0]
        return np.zeros(size, dtype=np.float32)
    return out


def owlv2_tensor(rgb: np.ndarray, cfg: ImageProcessorConfig) -> np.ndarray:
    """transformers' ``Owlv2ImageProcessor``: rescale, pad to a square (bottom/right, zeros),
    resize with Gaussian anti-aliasing (SciPy there, separable taps here), clip to the
    padded image's range, normalise. Works on the 8-bit image and the output rows only,
    so a large photo never becomes a full-size float square."""
    image = np.ascontiguousarray(rgb[..., :3], dtype=np.uint8)
    height, width = image.shape[:2]
    scale = np.float32(cfg.rescale_factor)
    side = max(height, width)
    side_h, side_w = (side, side) if cfg.do_pad else (height, width)
    padded = (side_h, side_w) != (height, width)
    # the reference clips to the range of the padded, rescaled image (zeros included)
    low = float(image.min()) * float(scale)
    low = min(low, 0.0) if padded else low
    high = max(float(image.max()) * float(scale), 0.0)
    if cfg.do_resize:
        index, weight = _resize_taps(height, side_h, cfg.height)
        rows = _apply_taps(image, index, weight, axis=0)
        index, weight = _resize_taps(width, side_w, cfg.width)
        out = np.clip(_apply_taps(rows, index, weight, axis=1) * scale, low, high)
    else:
        out = np.zeros((side_h, side_w, 3), dtype=np.float32)
        out[:height, :width] = image.astype(np.float32) * scale
    if cfg.do_normalize:
        out = normalize(out.astype(np.float32), cfg.image_mean, cfg.image_std)
    return np.ascontiguousarray(out.astype(np.float32).transpose(2, 0, 1))


def center_to_corners(boxes: np.ndarray) -> np.ndarray:
    """(cx, cy, w, h) -> (x0, y0, x1, y1), as transformers' ``center_to_corners_format``."""
    cx, cy, w, h = (boxes[..., i] for i in range(4))
    return np.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], axis=-1)


def sigmoid(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = 1.0 / (1.0 + np.exp(-x.astype(np.float64)))
    return out


def box_entry(
    x0: float, y0: float, x1: float, y1: float, width: int, height: int
) -> dict[str, Any]:
    """A box in pixels of the original image (clipped to it) plus its normalised copy."""
    x0, x1 = (min(max(v, 0.0), float(width)) for v in (x0, x1))
    y0, y1 = (min(max(v, 0.0), float(height)) for v in (y0, y1))
    w, h = max(0.0, x1 - x0), max(0.0, y1 - y0)
    return {
        "box": {"x": round(x0, 2), "y": round(y0, 2), "width": round(w, 2), "height": round(h, 2)},
        "box_normalized": {
            "x": round(x0 / width, 6) if width else 0.0,
            "y": round(y0 / height, 6) if height else 0.0,
            "width": round(w / width, 6) if width else 0.0,
            "height": round(h / height, 6) if height else 0.0,
        },
    }


def finite(value: float) -> float:
    return value if math.isfinite(value) else 0.0
