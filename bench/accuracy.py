"""The accuracy and speed bench of the offline analyzers, in one run and one table.

Run from the repository root (either form)::

    python -m bench.accuracy            # full sets: several minutes on 2 cores
    python bench/accuracy.py --quick    # small sets: a smoke run

It imports each per-analyzer accuracy module -- ``bench.acc_quality`` and, where
present, ``bench.acc_ocr``, ``bench.acc_watermark`` and ``bench.acc_moderation``
(a missing one is skipped with a printed note) -- and calls its
``run(quick) -> list[dict]``; every row is ``{"analyzer", "metric", "value",
"goal", "ok"}``. It then measures speed on ~1 MP photographs (scikit-image photos
resized to about 1,000,000 pixels and saved as JPEG q90):

* per registered analyzer (``opensight.analyzers.registry.all_analyzers()``):
  images/s and the median ms of its own ``analyze`` call on one decoded photo,
  as timed by the pipeline (its dependencies run first but are not counted;
  a warm-up call loads any model first);
* the whole offline pipeline -- every registered analyzer whose ``model`` is
  None, all in one ``Pipeline.run_one`` -- including ``decode`` of the JPEG
  bytes: p50 and p99 ms per photograph (goal: p50 <= 400 ms).

Timings use the library's default threading on whatever machine runs this; the
header shows the CPU count and load, since a shared machine inflates them. Each
wall-time row has a CPU-time twin (``time.process_time`` of this process, all its
threads): on a busy machine it is the steadier measure of what an image costs.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import io
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if sys.path and Path(sys.path[0] or ".").resolve() == REPO_ROOT / "bench":
    # Run as `python bench/...py`: import `bench.*` from the root, and do not let
    # sibling files (e.g. bench/collections.py) shadow standard modules.
    sys.path[0] = str(REPO_ROOT)
elif str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from opensight.analyzers import registry  # noqa: E402
from opensight.analyzers.pipeline import Pipeline  # noqa: E402
from opensight.images import DecodedImage, decode  # noqa: E402

ACCURACY_MODULES = ("acc_quality", "acc_ocr", "acc_watermark", "acc_moderation")
PIPELINE_GOAL_MS = 400.0
PHOTOS = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "motorcycle_left",
    "camera",
    "hubble_deep_field",
)
MEGAPIXEL = 1_000_000

Row = dict[str, Any]


def row(analyzer: str, metric: str, value: Any, goal: str = "", ok: bool | None = None) -> Row:
    return {"analyzer": analyzer, "metric": metric, "value": value, "goal": goal, "ok": ok}


# --- accuracy ------------------------------------------------------------------------------


def accuracy_rows(quick: bool, notes: list[str]) -> list[Row]:
    rows: list[Row] = []
    for name in ACCURACY_MODULES:
        module_name = f"bench.{name}"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                notes.append(f"{module_name}: not written yet, skipped")
            else:
                notes.append(f"{module_name}: skipped, it needs {exc.name!r} ({exc})")
            continue
        if not callable(getattr(module, "run", None)):
            notes.append(f"{module_name}: has no run(quick) yet, skipped")
            continue
        started = time.perf_counter()
        try:
            module_rows = list(module.run(quick))
        except Exception as exc:  # one broken bench must not hide the others
            notes.append(f"{module_name}: failed: {type(exc).__name__}: {exc}")
            rows.append(row(name.removeprefix("acc_"), "bench run", f"failed: {exc}", "", False))
            continue
        notes.append(
            f"{module_name}: {len(module_rows)} rows in {time.perf_counter() - started:.0f} s"
        )
        rows.extend(module_rows)
    return rows


# --- speed ---------------------------------------------------------------------------------


def photographs(count: int) -> list[bytes]:
    """``count`` ~1 MP JPEGs (q90) of scikit-image photos, cycling through :data:`PHOTOS`."""
    from bench.quality_set import photo

    out = []
    for index in range(count):
        rgb = photo(PHOTOS[index % len(PHOTOS)])
        height, width = rgb.shape[:2]
        scale = (MEGAPIXEL / (height * width)) ** 0.5
        size = (round(width * scale), round(height * scale))
        resized = cv2.resize(rgb, size, interpolation=cv2.INTER_CUBIC)
        buf = io.BytesIO()
        Image.fromarray(resized).save(buf, format="JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def fresh(image: DecodedImage) -> DecodedImage:
    """The same pixels without cached derived copies (e.g. ``gray``), as a new request has."""
    return dataclasses.replace(image)


def analyzer_speed_rows(images: Sequence[DecodedImage], runs: int, notes: list[str]) -> list[Row]:
    rows: list[Row] = []
    for name, analyzer in registry.all_analyzers().items():
        ready = analyzer.readiness()
        if not ready.ready:
            rows.append(row(name, "images/s @1MP", "not ready: " + "; ".join(ready.missing)))
            continue
        times: list[float] = []

        def record(
            timed: str, seconds: float, name: str = name, times: list[float] = times
        ) -> None:
            if timed == name:
                times.append(seconds)

        pipeline = Pipeline(on_timing=record)
        cpu: list[float] = []
        try:
            pipeline.run_one(fresh(images[0]), [name])  # warm-up: loads a model, if any
            times.clear()
            for index in range(runs):
                started = time.process_time()
                pipeline.run_one(fresh(images[index % len(images)]), [name])
                cpu.append(time.process_time() - started)
        except Exception as exc:
            notes.append(f"{name}: speed run failed: {type(exc).__name__}: {exc}")
            rows.append(row(name, "images/s @1MP", f"failed: {exc}", "", False))
            continue
        ms = statistics.median(times) * 1000.0
        rows.append(row(name, "images/s @1MP", 1000.0 / ms))
        rows.append(row(name, "ms/image @1MP (median)", ms))
        rows.append(row(name, "CPU ms/image @1MP (median)", statistics.median(cpu) * 1000.0))
    return rows


def pipeline_speed_rows(photos: Sequence[bytes], notes: list[str]) -> list[Row]:
    offline = [
        name
        for name, analyzer in registry.all_analyzers().items()
        if analyzer.model is None and analyzer.readiness().ready
    ]
    label = "offline pipeline"
    if not offline:
        return [row(label, "ms p50 per 1MP photo", "no offline analyzer")]
    notes.append(f"offline pipeline: decode + {', '.join(offline)}")
    pipeline = Pipeline()
    pipeline.run_one(decode(photos[0]), offline)  # warm-up
    times, cpu = [], []
    for data in photos:
        started, cpu_started = time.perf_counter(), time.process_time()
        outcome = pipeline.run_one(decode(data), offline)
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
        if outcome.status != "completed":  # pragma: no cover - no gates are set
            notes.append(f"offline pipeline: an image was {outcome.status}")
    p50 = float(np.percentile(times, 50)) * 1000.0
    p99 = float(np.percentile(times, 99)) * 1000.0
    goal = f"<= {PIPELINE_GOAL_MS:g}"
    return [
        row(label, f"analyzers (n={len(offline)})", ", ".join(offline)),
        row(label, f"ms p50 per 1MP photo (n={len(times)})", p50, goal, p50 <= PIPELINE_GOAL_MS),
        row(label, f"ms p99 per 1MP photo (n={len(times)})", p99),
        row(label, "CPU ms p50 per 1MP photo", float(np.percentile(cpu, 50)) * 1000.0),
        row(label, "CPU ms p99 per 1MP photo", float(np.percentile(cpu, 99)) * 1000.0),
    ]


# --- output --------------------------------------------------------------------------------


def format_value(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 10_000 else f"{value:.3g}"
    return str(value)


def print_table(rows: Sequence[Row]) -> None:
    columns = ("analyzer", "metric", "value", "goal", "ok")
    cells = [
        [
            str(r.get("analyzer", "")),
            str(r.get("metric", "")),
            format_value(r.get("value")),
            str(r.get("goal", "") or ""),
            "" if r.get("ok") is None else ("ok" if r.get("ok") else "FAIL"),
        ]
        for r in rows
    ]
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # pragma: no cover - rich is a dependency of opensight
        widths = [max(len(c), *(len(line[i]) for line in cells)) for i, c in enumerate(columns)]
        print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
        for line in cells:
            print("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)))
        return
    table = Table(*columns, title="Offline analyzers: accuracy and speed")
    for line in cells:
        style = "red" if line[4] == "FAIL" else None
        table.add_row(*line, style=style)
    Console(width=max(120, Console().width)).print(table)


def header() -> str:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return (
        f"{os.cpu_count()} CPUs, load average {load[0]:.1f} at start, "
        f"Python {sys.version.split()[0]}, numpy {np.__version__}, OpenCV {cv2.__version__}"
    )


def run(quick: bool = False, speed: bool = True, accuracy: bool = True) -> list[Row]:
    notes: list[str] = []
    rows: list[Row] = []
    if accuracy:
        rows += accuracy_rows(quick, notes)
    if speed:
        photos = photographs(8 if quick else 28)
        images = [decode(data) for data in photos[:4]]
        rows += analyzer_speed_rows(images, 5 if quick else 20, notes)
        rows += pipeline_speed_rows(photos, notes)
    for note in notes:
        print(f"note: {note}")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sets and few timing runs")
    parser.add_argument("--no-speed", action="store_true", help="accuracy only")
    parser.add_argument("--no-accuracy", action="store_true", help="speed only")
    args = parser.parse_args(argv)
    print(header())
    rows = run(quick=args.quick, speed=not args.no_speed, accuracy=not args.no_accuracy)
    print_table(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
