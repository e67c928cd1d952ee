"""Parity of the generative analyzers (caption, ask) with transformers' own Florence-2.

A tiny random-weight Florence-2 (real architecture: DaViT + BART, tiny sizes) is built
in the test run and installed in the model-dir layout. Our path -- DecodedImage, focus
crop, the shared runtime + batcher, batched padded generation, EOS cut, decoding,
yes/no scoring -- must give the same token ids and text as the reference: transformers'
processor + ``generate`` on one PIL image at a time.
"""

from __future__ import annotations

import io
import json
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from opensight.analyzers import registry
from opensight.analyzers.base import AnalysisContext
from opensight.config import Settings
from opensight.errors import ModelUnavailable, ValidationFailed
from opensight.images import DecodedImage, decode
from opensight.runtime import sessions
from opensight.runtime.models import florence2
from tests.conftest import photo_bytes
from tests.server import ServerProcess, create_key
from tests.tiny_florence2 import install

pytestmark = pytest.mark.parity
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

MODEL_ID = florence2.MODEL_ID


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model dir with the tiny Florence-2 installed (built once per test session)."""
    model_dir = tmp_path_factory.mktemp("florence-models")
    install(MODEL_ID, model_dir)
    return model_dir


@pytest.fixture(scope="session")
def reference(tiny_dir: Path) -> tuple[Any, Any]:
    """transformers' processor and model, loaded on their own from the installed files."""
    path = tiny_dir / MODEL_ID
    processor = transformers.AutoProcessor.from_pretrained(str(path))
    model = transformers.Florence2ForConditionalGeneration.from_pretrained(str(path)).eval()
    return processor, model


@pytest.fixture
def runtime(tiny_dir: Path) -> Iterator[sessions.ModelRuntime]:
    """Our runtime on the tiny model dir; a long batch wait so concurrent calls share batches."""
    torch.set_num_threads(1)  # 2 busy CPUs: torch's thread pool would only contend
    yield sessions.configure(
        Settings(
            model_dir=tiny_dir,
            model_threads=1,
            providers="cpu",  # the reference runs on the CPU in float32; so must we
            batch_max_wait_ms=150,
            data_dir=tiny_dir,
        )
    )
    sessions.configure(None)


def images() -> list[tuple[DecodedImage, Image.Image]]:
    """Real photos (JPEG, three sizes/aspects) and a PNG of noise: ours and PIL's decode."""
    blobs = [
        photo_bytes((640, 480)),
        photo_bytes((300, 500), seed=7),
        photo_bytes((200, 200), fmt="PNG", seed=3),
    ]
    noise = Image.fromarray(np.random.default_rng(5).integers(0, 256, (90, 160, 3), np.uint8))
    buffer = io.BytesIO()
    noise.save(buffer, "PNG")
    blobs.append(buffer.getvalue())
    return [(decode(blob), Image.open(io.BytesIO(blob)).convert("RGB")) for blob in blobs]


def ref_generate(
    reference: tuple[Any, Any], image: Image.Image, prompt: str, tokens: int
) -> list[int]:
    processor, model = reference
    inputs = processor(images=image, text=prompt, return_tensors="pt")
    with torch.no_grad():
        return list(model.generate(**inputs, max_new_tokens=tokens)[0].tolist())


def ref_confidence(
    reference: tuple[Any, Any], image: Image.Image, prompt: str, ids: list[int]
) -> float:
    """exp(mean log P) of the output tokens after the forced <s>, from the reference forward."""
    processor, model = reference
    inputs = processor(images=image, text=prompt, return_tensors="pt")
    sequence = torch.tensor([ids])
    with torch.no_grad():
        logits = model(**inputs, decoder_input_ids=sequence[:, :-1]).logits[0]
    logp = logits.log_softmax(-1).gather(-1, sequence[0, 1:, None])[:, 0]
    return float(torch.exp(logp[1:].mean()))  # target 0 is the forced <s>


def ref_text(reference: tuple[Any, Any], ids: list[int]) -> str:
    return str(reference[0].batch_decode([ids], skip_special_tokens=True)[0]).strip()


