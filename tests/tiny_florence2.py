"""A tiny random-weight Florence-2 in the installed layout (real architecture, tiny sizes).

Everything is built here, offline and deterministic (fixed seeds): a byte-level BPE
tokenizer with BART's special-token ids (``<s>``=0, ``<pad>``=1, ``</s>``=2) plus the
``<image>`` token and single tokens for ``yes``/``no``, a CLIP image processor at 32 x 32,
and a one-stage DaViT + one-layer BART. The weights are redrawn with a large scale so
that outputs depend on the image and the prompt (transformers' default init at this
size makes every input decode to the same tokens, and a parity test could not fail).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

MODEL_ID = "florence-2-base-ft"
IMAGE_SIZE = 32
PATCH_STRIDE = 4
#: (32 / 4)^2 spatial tokens + 1 temporal token, as Florence-2's projector emits.
IMAGE_TOKENS = (IMAGE_SIZE // PATCH_STRIDE) ** 2 + 1
#: Words that get their own BPE token (Ġ is the byte-level space).
WORDS = ("yes", "no", "Yes", "No", "Ġyes", "Ġno", "Ġa", "Ġthe", "Ġis", "Ġin", "Ġof", "What")


def build_tokenizer() -> Any:
    from tokenizers import pre_tokenizers
    from transformers import BartTokenizer

    vocab: dict[str, int] = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for char in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab.setdefault(char, len(vocab))
    merges: list[tuple[str, str]] = []
    for word in WORDS:
        current = word[0]
        for char in word[1:]:
            if (current, char) not in merges:
                merges.append((current, char))
            current += char
            vocab.setdefault(current, len(vocab))
    vocab["<mask>"] = len(vocab)
    return BartTokenizer(
        vocab=vocab, merges=merges, extra_special_tokens={"image_token": "<image>"}
    )


def build(target: Path, seed: int = 0) -> Any:
    """Write processor + model files into ``target`` (``save_pretrained`` layout).

    Returns the torch model (the reference object ``tests.tinymodels`` keeps).
    """
    import torch
    from transformers import (
        CLIPImageProcessorPil,
        Florence2Config,
        Florence2ForConditionalGeneration,
        Florence2Processor,
        GenerationConfig,
    )

    tokenizer = build_tokenizer()
    image_processor = CLIPImageProcessorPil(
        size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        do_center_crop=False,
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
        resample=3,
    )
    image_processor.image_seq_length = IMAGE_TOKENS
    processor = Florence2Processor(image_processor=image_processor, tokenizer=tokenizer)
    special = {"bos_token_id": 0, "pad_token_id": 1, "eos_token_id": 2}
    config = Florence2Config(
        text_config={
            "model_type": "bart",
            "vocab_size": len(tokenizer),
            "max_position_embeddings": 512,
            "encoder_layers": 1,
            "decoder_layers": 1,
            "encoder_ffn_dim": 32,
            "decoder_ffn_dim": 32,
            "encoder_attention_heads": 2,
            "decoder_attention_heads": 2,
            "d_model": 32,
            "decoder_start_token_id": 2,
            "forced_bos_token_id": 0,
            "forced_eos_token_id": 2,
            **special,
        },
        vision_config={
            "depths": [1],
            "patch_size": [7],
            "patch_stride": [PATCH_STRIDE],
            "patch_padding": [3],
            "patch_prenorm": [False],
            "embed_dim": [32],
            "num_heads": [2],
            "num_groups": [2],
            "window_size": 4,
            "projection_dim": 32,
            "drop_path_rate": 0.0,
        },
        image_token_id=tokenizer.image_token_id,
    )
    torch.manual_seed(seed)
    model = Florence2ForConditionalGeneration(config).eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() >= 2:
                fan_in = parameter[0].numel()
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 2 / fan_in**0.5)
    # Florence-2-base-ft's own generation settings (beam search, no 3-gram repeats).
    model.generation_config = GenerationConfig(
        decoder_start_token_id=2,
        forced_bos_token_id=0,
        forced_eos_token_id=2,
        num_beams=3,
        no_repeat_ngram_size=3,
        early_stopping=True,
        max_new_tokens=20,
        **special,
    )
    target.mkdir(parents=True, exist_ok=True)
    processor.save_pretrained(str(target))
    model.save_pretrained(str(target))
    return model


def install(model_id: str, model_dir: Path) -> Path:
    """Build into ``<model_dir>/<model_id>`` and write the manifest (installed)."""
    from opensight.config import Settings
    from opensight.runtime import store

    target = Path(model_dir) / model_id
    build(target)
    files = {
        path.name: {"size_bytes": path.stat().st_size, "verified": False, "tiny": True}
        for path in sorted(target.iterdir())
        if path.is_file() and path.name != store.MANIFEST_NAME
    }
    store.write_manifest(model_id, files, settings=Settings(model_dir=Path(model_dir)), tiny=True)
    return target
