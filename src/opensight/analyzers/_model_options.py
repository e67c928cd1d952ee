"""Option parsing and readiness shared by the neural analyzers (embedding, tags, objects, detect)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ..errors import ValidationFailed
from ..runtime import store
from .base import Readiness


def model_readiness(model_id: str) -> Readiness:
    """Ready when the model is installed; otherwise the command that installs it."""
    if store.is_installed(model_id):
        return Readiness(ready=True)
    return Readiness(ready=False, missing=[f"opensight models pull {model_id}"])


def number(
    options: Mapping[str, Any], key: str, default: float, low: float, high: float, owner: str
) -> float:
    """``options[key]`` as a finite float in ``low..high`` (``default`` when absent)."""
    if key not in options or options[key] is None:
        return default
    value = options[key]
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValidationFailed(f"{owner} option {key!r} must be a number")
    try:
        result = float(value)
    except ValueError:
        raise ValidationFailed(f"{owner} option {key!r} must be a number") from None
    if not math.isfinite(result) or not low <= result <= high:
        raise ValidationFailed(f"{owner} option {key!r} must be in {low}..{high}")
    return result


def integer(
    options: Mapping[str, Any], key: str, default: int, low: int, high: int, owner: str
) -> int:
    """``options[key]`` as a whole number in ``low..high``."""
    result = number(options, key, default, low, high, owner)
    if result != int(result):
        raise ValidationFailed(f"{owner} option {key!r} must be a whole number")
    return int(result)


def text_list(
    options: Mapping[str, Any], key: str, owner: str, *, max_items: int, max_length: int
) -> list[str]:
    """A list of non-empty strings (a comma-separated string is accepted too), deduplicated."""
    raw = options.get(key)
    if raw is None:
        return []
    if isinstance(raw, str):
        raw = raw.split(",")
    if not isinstance(raw, (list, tuple)):
        raise ValidationFailed(f"{owner} option {key!r} must be a list of strings")
    items: list[str] = []
    for value in raw:
        if not isinstance(value, str):
            raise ValidationFailed(f"{owner} option {key!r} must be a list of strings")
        text = " ".join(value.split())
        if not text:
            continue
        if len(text) > max_length:
            raise ValidationFailed(
                f"{owner} option {key!r}: {text[:20]!r}... is longer than {max_length} characters"
            )
        if text not in items:
            items.append(text)
    if len(items) > max_items:
        raise ValidationFailed(f"{owner} option {key!r} takes at most {max_items} entries")
    return items
