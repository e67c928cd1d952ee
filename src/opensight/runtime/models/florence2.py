"""Florence-2 (MIT): one small seq2seq vision-language model for captions and questions.

Why transformers + torch and not ONNX Runtime: Florence-2 generates with beam search
over a BART decoder fed by a DaViT image encoder; exporting the encoder, the decoder
with its key/value cache and re-implementing beam search, ``no_repeat_ngram_size`` and
forced BOS/EOS by hand would duplicate ``GenerationMixin`` and drift from it.
transformers (>= 5) ships Florence-2 natively (``Florence2ForConditionalGeneration``,
``Florence2Processor``; no ``trust_remote_code``), so the model runs behind the optional
extra ``vlm`` (``pip install "opensight[vlm]"``). Without it the analyzers say so in
``readiness()`` and raise ``ModelUnavailable`` naming that command -- never a made-up answer.

Weights: ``florence-community/Florence-2-base-ft``, the transformers-native conversion of
``microsoft/Florence-2-base-ft`` (MIT, 0.23 B parameters, English only). The file list
and sizes below were not checked against the hub from here (no network), so the spec is
``verified=False`` with ``sha256=None``.

This module owns everything model-specific: loading (shared through
``runtime.load``), prompt building (the processor's task tokens), batched generation
with padding behind ``runtime.batcher`` and the yes/no scoring. Analyzers hand it
``Item``s and get ``Generation`` / ``YesNo`` results back.
"""

from __future__ import annotations

import functools
import importlib.util
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ...errors import ModelUnavailable
from .. import catalog, store
from ..catalog import ModelFile, ModelSpec, register
from ..sessions import get_runtime

MODEL_ID = "florence-2-base-ft"
EXTRA = "vlm"
INSTALL_EXTRA = f'pip install "opensight[{EXTRA}]"'

#: Florence-2 task tokens for the caption detail levels.
CAPTION_TASKS = {"short": "<CAPTION>", "detailed": "<DETAILED_CAPTION>"}

SPEC = register(
    ModelSpec(
        id=MODEL_ID,
        tasks=("caption", "ask"),
        repo="florence-community/Florence-2-base-ft",
        revision="main",
        files=tuple(
            ModelFile(name)
            for name in (
                "config.json",
                "generation_config.json",
                "model.safetensors",
                "preprocessor_config.json",
                "processor_config.json",
                "tokenizer.json",
                "tokenizer_config.json",
            )
        ),
        license="MIT",
        backend="transformers",
        description=(
            "Florence-2-base-ft (Microsoft, 0.23B): captions and free-form prompts; "
            f"English only; needs the optional extra: {INSTALL_EXTRA}"
        ),
        size_mb=None,
        verified=False,
        config={"max_batch_size": 8},
    )
)


