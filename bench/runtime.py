"""Benchmark the model runtime: dynamic batching throughput/latency and idle-unload memory.

Run from the repository root (needs torch to build the model: the ``test`` extra)::

    python bench/runtime.py                 # 3 alternating rounds of 2 s per cell
    python bench/runtime.py --quick         # 1 round of 1 s per cell
    python bench/runtime.py --hidden 1024 --max-batch 16 --max-wait-ms 2

The model is built here: a small conv stem (3x32x32 input, two stride-2 convs)
and an MLP head (``--hidden`` wide, 3 layers), random weights, exported with
torch to ONNX with a dynamic batch axis and installed into a temporary model
dir like a pulled model. Everything goes through the runtime proper:
``ModelRuntime.onnx_session`` (shared session, providers/threads as in
production) and ``ModelRuntime.batcher``.

Rows, at concurrency 1, 8 and 32 (closed loop: each thread calls again as soon
as its answer arrives, for ``--seconds``):

* ``unbatched`` -- every thread calls ``session.run`` on its own 1-image input
  (the shared session; ONNX Runtime runs concurrent calls in parallel);
* ``batched`` -- every thread calls ``batcher.submit(image)``; the batcher
  gathers up to ``--max-batch`` items or ``--max-wait-ms`` and runs them as one.

Goal: batched >= 3x unbatched calls/s at concurrency 32, with batched p99 <=
2 x single latency + max wait (*single* = p50 of one unbatched call at
concurrency 1). Rounds alternate the order of the two modes; the table shows
medians over rounds. The model's raw batch scaling is printed first: batching
pays when a batch of 32 costs far less than 32 single calls (weight reads,
per-call overheads), which is the regime of GPUs and of weight-heavy layers.

Memory: a child process (only onnxruntime + opensight imported) reports its
RSS before loading, after load + warm-up, after inference, after the idle
unload (``model_idle_seconds=1``, unloaded by the runtime's reaper thread) and
after loading again.
"""

from __future__ import annotations

import sys

# Running this file puts bench/ first on sys.path, where bench/collections.py would
# shadow the standard library's `collections`: drop that entry before other imports.
if sys.path and sys.path[0] == __import__("os").path.dirname(
    __import__("os").path.abspath(__file__)
):
    sys.path.pop(0)

import argparse
import json
import os
import platform
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

MODEL_ID = "bench-convmlp"
FILE = "model.onnx"


# ------------------------------------------------------------------- model
def build_model(path: Path, hidden: int) -> int:
    """Export the bench net to ``path``; returns its parameter count."""
    import warnings

    import torch

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = torch.nn.Conv2d(3, 16, 3, stride=2, padding=1)
            self.conv2 = torch.nn.Conv2d(16, 32, 3, stride=2, padding=1)
            self.fc1 = torch.nn.Linear(32 * 8 * 8, hidden)
            self.fc2 = torch.nn.Linear(hidden, hidden)
            self.fc3 = torch.nn.Linear(hidden, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = torch.relu(self.conv2(torch.relu(self.conv1(x)))).flatten(1)
            return torch.softmax(self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x))))), -1)

    torch.manual_seed(0)
    net = Net().eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            (torch.zeros(1, 3, 32, 32),),
            str(path),
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
            dynamo=False,
        )
    return sum(p.numel() for p in net.parameters())


def install(model_dir: Path, hidden: int) -> int:
    from opensight.config import Settings
    from opensight.runtime import store

    settings = Settings(model_dir=model_dir)
    params = build_model(store.model_path(MODEL_ID, settings) / FILE, hidden)
    store.write_manifest(MODEL_ID, {FILE: {}}, settings, source="bench")
    return params