def ref_yes_no(reference: tuple[Any, Any], image: Image.Image, prompt: str) -> tuple[float, float]:
    """P(yes), P(no) from generate's own logits at the first answer step (after forced BOS)."""
    processor, model = reference
    inputs = processor(images=image, text=prompt, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(
            **inputs,
            max_new_tokens=2,
            num_beams=1,
            do_sample=False,
            output_logits=True,
            return_dict_in_generate=True,
        )
    assert out.sequences[0, 1].item() == model.generation_config.forced_bos_token_id
    probs = out.logits[1][0].float().softmax(-1)
    tokenizer = processor.tokenizer

    def total(word: str) -> float:  # byte-level BPE: Ġ is a leading space
        vocab = tokenizer.get_vocab()
        ids = [i for token, i in vocab.items() if token.replace("Ġ", " ").strip().lower() == word]
        assert ids
        return float(sum(probs[i] for i in ids))

    return total("yes"), total("no")


def caption_batcher() -> Any:
    return sessions.get_runtime().batcher(MODEL_ID, "florence2", lambda items: items)


# ------------------------------------------------------------------ caption
def test_caption_batched_equals_reference(runtime: Any, reference: Any) -> None:
    pairs = images()
    analyzer = registry.get("caption")
    assert analyzer.readiness().ready
    items = [florence2.Item(d.rgb, "<CAPTION>", max_new_tokens=40) for d, _ in pairs]
    ours = florence2.run(items)
    results = analyzer.analyze(
        [d for d, _ in pairs], AnalysisContext({"caption": {"locale": "fr"}})
    )
    assert caption_batcher().stats.max_batch >= len(pairs)  # one padded batch, not one by one
    texts = set()
    for (_, pil), generation, result in zip(pairs, ours, results, strict=True):
        expected = ref_generate(reference, pil, "<CAPTION>", 40)
        assert isinstance(generation, florence2.Generation)
        assert list(generation.token_ids) == expected
        assert result["caption"] == ref_text(reference, expected) == generation.text
        assert result["locale"] == "fr" and result["locale_used"] == "en"
        assert result["model"] == MODEL_ID
        confidence = ref_confidence(reference, pil, "<CAPTION>", expected)
        assert 0 < confidence <= 1
        assert result["confidence"] == pytest.approx(confidence, abs=2e-4)
        texts.add(result["caption"])
    assert len(texts) == len(pairs)  # the tiny model is input-sensitive: a wrong input shows


def test_caption_detailed_and_focus_crop(runtime: Any, reference: Any) -> None:
    decoded, pil = images()[0]  # 640 x 480
    analyzer = registry.get("caption")
    options = {"caption": {"detail": "detailed", "focus": [0.25, 0.5], "max_new_tokens": 24}}
    [result] = analyzer.analyze([decoded], AnalysisContext(options))
    # Documented crop: side 0.5 x 480 = 240 around (160, 240), kept inside the image.
    assert result["focus"]["box"] == [40, 120, 280, 360]
    expected = ref_generate(reference, pil.crop((40, 120, 280, 360)), "<DETAILED_CAPTION>", 24)
    assert result["caption"] == ref_text(reference, expected)
    uncropped = ref_generate(reference, pil, "<DETAILED_CAPTION>", 24)
    assert expected != uncropped  # the crop matters, so the equality above means something
    [edge] = analyzer.analyze([decoded], AnalysisContext({"caption": {"focus": [1.0, 0.0]}}))
    assert edge["focus"]["box"] == [400, 0, 640, 240]


def test_concurrent_callers_share_batches(runtime: Any, reference: Any) -> None:
    pairs = images()
    analyzer = registry.get("caption")
    results: dict[int, str] = {}

    def call(index: int) -> None:
        [out] = analyzer.analyze([pairs[index][0]], AnalysisContext({}))
        results[index] = out["caption"]

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(pairs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    stats = caption_batcher().stats
    assert stats.max_batch >= 2 and stats.batches < len(pairs)
    for index, (_, pil) in enumerate(pairs):
        assert results[index] == ref_text(reference, ref_generate(reference, pil, "<CAPTION>", 40))


# ---------------------------------------------------------------------- ask
def test_ask_answers_padded_batch_equal_reference(runtime: Any, reference: Any) -> None:
    pairs = images()[:2]
    prompts = ["Is it a cat?", "What is the person in the picture holding in the left hand?"]
    analyzer = registry.get("ask")
    results = analyzer.analyze(
        [d for d, _ in pairs], AnalysisContext({"ask": {"prompts": prompts, "max_new_tokens": 16}})
    )
    for (_, pil), result in zip(pairs, results, strict=True):
        assert result["mode"] == "answer" and [a["prompt"] for a in result["answers"]] == prompts
        for prompt, answer in zip(prompts, result["answers"], strict=True):
            expected = ref_generate(reference, pil, prompt, 16)
            assert answer["answer"] == ref_text(reference, expected)
            confidence = ref_confidence(reference, pil, prompt, expected)
            assert answer["confidence"] == pytest.approx(confidence, abs=2e-4)


def test_ask_yes_no_scores_equal_reference(runtime: Any, reference: Any) -> None:
    pairs = images()
    prompts = ["Is there a weapon?", "Does this image show nudity or violence?", "Is it a cat?"]
    analyzer = registry.get("ask")
    options = {"ask": {"prompts": prompts, "mode": "yes_no", "margin": 0.1}}
    results = analyzer.analyze([d for d, _ in pairs], AnalysisContext(options))
    seen = set()
    for (_, pil), result in zip(pairs, results, strict=True):
        for prompt, answer in zip(prompts, result["answers"], strict=True):
            yes, no = ref_yes_no(reference, pil, prompt)
            share = yes / (yes + no)
            assert answer["scores"]["yes"] == pytest.approx(share, abs=2e-4)
            assert answer["scores"]["mass"] == pytest.approx(yes + no, rel=1e-3, abs=1e-6)
            want = "yes" if 2 * share - 1 > 0.1 else "no" if 1 - 2 * share > 0.1 else "unknown"
            if abs(abs(2 * share - 1) - 0.1) > 1e-3:  # not on the margin's edge
                assert answer["answer"] == want
            assert answer["confidence"] == pytest.approx(max(share, 1 - share), abs=2e-4)
            seen.add(answer["answer"])
    assert len(seen) >= 2  # random weights still separate inputs


def test_greedy_generation_config_equals_reference(tiny_dir: Path, reference: Any) -> None:
    """A model whose generation config says num_beams=1: greedy ids equal too."""
    torch.set_num_threads(1)
    ours = florence2.Florence2(tiny_dir / MODEL_ID, device="cpu")
    ours.model.generation_config.num_beams = 1
    pairs = images()[:3]
    prompts = ["<CAPTION>", "Is it a cat?", "What is the person in the picture holding?"]
    results = ours.generate([d.rgb for d, _ in pairs], prompts, 12)
    processor, model = reference
    for (_, pil), prompt, result in zip(pairs, prompts, results, strict=True):
        inputs = processor(images=pil, text=prompt, return_tensors="pt")
        with torch.no_grad():
            expected = model.generate(**inputs, max_new_tokens=12, num_beams=1)[0].tolist()
        assert list(result.token_ids) == expected
        confidence = ref_confidence(reference, pil, prompt, expected)
        assert result.confidence == pytest.approx(confidence, abs=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_float16_equals_reference_on_cuda(tiny_dir: Path, reference: Any) -> None:
    ours = florence2.Florence2(tiny_dir / MODEL_ID)  # auto: CUDA, float16
    assert ours.device == "cuda" and ours.dtype == torch.float16
    processor, _ = reference
    model = transformers.Florence2ForConditionalGeneration.from_pretrained(
        str(tiny_dir / MODEL_ID), dtype=torch.float16
    )
    model = model.to("cuda").eval()
    decoded, pil = images()[0]
    [result] = ours.generate([decoded.rgb], ["<CAPTION>"], 20)
    inputs = processor(images=pil, text="<CAPTION>", return_tensors="pt").to("cuda")
    inputs["pixel_values"] = inputs["pixel_values"].to(torch.float16)
    with torch.no_grad():
        expected = model.generate(**inputs, max_new_tokens=20)[0].tolist()
    assert list(result.token_ids) == expected


def test_yes_no_margin_decides_unknown() -> None:
    from opensight.analyzers.ask import decide

    assert decide(florence2.YesNo(0.30, 0.10), 0.2) == ("yes", pytest.approx(0.75))
    assert decide(florence2.YesNo(0.10, 0.30), 0.2) == ("no", pytest.approx(0.75))
    assert decide(florence2.YesNo(0.11, 0.10), 0.2)[0] == "unknown"
    assert decide(florence2.YesNo(0.0, 0.0), 0.0)[0] == "unknown"


# --------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("feature", "options"),
    [
        ("caption", {"detail": "huge"}),
        ("caption", {"focus": [1.5, 0.2]}),
        ("caption", {"focus": "middle"}),
        ("caption", {"focus": [0.1]}),
        ("caption", {"locale": 5}),
        ("caption", {"locale": "../etc"}),
        ("caption", {"max_new_tokens": 0}),
        ("caption", {"focus_size": "nan"}),
        ("ask", {}),
        ("ask", {"prompts": []}),
        ("ask", {"prompts": ["  "]}),
        ("ask", {"prompts": [3]}),
        ("ask", {"prompts": ["<OD>"]}),
        ("ask", {"prompts": ["what is <loc_12>?"]}),
        ("ask", {"prompts": ["x" * 301]}),
        ("ask", {"prompts": ["q"] * 17}),
        ("ask", {"prompts": ["q"], "mode": "maybe"}),
        ("ask", {"prompts": ["q"], "margin": -1}),
        ("ask", {"prompts": ["q"], "margin": True}),
    ],
)
def test_bad_options_are_validation_errors(feature: str, options: dict[str, Any]) -> None:
    image = DecodedImage.from_array(np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValidationFailed):
        registry.get(feature).analyze([image], AnalysisContext({feature: options}))


# ------------------------------------------------------------ not installed
def test_missing_model_is_typed_error(tmp_path: Path) -> None:
    sessions.configure(Settings(model_dir=tmp_path / "empty", data_dir=tmp_path))
    try:
        for name in ("caption", "ask"):
            analyzer = registry.get(name)
            assert analyzer.readiness().missing == [f"opensight models pull {MODEL_ID}"]
            image = DecodedImage.from_array(np.zeros((8, 8, 3), np.uint8))
            with pytest.raises(ModelUnavailable) as caught:
                analyzer.analyze([image], AnalysisContext({"ask": {"prompts": ["q"]}}))
            assert f"opensight models pull {MODEL_ID}" in caught.value.detail
    finally:
        sessions.configure(None)


def test_missing_extra_names_pip_install(runtime: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """With transformers unimportable, readiness and analyze name the extra, not a result."""
    florence2.extra_missing.cache_clear()
    monkeypatch.setitem(sys.modules, "transformers", None)  # import fails, find_spec is None
    try:
        ready = registry.get("caption").readiness()
        assert not ready.ready and ready.missing == ['pip install "opensight[vlm]"']
        image = DecodedImage.from_array(np.zeros((8, 8, 3), np.uint8))
        with pytest.raises(ModelUnavailable) as caught:
            registry.get("caption").analyze([image], AnalysisContext({}))
        assert 'pip install "opensight[vlm]"' in caught.value.detail
    finally:
        florence2.extra_missing.cache_clear()


# --------------------------------------------------------------- real server
def test_server_captions_with_tiny_model_and_503_without(
    tiny_dir: Path, reference: Any, tmp_path: Path
) -> None:
    blob = photo_bytes((320, 240), fmt="PNG", seed=11)
    expected = ref_text(
        reference,
        ref_generate(reference, Image.open(io.BytesIO(blob)).convert("RGB"), "<CAPTION>", 40),
    )
    for model_dir, installed in ((tiny_dir, True), (tmp_path / "empty-models", False)):
        data_dir = tmp_path / ("with" if installed else "without")
        env = {
            "OPENSIGHT_MODEL_DIR": str(model_dir),
            "OPENSIGHT_MODEL_THREADS": "1",
            "OPENSIGHT_PROVIDERS": "cpu",
        }
        server = ServerProcess(data_dir, workers=1, env=env).start(timeout=60)
        try:
            key = create_key(data_dir, "parity", env=env)
            http = httpx.Client(
                base_url=server.url,
                headers={"Authorization": f"Bearer {key['key']}"},
                timeout=120,
            )
            reply = http.post(
                "/v1/analyze",
                files={"image": ("p.png", blob, "image/png")},
                data={
                    "features": "caption,ask",
                    "options": json.dumps(
                        {"ask": {"prompts": ["Is there a weapon?"], "mode": "yes_no"}}
                    ),
                },
            )
            if installed:
                assert reply.status_code == 200, reply.text
                result = reply.json()["result"]
                assert isinstance(result["caption"]["caption"], str)
                assert result["caption"]["caption"] == expected
                assert result["ask"]["answers"][0]["answer"] in ("yes", "no", "unknown")
                analyzers = {a["name"]: a for a in http.get("/v1/analyzers").json()["analyzers"]}
                assert analyzers["caption"]["ready"] is True
            else:
                assert reply.status_code == 503, reply.text
                assert reply.headers["content-type"].startswith("application/problem+json")
                problem = reply.json()
                assert problem["slug"] == "model_unavailable"
                assert f"opensight models pull {MODEL_ID}" in problem["detail"]
        finally:
            server.stop()
