"""Tiny random-weight models of the real architectures, written in the installed layout.

``install_tiny(model_id, model_dir)`` makes ``<model_dir>/<model_id>/`` look like a
pulled model (the same file names as the real Hub repo, plus the manifest), so a
server started with ``OPENSIGHT_MODEL_DIR=<model_dir>`` has that model installed
without any download. The weights are random (fixed seeds) and the sizes tiny;
the parity tests run the torch reference (``build_tiny(model_id).torch_model``) on
the same inputs to prove our ONNX, pre- and post-processing.

Each family adds a builder to ``BUILDERS`` (model id -> ``build(directory) -> torch
model or any reference object``). A model is built and exported once per process
and then copied for every install.
"""

from __future__ import annotations

import json
import shutil
import string
import tempfile
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SEED = 20241121


@dataclass
class TinyModel:
    model_id: str
    directory: Path
    """The built files (copy them; do not modify)."""
    torch_model: Any


BUILDERS: dict[str, Callable[[Path], Any]] = {}
_BUILT: dict[str, TinyModel] = {}
_LOCK = threading.Lock()


def builder(model_id: str) -> Callable[[Callable[[Path], Any]], Callable[[Path], Any]]:
    def register(fn: Callable[[Path], Any]) -> Callable[[Path], Any]:
        BUILDERS[model_id] = fn
        return fn

    return register


def build_tiny(model_id: str) -> TinyModel:
    """Build (once per process) and return the tiny model of ``model_id``."""
    with _LOCK:
        found = _BUILT.get(model_id)
        if found is None:
            if model_id not in BUILDERS:
                raise KeyError(f"no tiny builder for {model_id!r}; have {sorted(BUILDERS)}")
            directory = Path(tempfile.mkdtemp(prefix=f"opensight-tiny-{model_id}-"))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                reference = BUILDERS[model_id](directory)
            found = _BUILT[model_id] = TinyModel(model_id, directory, reference)
        return found


def install_tiny(model_id: str, model_dir: Path) -> TinyModel:
    """Write the tiny ``model_id`` into ``model_dir`` in the installed layout (+ manifest)."""
    from opensight.config import Settings
    from opensight.runtime import store

    built = build_tiny(model_id)
    target = Path(model_dir) / model_id
    shutil.copytree(built.directory, target, dirs_exist_ok=True)
    files = {
        str(p.relative_to(target)): {"size_bytes": p.stat().st_size, "verified": False}
        for p in sorted(target.rglob("*"))
        if p.is_file() and p.name != store.MANIFEST_NAME
    }
    store.write_manifest(
        model_id, files=files, settings=Settings(model_dir=Path(model_dir)), tiny=True
    )
    return built


# ---------------------------------------------------------------------------- helpers
def _reinit(model: Any, std: float, seed: int) -> None:
    """Spread the weights (fresh inits give ties -- e.g. equal encoder scores in RT-DETR --
    which make top-k selections implementation-defined)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * std)


def _export(
    module: Any,
    args: tuple[Any, ...],
    path: Path,
    inputs: Sequence[str],
    outputs: Sequence[str],
    dynamic: dict[str, dict[int, str]],
) -> None:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    module.eval()
    with torch.no_grad():
        torch.onnx.export(
            module,
            args,
            str(path),
            input_names=list(inputs),
            output_names=list(outputs),
            dynamic_axes=dynamic,
            opset_version=17,
            dynamo=False,  # the TorchScript exporter: seconds faster for these graphs
        )


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2), "utf-8")


WORDS = [
    "a",
    "photo",
    "of",
    "this",
    "is",
    "the",
    "an",
    "dog",
    "cat",
    "car",
    "person",
    "red",
    "blue",
    "green",
    "tree",
    "house",
    "shirt",
    "shoe",
    "bag",
    "dress",
    "table",
    "chair",
    "sky",
    "water",
    "food",
    "bird",
    "boat",
    "road",
    "phone",
    "cup",
]


def _unigram_tokenizer() -> Any:
    """A SentencePiece-style (Unigram + Metaspace) tokenizer like SigLIP's, tiny vocab."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    vocab: list[tuple[str, float]] = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    vocab += [("▁" + w, -2.0 - i * 0.01) for i, w in enumerate(WORDS)]
    vocab += [("▁", -6.0)]
    vocab += [(c, -8.0) for c in string.ascii_lowercase + string.digits]
    tok = Tokenizer(models.Unigram(vocab, unk_id=2, byte_fallback=False))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", 1)]
    )
    return tok


