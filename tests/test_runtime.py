"""Model runtime: pulls against a fake Hub, sessions (sharing, idle unload, LRU), batcher."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import json
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from opensight.config import Settings
from opensight.errors import ModelUnavailable, Overloaded
from opensight.runtime import catalog, store
from opensight.runtime.batcher import Batcher
from opensight.runtime.catalog import ModelFile, ModelSpec
from opensight.runtime.pull import DOWNLOAD_DIR, ChecksumMismatch, PullFailed, pull
from opensight.runtime.sessions import (
    ModelRuntime,
    choose_providers,
    provider_options,
    zero_inputs,
)
from tests.hubstub import FakeHub

REPO = "opensight-test/tiny"
#: huggingface_hub writes downloads in chunks of this size: resume happens at their bounds.
CHUNK = 10 * 1024 * 1024


# ---------------------------------------------------------------- helpers
def tiny_onnx(path: Path, features: int = 8, outputs: int = 3, seed: int = 0) -> np.ndarray:
    """A random-weight linear layer y = x @ W as ONNX (dynamic batch); returns W."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = np.random.default_rng(seed).standard_normal((features, outputs)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", features])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", outputs])],
        [numpy_helper.from_array(weights, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return weights


def install_onnx(model_id: str, settings: Settings, seed: int = 0) -> np.ndarray:
    weights = tiny_onnx(store.model_path(model_id, settings) / "model.onnx", seed=seed)
    store.write_manifest(model_id, {"model.onnx": {}}, settings, source="test")
    return weights


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", model_dir=tmp_path / "models")


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    with FakeHub() as fake:
        yield fake


def spec_for(model_id: str, files: dict[str, bytes], *, pin: bool = True, **kw: Any) -> ModelSpec:
    spec = ModelSpec(
        id=model_id,
        tasks=("test",),
        repo=REPO,
        revision="main",
        files=tuple(
            ModelFile(name, hashlib.sha256(data).hexdigest() if pin else None, len(data))
            for name, data in files.items()
        ),
        license="Apache-2.0",
        verified=pin,
        **kw,
    )
    return catalog.register(spec)


def blob(size: int, seed: int = 1) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()


# ------------------------------------------------------------------ catalog
def test_catalog_get_unknown_names_known_and_rejects_unsafe_ids() -> None:
    spec_for("cat-known", {"a.bin": b"x"})
    from opensight.errors import NotFound, ValidationFailed

    with pytest.raises(NotFound, match="cat-known"):
        catalog.get("no-such-model")
    with pytest.raises(ValidationFailed):
        catalog.check_id("../etc")
    with pytest.raises(ValueError):
        ModelSpec(
            id="x", tasks=(), repo="r/r", revision="main", files=(ModelFile("../a"),), license="MIT"
        )
    assert "cat-known" in {s.id for s in catalog.all_specs()}


def test_catalog_file_specs(tmp_path: Path) -> None:
    path = tmp_path / "extra.json"
    path.write_text(
        json.dumps([{"id": "from-file", "repo": "a/b", "files": ["m.onnx"], "tasks": ["tags"]}])
    )
    (spec,) = catalog.load_file(path)
    assert spec.id == "from-file" and spec.files[0].sha256 is None and spec.verified is False
    path.write_text(json.dumps([{"id": "bad"}]))
    from opensight.errors import ValidationFailed

    with pytest.raises(ValidationFailed, match="bad"):
        catalog.load_file(path)


# --------------------------------------------------------------------- pull
def test_pull_installs_verified_files_with_subfolders(hub: FakeHub, settings: Settings) -> None:
    files = {"onnx/model.onnx": blob(300_000), "config.json": b'{"labels": ["a", "b"]}'}
    for name, data in files.items():
        hub.add(REPO, name, data)
    spec_for("pull-ok", files)
    seen: list[tuple[str, int, int | None]] = []

    result = pull(
        "pull-ok", settings=settings, endpoint=hub.url, on_progress=lambda *a: seen.append(a)
    )

    assert result.verified and result.commit == hub.commit
    assert store.is_installed("pull-ok", settings)
    root = store.model_path("pull-ok", settings)
    for name, data in files.items():
        assert (root / name).read_bytes() == data
    manifest = store.read_manifest("pull-ok", settings)
    assert manifest is not None and manifest["verified"] is True
    assert (
        manifest["files"]["onnx/model.onnx"]["sha256"]
        == hashlib.sha256(files["onnx/model.onnx"]).hexdigest()
    )
    assert not (root / DOWNLOAD_DIR).exists()
    assert seen[-1] == ("config.json", len(files["config.json"]), len(files["config.json"]))
    # Installed: a second pull does not touch the network.
    before = len(hub.requests)
    assert pull("pull-ok", settings=settings, endpoint=hub.url).already_installed
    assert len(hub.requests) == before


def test_pull_unpinned_records_computed_sha(hub: FakeHub, settings: Settings) -> None:
    data = blob(5000)
    hub.add(REPO, "w.onnx", data)
    spec_for("pull-unpinned", {"w.onnx": data}, pin=False)
    result = pull("pull-unpinned", settings=settings, endpoint=hub.url)
    (item,) = result.files
    assert not result.verified and result.unverified_files == ["w.onnx"]
    assert item.checked_against == "hub-lfs-etag"  # transport integrity still checked
    manifest = store.read_manifest("pull-unpinned", settings)
    assert manifest is not None and manifest["verified"] is False
    assert manifest["files"]["w.onnx"]["sha256"] == hashlib.sha256(data).hexdigest()


def test_pull_sha256_mismatch_is_refused_and_nothing_stays(
    hub: FakeHub, settings: Settings
) -> None:
    good, evil = blob(4000, 1), blob(4000, 2)
    hub.add(REPO, "a.onnx", good)
    hub.add(REPO, "b.onnx", evil)
    catalog.register(
        ModelSpec(
            id="pull-evil",
            tasks=("test",),
            repo=REPO,
            revision="main",
            files=(
                ModelFile("a.onnx", hashlib.sha256(good).hexdigest()),
                ModelFile("b.onnx", hashlib.sha256(good).hexdigest()),  # pinned: not what's served
            ),
            license="MIT",
            verified=True,
        )
    )
    with pytest.raises(ChecksumMismatch, match=r"b\.onnx"):
        pull("pull-evil", settings=settings, endpoint=hub.url)
    assert not store.is_installed("pull-evil", settings)
    assert not store.model_path("pull-evil", settings).exists()  # not even a.onnx


def test_pull_corrupted_transfer_refused_by_hub_hash(hub: FakeHub, settings: Settings) -> None:
    data = blob(4000)
    hub.add(REPO, "c.onnx", data)
    hub.plans["c.onnx"] = ["corrupt"]
    spec_for("pull-corrupt", {"c.onnx": data}, pin=False)
    with pytest.raises(ChecksumMismatch, match="Hub LFS hash"):
        pull("pull-corrupt", settings=settings, endpoint=hub.url)
    assert not store.model_path("pull-corrupt", settings).exists()
    # The next try gets good bytes and installs.
    assert pull("pull-corrupt", settings=settings, endpoint=hub.url).files[0].sha256 == (
        hashlib.sha256(data).hexdigest()
    )


def test_pull_resumes_a_dropped_connection_within_one_pull(
    hub: FakeHub, settings: Settings
) -> None:
    data = blob(3 * CHUNK)
    hub.add(REPO, "big.onnx", data)
    hub.plans["big.onnx"] = [f"drop:{CHUNK + 12345}"]
    spec_for("pull-drop", {"big.onnx": data})
    result = pull("pull-drop", settings=settings, endpoint=hub.url)
    assert result.verified
    ranges = [r.range for r in hub.gets("big.onnx")]
    assert ranges == [None, f"bytes={CHUNK}-"]  # continued after the last whole chunk
    assert hub.bytes_sent["big.onnx"] == len(data) + 12345


def test_pull_resumes_a_partial_file_from_an_earlier_pull(hub: FakeHub, settings: Settings) -> None:
    data = blob(2 * CHUNK + 1000)
    hub.add(REPO, "part.onnx", data)
    hub.plans["part.onnx"] = [f"drop:{CHUNK + 500}", "500"]  # connection drops, then hub errors
    spec_for("pull-resume", {"part.onnx": data})
    with pytest.raises(PullFailed, match="again to resume"):
        pull("pull-resume", settings=settings, endpoint=hub.url)
    assert not store.is_installed("pull-resume", settings)
    (partial,) = (store.model_path("pull-resume", settings) / DOWNLOAD_DIR).iterdir()
    assert partial.stat().st_size == CHUNK

    result = pull("pull-resume", settings=settings, endpoint=hub.url)
    assert result.verified and result.files[0].resumed_from == CHUNK
    assert hub.gets("part.onnx")[-1].range == f"bytes={CHUNK}-"
    assert (store.model_path("pull-resume", settings) / "part.onnx").read_bytes() == data


def test_pull_unknown_repo_file_is_a_clear_failure(hub: FakeHub, settings: Settings) -> None:
    hub.add(REPO, "present.onnx", b"x")
    spec_for("pull-missing", {"absent.onnx": b"x"})
    with pytest.raises(PullFailed, match=r"absent\.onnx"):
        pull("pull-missing", settings=settings, endpoint=hub.url)
    assert not store.is_installed("pull-missing", settings)


def test_pull_unreachable_hub_is_a_clear_failure(settings: Settings) -> None:
    spec_for("pull-unreachable", {"m.onnx": b"x"})
    with pytest.raises(PullFailed, match="pull-unreachable") as failed:
        pull("pull-unreachable", settings=settings, endpoint="http://127.0.0.1:9")
    assert failed.value.status == 502 and failed.value.type == "model_pull_failed"
    assert not store.is_installed("pull-unreachable", settings)


def test_offline_errors_name_the_pull_command(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec_for("offline-model", {"m.onnx": b"x"})
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailable) as pulled:
        pull("offline-model", settings=settings, endpoint="http://127.0.0.1:9")
    assert "HF_HUB_OFFLINE" in pulled.value.detail
    assert "opensight models pull offline-model" in pulled.value.detail
    with pytest.raises(ModelUnavailable) as required:
        store.require("offline-model", settings)
    problem = required.value.problem()
    assert problem["status"] == 503 and problem["slug"] == "model_unavailable"
    assert "`opensight models pull offline-model`" in problem["detail"]
    assert "HF_HUB_OFFLINE" in problem["detail"]


# ----------------------------------------------------------------- sessions
def test_choose_providers() -> None:
    available = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers(None, ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    assert choose_providers(None, available)[-2:] == [
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ]
    assert choose_providers("cpu", available) == ["CPUExecutionProvider"]
    assert choose_providers("cuda, cpu", available) == [
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ]
    assert choose_providers("cuda", ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]


def test_provider_options_cache_tensorrt_engines(tmp_path: Path) -> None:
    options = provider_options("TensorrtExecutionProvider", tmp_path)
    assert options["trt_engine_cache_enable"] is True
    assert options["trt_engine_cache_path"] == str(tmp_path / ".tensorrt-cache")
    assert provider_options("CPUExecutionProvider", tmp_path) == {}


def test_session_is_shared_and_correct(settings: Settings) -> None:
    weights = install_onnx("sess-shared", settings)
    runtime = ModelRuntime(settings)
    sessions: list[Any] = []

    def grab() -> None:
        sessions.append(runtime.onnx_session("sess-shared", "model.onnx"))

    threads = [threading.Thread(target=grab) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(s) for s in sessions}) == 1 and runtime.loads == 1
    session = sessions[0]
    assert session.get_providers()[-1] == "CPUExecutionProvider"
    x = np.random.default_rng(3).standard_normal((5, 8)).astype(np.float32)
    np.testing.assert_allclose(session.run(None, {"x": x})[0], x @ weights, rtol=1e-5, atol=1e-5)
    assert zero_inputs(session)["x"].shape == (1, 8)
    runtime.close()


def test_missing_model_raises_model_unavailable(settings: Settings) -> None:
    runtime = ModelRuntime(settings)
    with pytest.raises(ModelUnavailable, match="opensight models pull not-installed"):
        runtime.onnx_session("not-installed", "model.onnx")
    store.write_manifest("half-installed", {}, settings)
    with pytest.raises(ModelUnavailable, match="pull half-installed --force"):
        runtime.onnx_session("half-installed", "model.onnx")


def test_idle_unload_releases_the_session(settings: Settings) -> None:
    install_onnx("sess-idle", settings)
    runtime = ModelRuntime(settings.model_copy(update={"model_idle_seconds": 0.3}))
    session = runtime.onnx_session("sess-idle", "model.onnx")
    ref = weakref.ref(session)
    del session
    assert runtime.is_loaded("sess-idle")
    deadline = time.monotonic() + 5
    while runtime.is_loaded("sess-idle") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not runtime.is_loaded("sess-idle") and runtime.loaded() == []
    gc.collect()
    assert ref() is None  # nothing else held it: the session's memory is gone
    runtime.onnx_session("sess-idle", "model.onnx")  # loads again on demand
    assert runtime.loads == 2
    runtime.close()


def test_recently_used_model_is_not_unloaded(settings: Settings) -> None:
    install_onnx("sess-busy", settings)
    clock = [100.0]
    runtime = ModelRuntime(
        settings.model_copy(update={"model_idle_seconds": 10}), clock=lambda: clock[0]
    )
    runtime.onnx_session("sess-busy", "model.onnx")
    clock[0] += 8
    runtime.onnx_session("sess-busy", "model.onnx")  # used: the idle timer restarts
    clock[0] += 8
    assert runtime.unload_idle() == 0 and runtime.is_loaded("sess-busy")
    clock[0] += 3
    assert runtime.unload_idle() == 1 and not runtime.is_loaded("sess-busy")
    runtime.close()


def test_lru_keeps_at_most_max_loaded_models(settings: Settings) -> None:
    for index, name in enumerate(("lru-a", "lru-b", "lru-c")):
        install_onnx(name, settings, seed=index)
    runtime = ModelRuntime(settings.model_copy(update={"max_loaded_models": 2}))
    runtime.onnx_session("lru-a", "model.onnx")
    runtime.onnx_session("lru-b", "model.onnx")
    runtime.onnx_session("lru-a", "model.onnx")  # a is now the most recent
    runtime.onnx_session("lru-c", "model.onnx")
    assert {row["model"] for row in runtime.loaded()} == {"lru-a", "lru-c"}
    runtime.close()


def test_generic_load_runs_the_loader_once(settings: Settings) -> None:
    install_onnx("gen-load", settings)
    runtime = ModelRuntime(settings)
    calls: list[Path] = []

    def loader(path: Path) -> dict[str, Any]:
        calls.append(path)
        time.sleep(0.1)
        return {"path": path}

    results: list[Any] = []
    threads = [
        threading.Thread(target=lambda: results.append(runtime.load("gen-load", "tok", loader)))
        for _ in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1 and all(r is results[0] for r in results)
    assert calls[0] == store.model_path("gen-load", settings)

    def broken(path: Path) -> None:
        raise OSError("disk hiccup")

    with pytest.raises(OSError):
        runtime.load("gen-load", "other", broken)
    assert runtime.load("gen-load", "other", lambda path: "fine") == "fine"  # not poisoned
    runtime.close()


# ------------------------------------------------------------------ batcher
class Gate:
    """A batch function that can be held shut, recording every batch it ran."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.open.set()
        self.batches: list[list[Any]] = []
        self.entering: list[int] = []
        self.entered = threading.Event()

    def __call__(self, items: list[Any]) -> list[Any]:
        self.entering.append(len(items))
        self.entered.set()
        self.open.wait(10)
        self.batches.append(list(items))
        return [("out", item) for item in items]


def test_batcher_gathers_concurrent_calls_and_answers_each_caller() -> None:
    gate = Gate()
    batcher: Batcher[Any, Any] = Batcher(gate, max_batch_size=8, max_wait_ms=50)
    results: dict[int, Any] = {}

    def call(i: int) -> None:
        results[i] = batcher.submit(i)

    gate.open.clear()  # the first batch holds the dispatcher while the others queue up
    threads = [threading.Thread(target=call, args=(i,)) for i in range(32)]
    for thread in threads:
        thread.start()
    assert gate.entered.wait(5)
    while batcher.depth + sum(gate.entering) < 32:
        time.sleep(0.001)
    gate.open.set()
    for thread in threads:
        thread.join()
    assert results == {i: ("out", i) for i in range(32)}
    assert max(map(len, gate.batches)) == 8
    assert len(gate.batches) <= 6
    assert batcher.stats.items == 32
    batcher.close()


def test_batcher_is_fair_under_mixed_request_sizes() -> None:
    gate = Gate()
    batcher: Batcher[Any, Any] = Batcher(gate, max_batch_size=8, max_wait_ms=1, max_queue=1000)
    gate.open.clear()
    blocker = threading.Thread(target=batcher.submit, args=("blocker",))
    blocker.start()
    assert gate.entered.wait(5)  # the dispatcher is busy: everything below queues up

    big_result: list[Any] = []
    big = threading.Thread(
        target=lambda: big_result.extend(batcher.submit_many([("big", i) for i in range(200)]))
    )
    big.start()
    while batcher.depth < 200:
        time.sleep(0.001)
    small_results: dict[int, Any] = {}

    def small(i: int) -> None:
        small_results[i] = batcher.submit_many([("small", i, 0), ("small", i, 1)])

    smalls = [threading.Thread(target=small, args=(i,)) for i in range(10)]
    for thread in smalls:
        thread.start()
    while batcher.depth < 220:
        time.sleep(0.001)
    gate.open.set()
    for thread in [blocker, big, *smalls]:
        thread.join(10)

    # Everyone got their own results, in their own order.
    assert big_result == [("out", ("big", i)) for i in range(200)]
    for i in range(10):
        assert small_results[i] == [("out", ("small", i, 0)), ("out", ("small", i, 1))]
    # No starvation: the small requests queued behind 200 items finish within a few
    # batches (round-robin), long before the big request's 25 batches are done.
    last_small = max(
        n for n, batch in enumerate(gate.batches) for item in batch if item[0] == "small"
    )
    assert last_small <= 4, [len(b) for b in gate.batches]
    assert len(gate.batches) >= 26
    batcher.close()


def test_batcher_full_queue_raises_overloaded() -> None:
    gate = Gate()
    batcher: Batcher[Any, Any] = Batcher(gate, max_batch_size=2, max_wait_ms=0, max_queue=4)
    gate.open.clear()
    done: list[Any] = []
    first = threading.Thread(target=lambda: done.append(batcher.submit(0)))
    first.start()
    assert gate.entered.wait(5)
    waiting = [
        threading.Thread(target=lambda i=i: done.append(batcher.submit(i))) for i in range(1, 5)
    ]
    for thread in waiting:
        thread.start()
    while batcher.depth < 4:
        time.sleep(0.001)
    with pytest.raises(Overloaded) as refused:
        batcher.submit(99)
    assert refused.value.status == 503 and refused.value.type == "overloaded"
    assert refused.value.retry_after >= 1
    assert batcher.stats.rejected == 1
    gate.open.set()
    for thread in [first, *waiting]:
        thread.join(5)
    assert sorted(d[1] for d in done) == [0, 1, 2, 3, 4]  # the admitted ones all ran
    assert batcher.submit(5) == ("out", 5)  # and the queue takes work again
    batcher.close()


def test_batcher_error_reaches_only_that_batch() -> None:
    def run(items: list[int]) -> list[int]:
        if 13 in items:
            raise ValueError("unlucky batch")
        return [i * 2 for i in items]

    batcher: Batcher[int, int] = Batcher(run, max_batch_size=4, max_wait_ms=1)
    with pytest.raises(ValueError, match="unlucky"):
        batcher.submit(13)
    assert batcher.submit(21) == 42
    short: Batcher[int, int] = Batcher(lambda items: items[:-1], max_batch_size=4, max_wait_ms=1)
    with pytest.raises(RuntimeError, match="returned 0 results for 1"):
        short.submit(1)
    batcher.close()
    short.close()


def test_batcher_timeout_drops_the_item() -> None:
    gate = Gate()
    batcher: Batcher[Any, Any] = Batcher(gate, max_batch_size=1, max_wait_ms=0)
    gate.open.clear()
    threading.Thread(target=batcher.submit, args=("first",)).start()
    assert gate.entered.wait(5)
    with pytest.raises(TimeoutError):
        batcher.submit("abandoned", timeout=0.05)
    assert batcher.depth == 0
    gate.open.set()
    assert batcher.submit("next") == ("out", "next")
    assert all("abandoned" not in batch for batch in gate.batches)
    batcher.close()


def test_batcher_async_callers_share_batches() -> None:
    gate = Gate()
    batcher: Batcher[Any, Any] = Batcher(gate, max_batch_size=16, max_wait_ms=20)
    # Held shut a moment: the dispatcher may take the burst's first item alone (a lone
    # caller is not kept waiting), but the rest queue behind it and go out as full batches.
    gate.open.clear()
    threading.Timer(0.2, gate.open.set).start()

    async def main() -> list[Any]:
        return await asyncio.gather(*(batcher.submit_async(i) for i in range(32)))

    assert asyncio.run(main()) == [("out", i) for i in range(32)]
    assert len(gate.batches) <= 4
    batcher.close()


def test_batch_target_adapts_and_max_wait_bounds_the_wait() -> None:
    batcher: Batcher[int, int] = Batcher(lambda items: items, max_batch_size=8, max_wait_ms=300)

    def timed(call: Any) -> float:
        started = time.perf_counter()
        call()
        return time.perf_counter() - started

    assert timed(lambda: batcher.submit(1)) < 0.15  # a lone caller is not delayed
    assert timed(lambda: batcher.submit_many([1, 2, 3, 4])) < 0.15
    # The last batch had 4 items: the next one waits for 4, but at most max_wait.
    assert 0.25 <= timed(lambda: batcher.submit(5)) < 1.0
    assert timed(lambda: batcher.submit(6)) < 0.15  # ...and adapts back to 1
    batcher.close()


def test_batcher_stress_mixed_callers_each_get_their_own_results() -> None:
    """Sync singles, sync lists and async callers at once, across the inline/queued paths."""
    running = threading.Lock()

    def run(items: list[int]) -> list[int]:
        assert running.acquire(blocking=False), "two batches ran at once"
        try:
            time.sleep(0.0005 * len(items) ** 0.5)
            return [i * 2 for i in items]
        finally:
            running.release()

    batcher: Batcher[int, int] = Batcher(run, max_batch_size=8, max_wait_ms=2, max_queue=10_000)
    errors: list[str] = []

    def sync_caller(seed: int) -> None:
        rng = np.random.default_rng(seed)
        for step in range(40):
            base = seed * 100_000 + step * 100
            if rng.random() < 0.5:
                got = [batcher.submit(base)]
                want = [base * 2]
            else:
                items = [base + k for k in range(int(rng.integers(1, 20)))]
                got, want = batcher.submit_many(items), [i * 2 for i in items]
            if got != want:
                errors.append(f"caller {seed} step {step}: {got[:3]} != {want[:3]}")

    async def async_callers() -> None:
        values = list(range(10**7, 10**7 + 200))
        got = await asyncio.gather(*(batcher.submit_async(v) for v in values))
        if list(got) != [v * 2 for v in values]:
            errors.append("async results differ")

    threads = [threading.Thread(target=sync_caller, args=(seed,)) for seed in range(12)]
    threads.append(threading.Thread(target=lambda: asyncio.run(async_callers())))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors[:5]
    assert batcher.depth == 0 and batcher.stats.max_batch <= 8
    batcher.close()


def test_runtime_batcher_is_shared_per_model(settings: Settings) -> None:
    runtime = ModelRuntime(settings.model_copy(update={"batch_max_size": 5}))
    first = runtime.batcher("m", "embed", lambda items: items)
    assert runtime.batcher("m", "embed", lambda items: []) is first
    assert first.max_batch_size == 5
    assert runtime.batcher("m", "other", lambda items: items, max_batch_size=2).max_batch_size == 2
    runtime.close()


def test_configure_points_the_process_runtime_at_settings(settings: Settings) -> None:
    from opensight.runtime import sessions

    install_onnx("configured", settings)
    try:
        runtime = sessions.configure(settings)
        assert sessions.get_runtime() is runtime and runtime.settings is settings
        assert store.model_dir() == settings.model_dir and store.is_installed("configured")
        runtime.onnx_session("configured", "model.onnx")
        replaced = sessions.configure(settings.model_copy(update={"model_dir": Path("/nowhere")}))
        assert not runtime.is_loaded("configured")  # the old runtime let go of its models
        assert not replaced.is_loaded("configured") and not store.is_installed("configured")
    finally:
        sessions.configure(None)