# ------------------------------------------------------------------ availability
@functools.cache
def extra_missing() -> str | None:
    """Why the ``vlm`` extra is unusable here (None when it is fine). Cached: imports are slow."""
    for module in ("torch", "transformers"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed; run `{INSTALL_EXTRA}`"
    try:  # finds the module without importing torch (readiness must stay cheap)
        native = importlib.util.find_spec("transformers.models.florence2") is not None
    except ImportError:
        native = False
    if not native:
        return (
            "the installed transformers has no native Florence-2 (needs >= 5.0); "
            f'run `pip install -U "opensight[{EXTRA}]"`'
        )
    return None


def missing(model_id: str = MODEL_ID) -> list[str]:
    """What to install or pull before ``model_id`` can run (empty when ready)."""
    needs = []
    if extra_missing() is not None:
        needs.append(INSTALL_EXTRA)
    if not store.is_installed(model_id):
        needs.append(f"opensight models pull {model_id}")
    return needs


def require(model_id: str = MODEL_ID) -> None:
    """Raise ``ModelUnavailable`` (naming the pull command and/or the extra) unless ready."""
    problem = extra_missing()
    if not store.is_installed(model_id):
        error = store.unavailable(model_id)
        if problem is not None:
            error = ModelUnavailable(
                model_id, f"{error.detail}; it also needs the optional extra: {INSTALL_EXTRA}"
            )
        raise error
    if problem is not None:
        raise ModelUnavailable(model_id, f"model {model_id!r} cannot run: {problem}")


# --------------------------------------------------------------------- requests
@dataclass(frozen=True, eq=False)
class Item:
    """One image + one prompt for the batcher.

    ``kind`` "generate" decodes text (beam search as in the model's generation config);
    "yes_no" runs one forward pass and scores the first answer token.
    """

    image: np.ndarray
    """H x W x 3 uint8 RGB."""
    prompt: str
    """A task token (``<CAPTION>``) or free text."""
    kind: Literal["generate", "yes_no"] = "generate"
    max_new_tokens: int = 64


@dataclass(frozen=True)
class Generation:
    token_ids: tuple[int, ...]
    """Decoder output from the start token to the first EOS, as ``generate`` returns it."""
    text: str
    confidence: float
    """Geometric-mean probability the model gives its output tokens (after the forced <s>)."""


@dataclass(frozen=True)
class YesNo:
    yes: float
    """Probability of the tokens reading "yes" at the first answer step (whole vocabulary)."""
    no: float

    @property
    def mass(self) -> float:
        return self.yes + self.no

    @property
    def yes_share(self) -> float:
        """P(yes) / (P(yes) + P(no)): the answer constrained to yes or no."""
        return self.yes / self.mass if self.mass > 0 else 0.5


# ---------------------------------------------------------------------- model
class Florence2:
    """A loaded model + processor. Batch methods; not thread-safe (the batcher serialises)."""

    def __init__(self, path: Path, device: str | None = None, threads: int | None = None) -> None:
        import torch
        from transformers import AutoProcessor, Florence2ForConditionalGeneration
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # no tqdm bars in a server's log
        if threads:
            torch.set_num_threads(threads)
        self.torch = torch
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.dtype = torch.float16 if self.device.startswith("cuda") else torch.float32
        self.processor = AutoProcessor.from_pretrained(str(path))
        model: Any = Florence2ForConditionalGeneration.from_pretrained(str(path), dtype=self.dtype)
        self.model: Any = model.to(self.device).eval()
        self.tokenizer = self.processor.tokenizer
        generation = self.model.generation_config
        self.eos_id = int(generation.eos_token_id if generation.eos_token_id is not None else 2)
        start = generation.decoder_start_token_id
        if start is None:
            start = self.model.config.text_config.decoder_start_token_id
        # The decoder prefix generate() feeds before the first answer token.
        self.answer_prefix = [int(start)]
        if generation.forced_bos_token_id is not None:
            self.answer_prefix.append(int(generation.forced_bos_token_id))
        self.yes_ids = self._word_ids("yes")
        self.no_ids = self._word_ids("no")

    def _word_ids(self, word: str) -> list[int]:
        """Every vocabulary token that reads ``word`` (any case, with or without a space).

        The decoder may emit any of them (BART has ``yes``, ``Yes``, ``Ġyes``, ...), so the
        yes/no scores sum them all rather than trusting one spelling.
        """
        texts = self.tokenizer.batch_decode([[i] for i in range(len(self.tokenizer))])
        return [i for i, text in enumerate(texts) if text.strip().lower() == word]

    def _inputs(self, images: Sequence[np.ndarray], prompts: Sequence[str]) -> Any:
        from PIL import Image

        pictures = [Image.fromarray(np.ascontiguousarray(image), "RGB") for image in images]
        inputs = self.processor(
            images=pictures, text=list(prompts), padding="longest", return_tensors="pt"
        )
        inputs = inputs.to(self.device)
        inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        return inputs

    def _encode(self, inputs: Any) -> Any:
        """Image + prompt through the vision tower and the text encoder, once per batch.

        The same steps as ``Florence2Model.forward``; generation and the confidence pass
        then reuse the encoder states instead of running the (costly) vision tower twice.
        """
        model = self.model
        embeds = model.get_input_embeddings()(inputs["input_ids"])
        image = model.get_image_features(inputs["pixel_values"]).pooler_output
        image = image.to(embeds.device, embeds.dtype)
        mask = model.get_placeholder_mask(
            inputs["input_ids"], inputs_embeds=embeds, image_features=image
        )
        embeds = embeds.masked_scatter(mask, image)
        return model.get_encoder()(inputs_embeds=embeds, attention_mask=inputs["attention_mask"])

    def generate(
        self, images: Sequence[np.ndarray], prompts: Sequence[str], max_new_tokens: int
    ) -> list[Generation]:
        """Generate for a padded batch; each result equals generating for its item alone."""
        torch = self.torch
        inputs = self._inputs(images, prompts)
        with torch.inference_mode():
            encoded = self._encode(inputs)
            sequences = self.model.generate(
                input_ids=inputs["input_ids"],
                attention_mask=inputs["attention_mask"],
                # A fresh wrapper: generate() expands it in place for the beams.
                encoder_outputs=type(encoded)(last_hidden_state=encoded.last_hidden_state),
                max_new_tokens=max_new_tokens,
                do_sample=False,
            )
            confidences = self._confidences(inputs, encoded, sequences)
        results = []
        for sequence, confidence in zip(sequences.tolist(), confidences, strict=True):
            ids = self._until_eos(sequence)
            # Captions and answers are plain text (Florence-2's "pure_text" post-processing).
            text = self.tokenizer.decode(ids, skip_special_tokens=True).strip()
            results.append(Generation(tuple(ids), text, confidence))
        return results

    def _until_eos(self, sequence: list[int]) -> list[int]:
        """Cut the batch padding: keep up to the first EOS after the decoder start token."""
        for index in range(1, len(sequence)):
            if sequence[index] == self.eos_id:
                return sequence[: index + 1]
        return sequence

    def _confidences(self, inputs: Any, encoded: Any, sequences: Any) -> list[float]:
        """exp(mean log P(token)) of each output's tokens after the forced prefix, EOS included.

        One teacher-forced decoder pass over the finished sequences (raw model
        probabilities; beam-search scores would need every step's full distribution kept).
        """
        torch = self.torch
        logits = self.model(
            encoder_outputs=encoded,
            attention_mask=inputs["attention_mask"],
            decoder_input_ids=sequences[:, :-1],
        ).logits.float()
        targets = sequences[:, 1:]
        picked = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        logp = (picked - torch.logsumexp(logits, dim=-1)).tolist()
        values = []
        skip = len(self.answer_prefix) - 1  # forced tokens (<s>) are not the model's choice
        for row, sequence in zip(logp, sequences.tolist(), strict=True):
            length = len(self._until_eos(sequence)) - 1  # targets up to and including EOS
            kept = row[skip:length]
            values.append(float(np.exp(np.mean(kept))) if kept else 0.0)
        return values

    def yes_no(self, images: Sequence[np.ndarray], prompts: Sequence[str]) -> list[YesNo]:
        """P(yes) and P(no) at the first answer step (after the forced BOS), one forward pass."""
        torch = self.torch
        inputs = self._inputs(images, prompts)
        prefix = torch.tensor([self.answer_prefix] * len(prompts), device=self.device)
        with torch.inference_mode():
            logits = self.model(**inputs, decoder_input_ids=prefix).logits[:, -1, :]
        probs = logits.float().softmax(dim=-1)
        yes = probs[:, self.yes_ids].sum(dim=-1).tolist() if self.yes_ids else [0.0] * len(prompts)
        no = probs[:, self.no_ids].sum(dim=-1).tolist() if self.no_ids else [0.0] * len(prompts)
        return [YesNo(float(y), float(n)) for y, n in zip(yes, no, strict=True)]


def load(path: Path) -> Florence2:
    """The ``runtime.load`` loader: device from the settings' providers, threads from the runtime."""
    runtime = get_runtime()
    providers = (runtime.settings.providers or "").lower()
    gpu = any(name in providers for name in ("cuda", "gpu", "tensorrt", "trt"))
    device = "cpu" if providers and not gpu else None  # providers=cpu keeps torch off the GPU
    return Florence2(path, device=device, threads=runtime.threads)


def model(model_id: str = MODEL_ID) -> Florence2:
    """The shared loaded model (loads on first use; ``ModelUnavailable`` when not ready)."""
    require(model_id)
    return get_runtime().load(model_id, "transformers", load)


# ------------------------------------------------------------------- batching
_RUN_LOCK = threading.Lock()


def run_batch(model_id: str, items: list[Item]) -> list[Generation | YesNo]:
    """Run a mixed batch: items are grouped by (kind, max_new_tokens), order is kept."""
    florence = model(model_id)
    results: list[Generation | YesNo | None] = [None] * len(items)
    groups: dict[tuple[str, int], list[int]] = {}
    for index, item in enumerate(items):
        key = (item.kind, item.max_new_tokens if item.kind == "generate" else 0)
        groups.setdefault(key, []).append(index)
    with _RUN_LOCK:  # one batch on the model at a time, even across batchers
        for (kind, max_new_tokens), indexes in groups.items():
            images = [items[i].image for i in indexes]
            prompts = [items[i].prompt for i in indexes]
            outputs: list[Generation | YesNo] = []
            if kind == "yes_no":
                outputs.extend(florence.yes_no(images, prompts))
            else:
                outputs.extend(florence.generate(images, prompts, max_new_tokens))
            for position, index in enumerate(indexes):
                results[index] = outputs[position]
    return [r for r in results if r is not None]


def run(items: Sequence[Item], model_id: str = MODEL_ID) -> list[Generation | YesNo]:
    """Submit ``items`` to the model's shared batcher; concurrent callers share batches."""
    require(model_id)
    if not items:
        return []
    runtime = get_runtime()
    limit = int(catalog.get(model_id).config.get("max_batch_size", 8))
    batcher = runtime.batcher(
        model_id,
        "florence2",
        functools.partial(run_batch, model_id),
        max_batch_size=min(limit, runtime.settings.batch_max_size),
    )
    return batcher.submit_many(list(items))
