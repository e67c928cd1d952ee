"""The decision: is a candidate an exact, near-duplicate or similar match, and its score.

Scores are on one scale in every collection, so ``match`` means the same everywhere:

========================  ===============  =============================================
match                     score            evidence
========================  ===============  =============================================
``exact``                 1.0              same bytes (sha256) or same decoded pixels
``near_duplicate``        0.90 .. 0.999    >= ``MIN_INLIERS`` local features agree with
                                           one similarity transform (or, for pictures
                                           with too little texture, near-identical
                                           perceptual hash and descriptor)
``similar``               0.50 .. 0.899    the collection embedder's cosine >= its
                                           calibrated threshold (classical descriptor:
                                           ``SIMILAR_COSINE``; neural embedders: see
                                           ``opensight.collections.embedders``)
(none)                    < 0.50           not returned
========================  ===============  =============================================

Exact and near-duplicate decisions use the hashes, the classical descriptor and the
local features only -- every collection has them, whatever its embedder.

Near-duplicate score: ``0.90 + 0.099 * (1 - exp(-(inliers - MIN_INLIERS) / 40))``
-- 0.90 at the threshold, ~0.96 at 50 inliers, ~0.99 from 150. Similar score:
``0.50 + 0.40 * (cosine - SIMILAR_COSINE) / (1 - SIMILAR_COSINE)``, capped below
0.90 (a picture that is merely similar never outranks a verified near-duplicate).

Calibration (``bench/collections.py``, scikit-image photos and tiles): two
*different* pictures give at most 11 verified inliers (95 % of queries: <= 5);
near-duplicates under the issue's edits give a median of 60 to 300.
``MIN_INLIERS = 13`` keeps every absent picture unmatched there. The classical
descriptor's cosine between unrelated photos has its 99th percentile at 0.79,
hence ``SIMILAR_COSINE = 0.80``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from ..signals import Signals
from ..signals.hashes import hamming
from ..signals.local import Verification, verify

EXACT_SCORE = 1.0
NEAR_DUPLICATE_SCORE = 0.90
SIMILAR_SCORE = 0.50

MIN_INLIERS = 13
SIMILAR_COSINE = 0.80
#: Fallback for pictures with too little texture for local features (flat
#: graphics, smooth gradients, periodic patterns): near-duplicate when all hold.
GLOBAL_MAX_PHASH = 6
GLOBAL_MAX_DHASH = 10
GLOBAL_MIN_COSINE = 0.95


class Match(StrEnum):
    EXACT = "exact"
    NEAR_DUPLICATE = "near_duplicate"
    SIMILAR = "similar"


MATCH_ORDER = {Match.EXACT: 0, Match.NEAR_DUPLICATE: 1, Match.SIMILAR: 2}


def match_for(score: float) -> Match | None:
    """The match a score means (the inverse of the scoring, for filters and docs)."""
    if score >= EXACT_SCORE:
        return Match.EXACT
    if score >= NEAR_DUPLICATE_SCORE:
        return Match.NEAR_DUPLICATE
    if score >= SIMILAR_SCORE:
        return Match.SIMILAR
    return None


def near_duplicate_score(inliers: int) -> float:
    extra = max(0, inliers - MIN_INLIERS)
    return round(NEAR_DUPLICATE_SCORE + 0.099 * (1.0 - math.exp(-extra / 40.0)), 4)


def similar_score(cosine: float, threshold: float = SIMILAR_COSINE, full: float = 1.0) -> float:
    """``threshold`` (the embedder's calibrated cosine) scores 0.50, ``full`` 0.90 (capped
    below it); the classical descriptor uses 0.80 and 1.0."""
    if cosine < threshold:
        return round(max(0.0, cosine) * SIMILAR_SCORE / threshold, 4)
    value = SIMILAR_SCORE + 0.40 * (cosine - threshold) / (full - threshold)
    return round(min(value, NEAR_DUPLICATE_SCORE - 0.001), 4)


def is_exact(a: Signals, b: Signals) -> bool:
    return a.hashes.sha256 == b.hashes.sha256 or a.hashes.pixel_sha256 == b.hashes.pixel_sha256


def cosine(a: Signals, b: Signals) -> float:
    if a.descriptor.shape != b.descriptor.shape:
        return 0.0
    return float(a.descriptor.astype("float32") @ b.descriptor.astype("float32"))


@dataclass(frozen=True)
class Decision:
    score: float
    match: Match | None
    inliers: int = 0


def globally_near(a: Signals, b: Signals, cos: float) -> bool:
    return (
        cos >= GLOBAL_MIN_COSINE
        and hamming(a.hashes.phash, b.hashes.phash) <= GLOBAL_MAX_PHASH
        and hamming(a.hashes.dhash, b.hashes.dhash) <= GLOBAL_MAX_DHASH
    )


def decide(query: Signals, candidate: Signals, verify_local: bool = True) -> Decision:
    """Compare two images' signals; ``verify_local=False`` skips the (costlier) local check."""
    if is_exact(query, candidate):
        return Decision(EXACT_SCORE, Match.EXACT)
    cos = cosine(query, candidate)
    if verify_local:
        check: Verification = verify(query.local, candidate.local)
        if check.inliers >= MIN_INLIERS:
            return Decision(
                near_duplicate_score(check.inliers), Match.NEAR_DUPLICATE, check.inliers
            )
    if globally_near(query, candidate, cos):
        return Decision(NEAR_DUPLICATE_SCORE, Match.NEAR_DUPLICATE)
    score = similar_score(cos)
    return Decision(score, match_for(score))