# ------------------------------------------------------------------ driving
def drive(call: Callable[[], Any], concurrency: int, seconds: float) -> dict[str, float]:
    """Closed loop: ``concurrency`` threads call as fast as answers come, for ``seconds``."""
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    barrier = threading.Barrier(concurrency + 1)
    window: dict[str, float] = {}

    def worker(index: int) -> None:
        local = latencies[index]
        barrier.wait()
        stop = window["stop"]
        while True:
            started = time.perf_counter()
            if started >= stop:
                return
            call()
            local.append(time.perf_counter() - started)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    window["start"] = time.perf_counter()
    window["stop"] = window["start"] + seconds
    barrier.wait()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - window["start"]
    flat = sorted(x for local in latencies for x in local)
    return {
        "calls_per_s": len(flat) / elapsed,
        "p50_ms": 1000 * flat[len(flat) // 2],
        "p99_ms": 1000 * flat[min(len(flat) - 1, int(len(flat) * 0.99))],
        "calls": len(flat),
    }


def raw_scaling(session: Any, sizes: tuple[int, ...] = (1, 8, 32)) -> list[tuple[int, float]]:
    rows = []
    for size in sizes:
        x = np.random.default_rng(size).random((size, 3, 32, 32), dtype=np.float32)
        for _ in range(3):
            session.run(None, {"x": x})
        times = []
        for _ in range(max(5, 40 // size)):
            started = time.perf_counter()
            session.run(None, {"x": x})
            times.append(time.perf_counter() - started)
        rows.append((size, 1000 * statistics.median(times)))
    return rows


# ------------------------------------------------------------------ memory
def rss_mb() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def memory_child(model_dir: str) -> None:
    """Runs in a fresh process: RSS along a load / use / idle-unload / reload cycle."""
    import onnxruntime  # noqa: F401 - imported before the baseline on purpose

    from opensight.config import Settings
    from opensight.runtime.sessions import ModelRuntime

    runtime = ModelRuntime(Settings(model_dir=Path(model_dir), model_idle_seconds=1.0))
    steps = {"before load": rss_mb()}
    session = runtime.onnx_session(MODEL_ID, FILE)
    steps["loaded + warm-up"] = rss_mb()
    x = np.zeros((32, 3, 32, 32), np.float32)
    for _ in range(20):
        session.run(None, {"x": x})
    del session
    steps["after 20 batches of 32"] = rss_mb()
    deadline = time.monotonic() + 30
    while runtime.is_loaded(MODEL_ID) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)  # the reaper collects garbage and trims the heap right after the unload
    steps["after idle unload"] = rss_mb()
    steps["unloaded"] = float(not runtime.is_loaded(MODEL_ID))
    runtime.onnx_session(MODEL_ID, FILE)
    steps["loaded again"] = rss_mb()
    runtime.close()
    steps["after close"] = rss_mb()
    sys.stdout.write(json.dumps(steps) + "\n")


# --------------------------------------------------------------------- main
def header(args: argparse.Namespace, threads: int, providers: list[str]) -> None:
    import onnxruntime

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "src"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        commit, dirty = "?", ""
    print(f"# bench/runtime.py  commit {commit}{' (+uncommitted src)' if dirty else ''}")
    print(
        f"python {platform.python_version()}, onnxruntime {onnxruntime.__version__}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start"
    )
    print(
        f"session: {', '.join(providers)}, {threads} intra-op threads; batcher max_batch="
        f"{args.max_batch}, max_wait={args.max_wait_ms} ms; {args.rounds} round(s) x "
        f"{args.seconds} s per cell; GIL switch interval {sys.getswitchinterval() * 1000:g} ms, "
        f"malloc tuning {'on' if getattr(args, 'malloc_tuned', False) else 'off'} (as an API process)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hidden", type=int, default=2048)
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--quick", action="store_true", help="1 round of 1 s per cell")
    parser.add_argument(
        "--switch-interval-ms",
        type=float,
        default=None,
        help="GIL switch interval of this process (default: what an API process uses, "
        "OPENSIGHT_SWITCH_INTERVAL_MS; 0 keeps Python's 5 ms)",
    )
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child)
        return
    if args.quick:
        args.rounds, args.seconds = 1, 1.0
    from opensight.config import Settings as _Settings

    if args.switch_interval_ms is None:  # the batcher lives in API processes: run as they do
        args.switch_interval_ms = _Settings().switch_interval_ms
    if args.switch_interval_ms > 0:
        sys.setswitchinterval(args.switch_interval_ms / 1000)
    from opensight._malloc import tune as tune_malloc

    args.malloc_tuned = tune_malloc()  # as `opensight serve` does at start

    from opensight.config import Settings
    from opensight.runtime.sessions import ModelRuntime

    with tempfile.TemporaryDirectory(prefix="opensight-bench-runtime-") as tmp:
        model_dir = Path(tmp) / "models"
        params = install(model_dir, args.hidden)
        runtime = ModelRuntime(
            Settings(model_dir=model_dir, batch_max_queue=max(256, 4 * max(args.concurrency)))
        )
        header(args, runtime.threads, runtime.providers)
        session = runtime.onnx_session(MODEL_ID, FILE)
        size_mb = (model_dir / MODEL_ID / FILE).stat().st_size / 1e6
        print(
            f"\nmodel: conv stem + MLP head (hidden {args.hidden}), {params / 1e6:.1f} M params, "
            f"{size_mb:.0f} MB ONNX\n"
        )
        print("| batch | ms per run (p50) | ms per image |")
        print("| ---: | ---: | ---: |")
        for size, ms in raw_scaling(session):
            print(f"| {size} | {ms:.2f} | {ms / size:.3f} |")
        del session

        image = np.random.default_rng(0).random((3, 32, 32), dtype=np.float32)

        def unbatched() -> Any:
            return runtime.onnx_session(MODEL_ID, FILE).run(None, {"x": image[None]})[0][0]

        def run_batch(items: list[np.ndarray]) -> list[np.ndarray]:
            out = runtime.onnx_session(MODEL_ID, FILE).run(None, {"x": np.stack(items)})[0]
            return list(out)

        batcher = runtime.batcher(
            MODEL_ID,
            "bench",
            run_batch,
            max_batch_size=args.max_batch,
            max_wait_ms=args.max_wait_ms,
        )

        def batched() -> Any:
            return batcher.submit(image)

        np.testing.assert_allclose(batched(), unbatched(), rtol=1e-4, atol=1e-5)
        single = drive(unbatched, 1, min(1.0, args.seconds))["p50_ms"]

        results: dict[tuple[int, str], list[dict[str, float]]] = {}
        for round_index in range(args.rounds):
            for concurrency in args.concurrency:
                modes = [("unbatched", unbatched), ("batched", batched)]
                if round_index % 2:
                    modes.reverse()
                for name, call in modes:
                    before = (batcher.stats.batches, batcher.stats.items)
                    row = drive(call, concurrency, args.seconds)
                    batches = batcher.stats.batches - before[0]
                    row["mean_batch"] = (
                        (batcher.stats.items - before[1]) / batches if batches else 1
                    )
                    results.setdefault((concurrency, name), []).append(row)

        limit = 2 * single + args.max_wait_ms
        print(
            f"\nsingle latency (one unbatched call, concurrency 1, p50): {single:.2f} ms; "
            f"p99 goal for batched: <= 2 x single + max wait = {limit:.2f} ms\n"
        )
        print(
            "| concurrency | mode | calls/s | p50 ms | p99 ms | mean batch | batched/unbatched | p99 goal |"
        )
        print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |")
        for concurrency in args.concurrency:
            base = statistics.median(r["calls_per_s"] for r in results[(concurrency, "unbatched")])
            for name in ("unbatched", "batched"):
                rows = results[(concurrency, name)]
                rate = statistics.median(r["calls_per_s"] for r in rows)
                p50 = statistics.median(r["p50_ms"] for r in rows)
                p99 = statistics.median(r["p99_ms"] for r in rows)
                mean_batch = statistics.median(r["mean_batch"] for r in rows)
                ratio = f"{rate / base:.2f}x" if name == "batched" else ""
                goal = ("met" if p99 <= limit else "missed") if name == "batched" else ""
                print(
                    f"| {concurrency} | {name} | {rate:.0f} | {p50:.2f} | {p99:.2f} | "
                    f"{mean_batch:.1f} | {ratio} | {goal} |"
                )
        runtime.close()

        child = subprocess.run(
            [sys.executable, __file__, "--memory-child", str(model_dir)],
            capture_output=True,
            text=True,
            check=True,
        )
        steps = json.loads(child.stdout.strip().splitlines()[-1])
        print("\nmemory of a fresh process (RSS, MB):\n")
        print("| step | RSS MB |")
        print("| --- | ---: |")
        for step, value in steps.items():
            if step == "unloaded":
                continue
            print(f"| {step} | {value:.1f} |")
        if not steps.get("unloaded"):
            print("\nWARNING: the model was not unloaded within 30 s")


if __name__ == "__main__":
    main()
