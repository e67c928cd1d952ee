"""Parity of embedding / tags / objects / detect with the reference implementations.

Tiny random-weight SigLIP, RT-DETR and OWLv2 models are built with transformers,
exported to ONNX and installed in the real layout (tests/tinymodels.py). Our
analyzers (ONNX Runtime + NumPy pre/post-processing, no torch) must give what
transformers' own processors, forward passes and post-processing give on the
same pixels and texts.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator, Sequence
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
from opensight.images import DecodedImage
from opensight.runtime import sessions
from opensight.runtime.models import _image_preprocess as pp
from opensight.runtime.models import owlv2
from tests.server import ServerProcess, create_key
from tests.tinymodels import build_tiny, install_tiny

pytestmark = pytest.mark.parity
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

SIGLIP = "siglip-base-patch16-224"
RTDETR = "rtdetr-r50vd-coco"
OWLV2 = "owlv2-base-patch16-ensemble"
#: (height, width): smaller and larger than the tiny models' inputs, odd aspect ratios.
SIZES = [(48, 80), (120, 90), (33, 200)]


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("models")
    for model_id in (SIGLIP, RTDETR, OWLV2):
        install_tiny(model_id, directory)
    return directory


@pytest.fixture
def model_dir(installed: Path) -> Iterator[Path]:
    """The runtime of this process reads the tiny models (reset after each test)."""
    sessions.configure(Settings(model_dir=installed))
    yield installed
    sessions.configure(None)


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    """Smooth random images (noise blurred by upsampling), so resizes matter."""
    rng = np.random.default_rng(7)
    out = []
    for height, width in SIZES:
        small = rng.integers(0, 256, (max(2, height // 6), max(2, width // 6), 3), dtype=np.uint8)
        out.append(np.asarray(Image.fromarray(small).resize((width, height), Image.BILINEAR)))
    return out


def decoded(rgbs: Sequence[np.ndarray]) -> list[DecodedImage]:
    return [DecodedImage.from_array(rgb) for rgb in rgbs]


def run(feature: str, rgbs: Sequence[np.ndarray], **options: Any) -> list[dict[str, Any]]:
    context = AnalysisContext(options={feature: options})
    return registry.get(feature).analyze(decoded(rgbs), context)


def processor_kwargs(directory: Path) -> dict[str, Any]:
    raw = json.loads((directory / "preprocessor_config.json").read_text())
    return {k: v for k, v in raw.items() if k not in ("image_processor_type", "processor_class")}


def reference_tokenizer(directory: Path, pad: str, max_length: int) -> Any:
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_file=str(directory / "tokenizer.json"), pad_token=pad, model_max_length=max_length
    )


def features_tensor(output: Any) -> Any:
    """get_*_features returns a tensor (transformers 4) or an output object (5)."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def threshold_between(scores: np.ndarray, low: int, high: int) -> tuple[float, int]:
    """A threshold keeping between ``low`` and ``high`` scores, in the widest gap there
    (so float differences between runtimes cannot move a score across it)."""
    ordered = np.sort(np.asarray(scores, dtype=np.float64).ravel())[::-1]
    gaps = [(ordered[k - 1] - ordered[k], k) for k in range(low, min(high, len(ordered) - 1) + 1)]
    gap, keep = max(gaps)
    assert gap > 5e-5, "tiny model scores too close to pick a stable threshold"
    return float((ordered[keep - 1] + ordered[keep]) / 2), keep


def clipped(box: Sequence[float], height: int, width: int) -> list[float]:
    x0, y0, x1, y1 = box
    x0, x1 = (min(max(v, 0.0), width) for v in (x0, x1))
    y0, y1 = (min(max(v, 0.0), height) for v in (y0, y1))
    return [x0, y0, x1 - x0, y1 - y0]


def as_xywh(entry: dict[str, Any]) -> list[float]:
    box = entry["box"]
    return [box["x"], box["y"], box["width"], box["height"]]


def assert_same_detections(
    ours: list[dict[str, Any]], reference: list[tuple[str, float, list[float]]]
) -> None:
    """Same multiset of (label, score, box): scores to 1e-4, boxes to 0.02 px (rounding)."""
    assert len(ours) == len(reference), (ours, reference)
    left = list(ours)
    for label, score, box in reference:
        match = next(
            (
                o
                for o in left
                if o["label"] == label
                and abs(o["confidence"] - score) < 2e-4
                and np.allclose(as_xywh(o), box, atol=0.02)
            ),
            None,
        )
        assert match is not None, f"no match for {label} {score} {box} in {left}"
        left.remove(match)


