"""Per-request analyzer options made of non-negative numbers (thresholds, sizes)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import fields, replace
from typing import Any, TypeVar

from ..errors import ValidationFailed

T = TypeVar("T")


def numeric_options(analyzer: str, defaults: T, options: Mapping[str, Any]) -> T:
    """``defaults`` (a dataclass) with the caller's overrides applied.

    Keys the dataclass does not have are ignored (other front ends' options may
    share the mapping); each value must be a finite number >= 0; int fields are
    truncated to int. Range checks specific to an analyzer stay with it.
    """
    known = {f.name: f.type for f in fields(defaults)}  # type: ignore[arg-type]
    changes: dict[str, Any] = {}
    for key, value in options.items():
        if key not in known:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValidationFailed(f"{analyzer} option {key!r} must be a number")
        try:
            number = float(value)
        except ValueError:
            raise ValidationFailed(f"{analyzer} option {key!r} must be a number") from None
        if not math.isfinite(number) or number < 0:
            raise ValidationFailed(f"{analyzer} option {key!r} must be a finite number >= 0")
        changes[key] = int(number) if known[key] in ("int", int) else number
    return replace(defaults, **changes)  # type: ignore[type-var]
