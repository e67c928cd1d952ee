"""Regenerate the example photos from scikit-image's bundled data (deterministic).

Run from the repository root: ``python examples/make_examples.py`` (needs scikit-image).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter
from skimage import data

HERE = Path(__file__).parent


def save(array: np.ndarray, name: str) -> None:
    Image.fromarray(array).save(HERE / name, "JPEG", quality=85, optimize=True)


def main() -> None:
    save(data.astronaut(), "astronaut.jpg")
    save(data.coffee(), "coffee.jpg")
    save(data.chelsea(), "chelsea.jpg")
    save(data.rocket(), "rocket.jpg")
    # Out of focus: a Gaussian blur of 4 px radius.
    blurred = Image.fromarray(data.coffee()).filter(ImageFilter.GaussianBlur(4))
    save(np.asarray(blurred), "coffee_blurred.jpg")
    # Underexposed: a fifth of the light.
    dark = (data.chelsea().astype(np.float32) * 0.2 + 0.5).astype(np.uint8)
    save(dark, "chelsea_dark.jpg")


if __name__ == "__main__":
    main()