def assert_same_objects(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> None:
    """Equal detection lists up to float noise of different batch shapes."""
    assert len(a) == len(b), (a, b)
    for x, y in zip(a, b, strict=True):
        assert x["label"] == y["label"]
        assert abs(x["confidence"] - y["confidence"]) < 2e-4
        assert np.allclose(as_xywh(x), as_xywh(y), atol=0.02)


# ------------------------------------------------------------------ preprocessing
def test_preprocessing_matches_the_reference_processors(images: list[np.ndarray]) -> None:
    from transformers.models.owlv2.image_processing_pil_owlv2 import Owlv2ImageProcessorPil
    from transformers.models.rt_detr.image_processing_pil_rt_detr import RTDetrImageProcessorPil
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    rng = np.random.default_rng(1)
    # downscale with anti-aliasing; nearly square (the zero padding within the blur radius)
    extra = [
        rng.integers(0, 256, shape, dtype=np.uint8) for shape in ((301, 157, 3), (297, 300, 3))
    ]
    for rgb in [*images, *extra]:
        for reference, ours in (
            (
                SiglipImageProcessorPil(size={"height": 40, "width": 40}),
                pp.resized_tensor(rgb, pp.ImageProcessorConfig(40, 40, resample=3)),
            ),
            (
                RTDetrImageProcessorPil(size={"height": 64, "width": 48}),
                pp.resized_tensor(rgb, pp.ImageProcessorConfig(64, 48, do_normalize=False)),
            ),
            (
                Owlv2ImageProcessorPil(size={"height": 96, "width": 96}),
                pp.owlv2_tensor(rgb, pp.ImageProcessorConfig(
                    96, 96, image_mean=owlv2.OPENAI_CLIP_MEAN, image_std=owlv2.OPENAI_CLIP_STD,
                    do_pad=True)),
            ),
        ):  # fmt: skip
            expected = reference(images=rgb, return_tensors="np")["pixel_values"][0]
            assert ours.shape == expected.shape
            np.testing.assert_allclose(ours, expected, atol=2e-6)


# ----------------------------------------------------------------------- embedding
def test_embedding_matches_siglip_image_features(model_dir: Path, images: list[np.ndarray]) -> None:
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    model = build_tiny(SIGLIP).torch_model
    processor = SiglipImageProcessorPil(**processor_kwargs(model_dir / SIGLIP))
    pixels = processor(images=images, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        expected = torch.nn.functional.normalize(
            features_tensor(model.get_image_features(pixel_values=pixels)), dim=-1
        ).numpy()
    results = run("embedding", images)
    ours = np.array([r["vector"] for r in results], dtype=np.float32)
    assert [r["dim"] for r in results] == [expected.shape[1]] * len(images)
    assert all(r["normalized"] and r["model"] == SIGLIP for r in results)
    np.testing.assert_allclose(ours, expected, atol=2e-5)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    # batching does not change a vector: one image alone gives the same
    alone = np.array(run("embedding", images[1:2])[0]["vector"])
    np.testing.assert_allclose(alone, ours[1], atol=1e-5)


def test_text_vectors_match_siglip_text_features(model_dir: Path) -> None:
    from opensight.analyzers.embedding import embed_text

    model = build_tiny(SIGLIP).torch_model
    texts = [
        "a photo of a dog",
        "Red CAR on the road!",
        "zebra",
        "this is a very long text about a cat and a dog and a house and a tree in the sky",
    ]
    tokenizer = reference_tokenizer(model_dir / SIGLIP, "</s>", 16)
    encoded = tokenizer(texts, padding="max_length", max_length=16, truncation=True)
    ids, _ = build_siglip_encoder().encode(texts)
    assert ids.tolist() == encoded["input_ids"]
    with torch.no_grad():
        expected = torch.nn.functional.normalize(
            features_tensor(model.get_text_features(input_ids=torch.tensor(ids))), dim=-1
        ).numpy()
    np.testing.assert_allclose(embed_text(texts), expected, atol=2e-5)


def build_siglip_encoder() -> Any:
    from opensight.runtime.models import siglip

    return siglip.model().text_encoder()


# ---------------------------------------------------------------------------- tags
def test_tags_match_siglip_sigmoid_logits(model_dir: Path, images: list[np.ndarray]) -> None:
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    from opensight.runtime.models import vocabulary

    model = build_tiny(SIGLIP).torch_model
    custom = [
        {"name": "pet", "description": "a photo of a dog or a cat"},
        {"name": "car"},
        {"name": "outdoors", "description": "a tree under the blue sky"},
    ]
    labels = list(vocabulary("fashion"))
    prompts = [f"This is a photo of {label}." for label in labels]
    prompts += ["a photo of a dog or a cat", "This is a photo of car.", "a tree under the blue sky"]
    names = [*labels, "pet", "car", "outdoors"]
    tokenizer = reference_tokenizer(model_dir / SIGLIP, "</s>", 16)
    ids = tokenizer(prompts, padding="max_length", max_length=16, truncation=True,
                    return_tensors="pt")["input_ids"]  # fmt: skip
    processor = SiglipImageProcessorPil(**processor_kwargs(model_dir / SIGLIP))
    pixels = processor(images=images, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        probs = torch.sigmoid(model(input_ids=ids, pixel_values=pixels).logits_per_image).numpy()

    results = run("tags", images, vocabulary="fashion", tags=custom, min_confidence=0, limit=1000)
    for result, row in zip(results, probs, strict=True):
        assert result["vocabulary"] == "fashion"
        got = {t["name"]: t["confidence"] for t in result["tags"]}
        expected: dict[str, float] = {}
        for name, prob in zip(names, row, strict=True):
            expected[name] = max(expected.get(name, 0.0), float(prob))
        assert got.keys() == expected.keys()
        for name, prob in expected.items():
            assert abs(got[name] - prob) < 2e-4, (name, got[name], prob)
        confidences = [t["confidence"] for t in result["tags"]]
        assert confidences == sorted(confidences, reverse=True)

    # caller tags alone: only their names; min_confidence and limit apply
    only = run("tags", images[:1], tags=custom, min_confidence=0, limit=2)[0]
    assert only["vocabulary"] is None and len(only["tags"]) == 2
    assert {t["name"] for t in only["tags"]} <= {"pet", "car", "outdoors"}
    floor = sorted(probs[0][-3:])[1]
    above = run("tags", images[:1], tags=custom, min_confidence=float(floor) - 1e-3)[0]
    assert len(above["tags"]) == 2
    default = run("tags", images[:1], limit=5)[0]
    assert default["vocabulary"] == "everyday" and len(default["tags"]) <= 5


# ------------------------------------------------------------------------- objects
def test_objects_match_rtdetr_post_processing(model_dir: Path, images: list[np.ndarray]) -> None:
    from transformers.models.rt_detr.image_processing_pil_rt_detr import RTDetrImageProcessorPil

    model = build_tiny(RTDETR).torch_model
    processor = RTDetrImageProcessorPil(**processor_kwargs(model_dir / RTDETR))
    pixels = processor(images=images, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        outputs = model(pixel_values=pixels)
    for index, rgb in enumerate(images):
        height, width = rgb.shape[:2]
        scores = torch.sigmoid(outputs.logits[index]).flatten().topk(30).values.numpy()
        threshold, keep = threshold_between(scores, 3, 20)
        with torch.no_grad():
            ref = processor.post_process_object_detection(
                type(outputs)(logits=outputs.logits[index : index + 1],
                              pred_boxes=outputs.pred_boxes[index : index + 1]),
                threshold=threshold, target_sizes=[(height, width)],
            )[0]  # fmt: skip
        reference = [
            (model.config.id2label[int(label)], float(score), clipped(box.tolist(), height, width))
            for score, label, box in zip(ref["scores"], ref["labels"], ref["boxes"], strict=True)
        ]
        result = run("objects", [rgb], min_confidence=threshold)[0]
        assert result["vocabulary"] == "coco" and result["model"] == RTDETR
        assert_same_detections(result["objects"], reference)
        assert len(reference) == keep
        for obj in result["objects"]:
            assert obj["label_id"] == model.config.label2id[obj["label"]]
            norm, box = obj["box_normalized"], obj["box"]
            assert abs(norm["x"] * width - box["x"]) < 0.01
            assert abs(norm["height"] * height - box["height"]) < 0.01
    # the whole batch in one call gives the same as one by one
    threshold = 0.5
    batch = run("objects", images, min_confidence=threshold, limit=3)
    for rgb, result in zip(images, batch, strict=True):
        single = run("objects", [rgb], min_confidence=threshold, limit=3)[0]
        assert [o["label"] for o in result["objects"]] == [o["label"] for o in single["objects"]]
        assert len(result["objects"]) <= 3


# -------------------------------------------------------------------------- detect
def test_detect_matches_owlv2_post_processing(model_dir: Path, images: list[np.ndarray]) -> None:
    from transformers.models.owlv2.image_processing_pil_owlv2 import Owlv2ImageProcessorPil

    model = build_tiny(OWLV2).torch_model
    classes = ["dog", "red car", "a photo of a cat"]
    tokenizer = reference_tokenizer(model_dir / OWLV2, "!", 16)
    tokens = tokenizer(classes, padding="max_length", max_length=16, return_tensors="pt")
    processor = Owlv2ImageProcessorPil(**processor_kwargs(model_dir / OWLV2))
    for rgb in images:
        height, width = rgb.shape[:2]
        pixels = processor(images=rgb, return_tensors="pt")["pixel_values"]
        with torch.no_grad():
            outputs = model(
                input_ids=tokens["input_ids"],
                attention_mask=tokens["attention_mask"],
                pixel_values=pixels,
            )
        scores = torch.sigmoid(outputs.logits[0].max(dim=-1).values).numpy()
        threshold, keep = threshold_between(scores, 2, 12)
        assert len(scores) > keep
        ref = processor.post_process_object_detection(
            outputs, threshold=threshold, target_sizes=[(height, width)]
        )[0]
        reference = [
            (classes[int(label)], float(score), clipped(box.tolist(), height, width))
            for score, label, box in zip(ref["scores"], ref["labels"], ref["boxes"], strict=True)
        ]
        result = run("detect", [rgb], classes=classes, threshold=threshold, nms_iou=1.0)[0]
        assert result["classes"] == classes and result["model"] == OWLV2
        assert_same_detections(result["objects"], reference)
        confidences = [o["confidence"] for o in result["objects"]]
        assert confidences == sorted(confidences, reverse=True)
    # several images with the same classes in one call == one at a time
    together = run("detect", images, classes="dog, red car", threshold=0.2)
    for rgb, result in zip(images, together, strict=True):
        single = run("detect", [rgb], classes=["dog", "red car"], threshold=0.2)[0]
        assert result["classes"] == single["classes"]
        assert_same_objects(result["objects"], single["objects"])


def test_concurrent_callers_share_batches_without_mixing_results(
    model_dir: Path, images: list[np.ndarray]
) -> None:
    """Threads with different class lists (and images) land in shared batches; each
    caller must get exactly what it gets alone."""
    from concurrent.futures import ThreadPoolExecutor

    calls = [(images[i % 3], ["dog"] if i % 2 else ["red car", "cat"]) for i in range(8)]
    alone = [run("detect", [rgb], classes=c, threshold=0.2)[0] for rgb, c in calls]
    alone_vectors = [run("embedding", [rgb])[0]["vector"] for rgb, _ in calls]
    with ThreadPoolExecutor(8) as pool:
        together = list(
            pool.map(lambda a: run("detect", [a[0]], classes=a[1], threshold=0.2)[0], calls)
        )
        vectors = list(pool.map(lambda a: run("embedding", [a[0]])[0]["vector"], calls))
    for got, expected in zip(together, alone, strict=True):
        assert got["classes"] == expected["classes"]
        assert_same_objects(got["objects"], expected["objects"])
    np.testing.assert_allclose(np.array(vectors), np.array(alone_vectors), atol=1e-5)


def test_nms_keeps_the_best_box_per_label() -> None:
    D = owlv2.Detection
    boxes = [
        D(0, 0.9, (0, 0, 10, 10)),
        D(0, 0.8, (1, 1, 11, 11)),  # overlaps the first (IoU 0.68): dropped
        D(1, 0.7, (1, 1, 11, 11)),  # same place, other label: kept
        D(0, 0.6, (50, 50, 60, 60)),  # elsewhere: kept
    ]
    kept = owlv2.nms(boxes, 0.3)
    assert [(d.label_id, d.score) for d in kept] == [(0, 0.9), (1, 0.7), (0, 0.6)]
    assert len(owlv2.nms(boxes, 1.0)) == 4


# ------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("feature", "options", "message"),
    [
        ("detect", {}, "classes"),
        ("detect", {"classes": [f"thing {i}" for i in range(65)]}, "at most"),
        ("detect", {"classes": [3]}, "list of strings"),
        ("detect", {"classes": ["dog"], "threshold": 2}, "threshold"),
        ("objects", {"vocabulary": "imagenet"}, "vocabulary"),
        ("objects", {"min_confidence": "high"}, "number"),
        ("tags", {"vocabulary": "klingon"}, "vocabulary"),
        ("tags", {"vocabulary": "none"}, "no 'tags'"),
        ("tags", {"tags": [{"description": "no name"}]}, "name"),
        ("tags", {"tags": "dog"}, "list"),
        ("tags", {"limit": 0}, "limit"),
    ],
)
def test_bad_options_are_validation_errors(
    model_dir: Path, images: list[np.ndarray], feature: str, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationFailed, match=message):
        run(feature, images[:1], **options)


def test_missing_models_raise_model_unavailable(tmp_path: Path, images: list[np.ndarray]) -> None:
    sessions.configure(Settings(model_dir=tmp_path / "empty"))
    try:
        for feature, model_id, options in (
            ("embedding", SIGLIP, {}),
            ("tags", SIGLIP, {}),
            ("objects", RTDETR, {}),
            ("detect", OWLV2, {"classes": ["dog"]}),
        ):
            analyzer = registry.get(feature)
            assert analyzer.model == model_id
            ready = analyzer.readiness()
            assert not ready.ready and ready.missing == [f"opensight models pull {model_id}"]
            with pytest.raises(ModelUnavailable, match=f"opensight models pull {model_id}"):
                run(feature, images[:1], **options)
    finally:
        sessions.configure(None)


def test_logit_params_come_from_the_file_or_the_checkpoint_header(
    tmp_path: Path, images: list[np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    from safetensors.numpy import save_file

    from opensight.runtime.models.siglip import read_safetensors_scalars

    weights = tmp_path / "model.safetensors"
    save_file(
        {
            "logit_scale": np.array([4.5], dtype=np.float32),
            "big": np.zeros((64, 3), dtype=np.float32),
            "logit_bias": np.array([-16.25], dtype=np.float32),
        },
        str(weights),
    )
    with weights.open("rb") as handle:
        values = read_safetensors_scalars(handle, ["logit_scale", "logit_bias"])
    assert values == {"logit_scale": 4.5, "logit_bias": -16.25}
    with weights.open("rb") as handle, pytest.raises(ValueError, match="scalar"):
        read_safetensors_scalars(handle, ["big"])

    # installed without the params file and offline: a clear 503, not a made-up score
    models = tmp_path / "models"
    install_tiny(SIGLIP, models)
    (models / SIGLIP / "siglip_logit_params.json").unlink()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    sessions.configure(Settings(model_dir=models))
    try:
        with pytest.raises(ModelUnavailable, match=r"siglip_logit_params\.json"):
            run("tags", images[:1])
        assert len(run("embedding", images[:1])[0]["vector"]) == 32  # embeddings still work
    finally:
        sessions.configure(None)


# ---------------------------------------------------------------- real server
def test_server_answers_with_tiny_models_and_503_without(tmp_path: Path) -> None:
    models = tmp_path / "models"
    install_tiny(SIGLIP, models)  # objects' model is not installed
    server = ServerProcess(
        tmp_path / "data", workers=1, env={"OPENSIGHT_MODEL_DIR": str(models)}
    ).start()
    try:
        key = create_key(server.data_dir, "parity")
        http = httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {key['key']}"}, timeout=60
        )
        buffer = io.BytesIO()
        Image.fromarray(np.full((60, 90, 3), 120, dtype=np.uint8)).save(buffer, "PNG")
        image = base64.b64encode(buffer.getvalue()).decode()
        ok = http.post(
            "/v1/analyze",
            json={
                "base64": image,
                "features": ["tags", "embedding"],
                "options": {
                    "tags": {
                        "tags": [{"name": "grey", "description": "a grey wall"}],
                        "min_confidence": 0,
                    }
                },
            },
        )
        assert ok.status_code == 200, ok.text
        result = ok.json()["result"]
        assert [t["name"] for t in result["tags"]["tags"]] == ["grey"]
        assert result["embedding"]["dim"] == len(result["embedding"]["vector"]) == 32
        missing = http.post("/v1/analyze", json={"base64": image, "features": ["objects"]})
        assert missing.status_code == 503, missing.text
        assert missing.headers["content-type"].startswith("application/problem+json")
        problem = missing.json()
        assert problem["slug"] == "model_unavailable"
        assert f"opensight models pull {RTDETR}" in problem["detail"]
        bad = http.post(
            "/v1/analyze", json={"base64": image, "features": ["detect"], "options": {}}
        )
        assert bad.status_code == 422 and bad.json()["slug"] == "validation_error", bad.text
        listed = {a["name"]: a for a in http.get("/v1/analyzers").json()["analyzers"]}
        assert listed["tags"]["ready"] and not listed["objects"]["ready"]
        assert listed["objects"]["missing"] == [f"opensight models pull {RTDETR}"]
    finally:
        server.stop()
