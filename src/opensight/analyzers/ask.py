"""Answers to the caller's questions about an image, from Florence-2-base-ft.

Two modes (option ``mode``):

* ``answer`` (default) -- free prompts (Cloudinary's ``ai_vision_general``): each prompt
  is given to the model as is and the answer is the generated text, unedited.
  Florence-2-base-ft was fine-tuned for captioning, detection, grounding and OCR, not
  for open visual question answering: its answers are often a caption-like phrase
  rather than an answer. They are returned as generated -- nothing is made up or
  "fixed" here. ``confidence`` is the geometric-mean token probability of the answer.
* ``yes_no`` -- moderation questions (Cloudinary's ``ai_vision_moderation``
  ``rejection_questions``). One forward pass per prompt scores the first answer token:
  P(yes) and P(no) sum the probabilities of every vocabulary token that reads "yes"
  (``yes``, ``Yes``, `` yes``, ...; "no" likewise). The answer is ``yes`` when
  ``P(yes)/(P(yes)+P(no)) - P(no)/(P(yes)+P(no)) > margin``, ``no`` when below
  ``-margin``, else ``unknown``; ``confidence`` is the larger of the two shares and
  ``scores`` gives both shares plus ``mass`` (P(yes)+P(no) over the whole vocabulary: a
  low mass means the model would rather not answer yes or no at all).

Per image the result is ``{"answers": [{"prompt", "answer", "confidence", ...}],
"model", "mode"}``, one entry per prompt in the caller's order.

Options (``context.options_for("ask")``): ``prompts`` (1..16 strings of 1..300
characters; no ``<tag>`` tokens, which Florence-2 reads as task switches), ``mode``,
``margin`` (0..1, default 0.2), ``max_new_tokens`` (1..128, default 32).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import ValidationFailed
from ..images import DecodedImage
from ..runtime.models import florence2
from .base import AnalysisContext, Analyzer, Readiness
from .registry import register

MODES = ("answer", "yes_no")
MAX_PROMPTS = 16
MAX_PROMPT_CHARS = 300
#: Florence-2 reads tag-like tokens (<CAPTION>, <OD>, <loc_12>, <s>) as instructions.
TAG = re.compile(r"</?[A-Za-z_][A-Za-z0-9_]*>")


@dataclass(frozen=True)
class AskOptions:
    prompts: tuple[str, ...]
    mode: str = "answer"
    margin: float = 0.2
    max_new_tokens: int = 32

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> AskOptions:
        mode = str(options.get("mode", "answer")).strip().lower()
        if mode not in MODES:
            raise ValidationFailed(f"ask option 'mode' must be one of: {', '.join(MODES)}")
        return cls(
            prompts=parse_prompts(options.get("prompts")),
            mode=mode,
            margin=_number(options, "margin", 0.2, 0.0, 1.0),
            max_new_tokens=int(_number(options, "max_new_tokens", 32, 1, 128)),
        )


def _number(options: Mapping[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = options.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValidationFailed(f"ask option {key!r} must be a number")
    try:
        number = float(value)
    except ValueError:
        raise ValidationFailed(f"ask option {key!r} must be a number") from None
    if not math.isfinite(number) or not low <= number <= high:
        raise ValidationFailed(f"ask option {key!r} must be between {low} and {high}")
    return number


def parse_prompts(value: Any) -> tuple[str, ...]:
    """A list of questions (a single string is one question)."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value:
        raise ValidationFailed("ask needs option 'prompts': a non-empty list of questions")
    if len(value) > MAX_PROMPTS:
        raise ValidationFailed(f"ask accepts at most {MAX_PROMPTS} prompts")
    prompts = []
    for raw in value:
        if not isinstance(raw, str) or not raw.strip():
            raise ValidationFailed("ask prompts must be non-empty strings")
        prompt = raw.strip()
        if len(prompt) > MAX_PROMPT_CHARS:
            raise ValidationFailed(f"ask prompts must be at most {MAX_PROMPT_CHARS} characters")
        if TAG.search(prompt):
            raise ValidationFailed("ask prompts may not contain <tag> tokens")
        prompts.append(prompt)
    return tuple(prompts)


def decide(scores: florence2.YesNo, margin: float) -> tuple[str, float]:
    """yes / no / unknown from the two shares, and the larger share as confidence."""
    share_yes = scores.yes_share
    share_no = 1.0 - share_yes
    if share_yes - share_no > margin:
        answer = "yes"
    elif share_no - share_yes > margin:
        answer = "no"
    else:
        answer = "unknown"
    return answer, max(share_yes, share_no)


class AskAnalyzer(Analyzer):
    name = "ask"
    version = "1.0.0"
    description = "Answers to prompts (free text or yes/no) from Florence-2-base-ft"
    license = "MIT"
    model = florence2.MODEL_ID

    def readiness(self) -> Readiness:
        needs = florence2.missing(self.model or florence2.MODEL_ID)
        return Readiness(ready=not needs, missing=needs)

    def analyze(
        self, images: Sequence[DecodedImage], context: AnalysisContext
    ) -> list[dict[str, Any]]:
        opts = AskOptions.from_mapping(context.options_for(self.name))
        model_id = self.model or florence2.MODEL_ID
        florence2.require(model_id)
        kind: Literal["generate", "yes_no"] = "yes_no" if opts.mode == "yes_no" else "generate"
        items = [
            florence2.Item(
                image=image.rgb, prompt=prompt, kind=kind, max_new_tokens=opts.max_new_tokens
            )
            for image in images
            for prompt in opts.prompts
        ]
        outputs = florence2.run(items, model_id)
        results = []
        per_image = len(opts.prompts)
        for start in range(0, len(outputs), per_image):
            answers = [
                self._answer(prompt, output, opts.margin)
                for prompt, output in zip(
                    opts.prompts, outputs[start : start + per_image], strict=True
                )
            ]
            results.append({"answers": answers, "model": model_id, "mode": opts.mode})
        return results

    @staticmethod
    def _answer(
        prompt: str, output: florence2.Generation | florence2.YesNo, margin: float
    ) -> dict[str, Any]:
        if isinstance(output, florence2.YesNo):
            answer, confidence = decide(output, margin)
            return {
                "prompt": prompt,
                "answer": answer,
                "confidence": round(confidence, 4),
                "scores": {
                    "yes": round(output.yes_share, 4),
                    "no": round(1.0 - output.yes_share, 4),
                    "mass": round(output.mass, 6),
                },
            }
        return {"prompt": prompt, "answer": output.text, "confidence": round(output.confidence, 4)}


register(AskAnalyzer())