def _clip_like_tokenizer() -> Any:
    """A word-level tokenizer with CLIP's special tokens and layout (pad "!" = 0, BOS/EOS last)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    words = ["!", *WORDS, *string.ascii_lowercase, "<|unk|>"]
    vocab = {w: i for i, w in enumerate(dict.fromkeys(words))}
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<|unk|>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    bos, eos = vocab["<|startoftext|>"], vocab["<|endoftext|>"]
    tok.post_processor = processors.TemplateProcessing(
        single="<|startoftext|> $A <|endoftext|>",
        special_tokens=[("<|startoftext|>", bos), ("<|endoftext|>", eos)],
    )
    return tok


# ---------------------------------------------------------------------------- SigLIP
SIGLIP_IMAGE = 32
SIGLIP_TEXT = 16


@builder("siglip-base-patch16-224")
def build_siglip(directory: Path) -> Any:
    import torch
    from transformers import SiglipConfig, SiglipModel

    tok = _unigram_tokenizer()
    torch.manual_seed(SEED)
    config = SiglipConfig(
        text_config={
            "vocab_size": tok.get_vocab_size(),
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "max_position_embeddings": SIGLIP_TEXT,
            "pad_token_id": 1,
            "bos_token_id": 1,
            "eos_token_id": 1,
        },
        vision_config={
            "image_size": SIGLIP_IMAGE,
            "patch_size": 8,
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
        },
    )
    model = SiglipModel(config).eval()
    _reinit(model, 0.2, SEED)
    with torch.no_grad():  # a scale/bias that makes the sigmoid scores spread out
        model.logit_scale.fill_(2.0)
        model.logit_bias.fill_(-1.5)

    class Tower(torch.nn.Module):
        def __init__(self, tower: Any) -> None:
            super().__init__()
            self.tower = tower

        def forward(self, x: Any) -> Any:
            out = self.tower(x)
            return out.last_hidden_state, out.pooler_output

    _export(
        Tower(model.vision_model),
        (torch.rand(2, 3, SIGLIP_IMAGE, SIGLIP_IMAGE),),
        directory / "onnx" / "vision_model.onnx",
        ["pixel_values"],
        ["last_hidden_state", "pooler_output"],
        {"pixel_values": {0: "batch_size"}, "last_hidden_state": {0: "batch_size"},
         "pooler_output": {0: "batch_size"}},
    )  # fmt: skip
    _export(
        Tower(model.text_model),
        (torch.randint(3, tok.get_vocab_size(), (2, SIGLIP_TEXT)),),
        directory / "onnx" / "text_model.onnx",
        ["input_ids"],
        ["last_hidden_state", "pooler_output"],
        {"input_ids": {0: "batch_size", 1: "sequence_length"},
         "last_hidden_state": {0: "batch_size"}, "pooler_output": {0: "batch_size"}},
    )  # fmt: skip
    tok.save(str(directory / "tokenizer.json"))
    _write_json(directory / "config.json", config.to_dict())
    _write_json(
        directory / "tokenizer_config.json",
        {"model_max_length": SIGLIP_TEXT, "pad_token": "</s>", "eos_token": "</s>",
         "unk_token": "<unk>", "tokenizer_class": "SiglipTokenizer"},
    )  # fmt: skip
    _write_json(
        directory / "special_tokens_map.json",
        {"eos_token": "</s>", "pad_token": "</s>", "unk_token": "<unk>"},
    )
    _write_json(
        directory / "preprocessor_config.json",
        {"do_normalize": True, "do_rescale": True, "do_resize": True,
         "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
         "image_processor_type": "SiglipImageProcessor", "processor_class": "SiglipProcessor",
         "resample": 3, "rescale_factor": 1 / 255,
         "size": {"height": SIGLIP_IMAGE, "width": SIGLIP_IMAGE}},
    )  # fmt: skip
    _write_json(
        directory / "siglip_logit_params.json",
        {
            "logit_scale": float(model.logit_scale.item()),
            "logit_bias": float(model.logit_bias.item()),
        },
    )
    return model


# ---------------------------------------------------------------------------- RT-DETR
RTDETR_IMAGE = 64


@builder("rtdetr-r50vd-coco")
def build_rtdetr(directory: Path) -> Any:
    import torch
    from transformers import RTDetrConfig, RTDetrForObjectDetection, RTDetrResNetConfig

    from opensight.runtime.models.rtdetr import COCO_LABELS

    torch.manual_seed(SEED)
    backbone = RTDetrResNetConfig(
        embedding_size=8,
        hidden_sizes=[8, 16, 24, 32],
        depths=[1, 1, 1, 1],
        layer_type="basic",
        out_features=["stage2", "stage3", "stage4"],
        out_indices=[2, 3, 4],
    )
    config = RTDetrConfig(
        backbone_config=backbone,
        encoder_hidden_dim=16,
        encoder_in_channels=[16, 24, 32],
        encoder_ffn_dim=32,
        encoder_attention_heads=2,
        encoder_layers=1,
        d_model=16,
        decoder_ffn_dim=32,
        decoder_attention_heads=2,
        decoder_layers=2,
        decoder_in_channels=[16, 16, 16],
        decoder_n_points=2,
        num_queries=30,
        anchor_image_size=None,
        id2label=dict(enumerate(COCO_LABELS)),
        label2id={name: i for i, name in enumerate(COCO_LABELS)},
    )
    model = RTDetrForObjectDetection(config).eval()
    _reinit(model, 0.3, SEED)

    class Detector(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, pixel_values: Any) -> Any:
            out = self.inner(pixel_values=pixel_values)
            return out.logits, out.pred_boxes

    _export(
        Detector(model),
        (torch.rand(2, 3, RTDETR_IMAGE, RTDETR_IMAGE),),
        directory / "onnx" / "model.onnx",
        ["pixel_values"],
        ["logits", "pred_boxes"],
        {"pixel_values": {0: "batch_size"}, "logits": {0: "batch_size"},
         "pred_boxes": {0: "batch_size"}},
    )  # fmt: skip
    _write_json(directory / "config.json", config.to_dict())
    _write_json(
        directory / "preprocessor_config.json",
        {"do_normalize": False, "do_pad": False, "do_rescale": True, "do_resize": True,
         "format": "coco_detection", "image_processor_type": "RTDetrImageProcessor",
         "resample": 2, "rescale_factor": 1 / 255,
         "size": {"height": RTDETR_IMAGE, "width": RTDETR_IMAGE}},
    )  # fmt: skip
    return model


# ---------------------------------------------------------------------------- OWLv2
OWL_IMAGE = 64
OWL_TEXT = 16
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


@builder("owlv2-base-patch16-ensemble")
def build_owlv2(directory: Path) -> Any:
    import torch
    from transformers import Owlv2Config, Owlv2ForObjectDetection

    tok = _clip_like_tokenizer()
    vocab_size = tok.get_vocab_size()
    torch.manual_seed(SEED)
    config = Owlv2Config(
        text_config={
            "vocab_size": vocab_size,
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "max_position_embeddings": OWL_TEXT,
            "pad_token_id": 0,
            "bos_token_id": vocab_size - 2,
            "eos_token_id": vocab_size - 1,
        },
        vision_config={
            "image_size": OWL_IMAGE,
            "patch_size": 16,
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
        },
        projection_dim=32,
    )
    model = Owlv2ForObjectDetection(config).eval()
    _reinit(model, 0.3, SEED)

    class Detector(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, pixel_values: Any, attention_mask: Any) -> Any:
            out = self.inner(
                input_ids=input_ids, pixel_values=pixel_values, attention_mask=attention_mask
            )
            return out.logits, out.pred_boxes

    ids = torch.randint(1, vocab_size - 2, (4, OWL_TEXT))
    ids[:, 0] = vocab_size - 2
    _export(
        Detector(model),
        (ids, torch.rand(2, 3, OWL_IMAGE, OWL_IMAGE), torch.ones_like(ids)),
        directory / "onnx" / "model.onnx",
        ["input_ids", "pixel_values", "attention_mask"],
        ["logits", "pred_boxes"],
        {"input_ids": {0: "num_queries", 1: "sequence_length"},
         "attention_mask": {0: "num_queries", 1: "sequence_length"},
         "pixel_values": {0: "batch_size"},
         "logits": {0: "batch_size", 2: "queries_per_image"}, "pred_boxes": {0: "batch_size"}},
    )  # fmt: skip
    tok.save(str(directory / "tokenizer.json"))
    _write_json(directory / "config.json", config.to_dict())
    _write_json(
        directory / "tokenizer_config.json",
        {"model_max_length": OWL_TEXT, "pad_token": "!", "bos_token": "<|startoftext|>",
         "eos_token": "<|endoftext|>", "unk_token": "<|unk|>", "tokenizer_class": "CLIPTokenizer"},
    )  # fmt: skip
    _write_json(
        directory / "special_tokens_map.json",
        {"pad_token": "!", "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>"},
    )
    _write_json(
        directory / "preprocessor_config.json",
        {"do_normalize": True, "do_pad": True, "do_rescale": True, "do_resize": True,
         "image_mean": CLIP_MEAN, "image_std": CLIP_STD,
         "image_processor_type": "Owlv2ImageProcessor", "resample": 2,
         "rescale_factor": 1 / 255, "size": {"height": OWL_IMAGE, "width": OWL_IMAGE}},
    )  # fmt: skip
    return model


@builder("florence-2-base-ft")
def build_florence2(directory: Path) -> Any:
    """Florence-2 (DaViT + BART), built in its own module: tests/tiny_florence2.py."""
    from tests.tiny_florence2 import build

    return build(directory)
