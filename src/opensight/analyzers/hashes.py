"""Exact and perceptual hashes: the same functions collections use.

Per image: ``sha256`` of the bytes, ``pixel_sha256`` of the decoded pixels, and
the 64-bit ``phash`` and ``dhash`` and the 42-bit ``colorhash`` as hex (see
:mod:`opensight.signals.hashes`). Compare two perceptual hashes by the number of
differing bits: up to ~10 of 64 is the same picture re-encoded or resized.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..images import DecodedImage
from ..signals.hashes import compute_hashes
from .base import AnalysisContext, Analyzer
from .registry import register


class HashesAnalyzer(Analyzer):
    name = "hashes"
    version = "1.0.0"
    description = "sha256 of the bytes and of the pixels; perceptual pHash, dHash and colour hash."

    def analyze(
        self, images: Sequence[DecodedImage], context: AnalysisContext
    ) -> list[dict[str, Any]]:
        return [dict(compute_hashes(image.rgb, image.sha256).to_json()) for image in images]


register(HashesAnalyzer())
