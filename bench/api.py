"""Benchmark the analysis pipeline in-process, through the HTTP API, and via the CLI.

Run from the repository root::

    python -m bench.api            # full run, a few minutes
    python -m bench.api --quick    # smoke run, under a minute

Three benches, each printed as a table (see bench/README.md):

1. ``quality`` on a ~1 MP JPEG: ``decode`` + ``Pipeline.run_one`` in this process
   versus ``POST /v1/analyze`` (sync, multipart) against a real ``opensight serve``
   process, at concurrency 1 and 8, alternated in rounds; the API overhead ratio
   is ``in-process throughput / API throughput - 1`` (median over rounds).
2. Async submission rate: ``POST /v1/analyze`` JSON ``{"image_id", "async": true}``
   from 8 threads, against a server with ``--workers 0`` and one with ``--workers 2``.
3. ``opensight analyze DIR --json`` over generated photos (real CLI subprocess,
   start-up included) versus :class:`~opensight.localrun.LocalAnalyzer` in-process.

Ratios between rows of one run are what matter: the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image, ImageEnhance
from rich.console import Console
from rich.table import Table

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # `python bench/api.py` puts bench/ first, not the root
    sys.path.insert(0, str(REPO_ROOT))

from tests.server import ServerProcess, create_key  # noqa: E402

from opensight.analyzers.pipeline import Pipeline  # noqa: E402
from opensight.images import decode  # noqa: E402
from opensight.localrun import LocalAnalyzer, default_workers, expand_sources  # noqa: E402

CONCURRENCY = 8
FEATURE = "quality"
CLI_FEATURES = "quality,metadata"
CLI = (sys.executable, "-m", "opensight")
SIZE = (1155, 866)  # ~1 MP
OVERHEAD_GOAL = 0.15  # API overhead at concurrency 8
ASYNC_GOAL = 300.0  # accepted async jobs per second
NO_RATE_LIMIT = {"OPENSIGHT_RATE_LIMIT_PER_SECOND": "0"}
GLIBC_MALLOC_ENV = {"OPENSIGHT_MALLOC_TUNING": "false"}
"""``--malloc glibc``: servers and CLI runs keep glibc's defaults (no mallopt)."""

console = Console(width=None if sys.stdout.isatty() else 150)


# ---------------------------------------------------------------- CPU accounting
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class Usage:
    """Cumulative resource use of a process: CPU seconds (user + system) and minor page faults."""

    cpu: float
    minflt: int
    loop_cpu: float = 0.0
    """Of ``cpu``, the main thread's: for ``opensight serve`` the event loop (uvicorn,
    routing, multipart parsing, responses); the rest is its threadpool and workers."""


def _proc_stat(path: str) -> tuple[float, int]:
    with open(path) as handle:
        fields_ = handle.read().rsplit(")", 1)[1].split()  # fields from 3 (state) on
    return (int(fields_[11]) + int(fields_[12])) / _CLK_TCK, int(fields_[7])


def usage_of(pid: int | None) -> Usage | None:
    """Another process's usage from Linux /proc; None elsewhere or without a pid."""
    if not pid:
        return None
    try:
        cpu, minflt = _proc_stat(f"/proc/{pid}/stat")
        loop_cpu, _ = _proc_stat(f"/proc/{pid}/task/{pid}/stat")
    except (OSError, IndexError, ValueError):
        return None
    return Usage(cpu, minflt, loop_cpu)


def own_usage(who: int = resource.RUSAGE_SELF) -> Usage:
    """This process's usage (all threads), or with RUSAGE_CHILDREN its waited-for children's."""
    ru = resource.getrusage(who)
    return Usage(ru.ru_utime + ru.ru_stime, ru.ru_minflt)


def tune_malloc() -> bool:
    """The same malloc tuning `opensight serve` and `opensight analyze` apply at start."""
    from opensight._malloc import tune

    return tune()


def subprocess_env(args: argparse.Namespace) -> dict[str, str]:
    """Extra environment for servers and CLI runs."""
    return {**NO_RATE_LIMIT, **(GLIBC_MALLOC_ENV if args.malloc == "glibc" else {})}


# ------------------------------------------------------------------ measurement
@dataclass
class Run:
    """One timed measurement: N calls at some concurrency."""

    calls: int
    seconds: float
    latencies: list[float]
    client_cpu: float
    """CPU seconds of this (bench) process during the run, all threads."""
    client_minflt: int = 0
    """Minor page faults of this process during the run."""
    server: Usage | None = None
    """What the server process used during the run (differences, not totals)."""

    @property
    def throughput(self) -> float:
        return self.calls / self.seconds if self.seconds > 0 else 0.0

    def pct(self, q: float) -> float:
        return float(np.percentile(self.latencies, q)) if self.latencies else float("nan")


Caller = Callable[[], None]
CallerFactory = Callable[[], tuple[Caller, Callable[[], None]]]
"""Makes one thread's (call, close) pair; e.g. a call bound to its own httpx.Client."""


def measure(
    factory: CallerFactory,
    concurrency: int,
    calls: int | None = None,
    duration: float | None = None,
    warmup: int = 1,
    server_pid: int | None = None,
) -> Run:
    """Run ``calls`` calls (or for ``duration`` seconds) from ``concurrency`` threads.

    Each thread makes its own caller and does ``warmup`` untimed calls before a
    common start line, so connection set-up and first-call costs are not timed.
    """
    assert (calls is None) != (duration is None)
    lock = threading.Lock()
    issued = 0
    latencies: list[float] = []
    errors: list[BaseException] = []
    start = _Start()

    def at_start() -> None:
        """Runs once, when every thread is ready, before any is released."""
        start.server = usage_of(server_pid)
        start.own = own_usage()
        start.time = time.perf_counter()
        start.deadline = start.time + (duration or 0.0)

    barrier = threading.Barrier(concurrency, action=at_start)

    def take() -> bool:
        nonlocal issued
        with lock:
            if calls is not None:
                if issued >= calls:
                    return False
            elif time.perf_counter() >= start.deadline:
                return False
            issued += 1
            return True

    def worker() -> None:
        close: Callable[[], None] = lambda: None  # noqa: E731
        mine: list[float] = []
        try:
            try:
                call, close = factory()
                for _ in range(warmup):
                    call()
            finally:
                barrier.wait()
            while not errors and take():
                began = time.perf_counter()
                call()
                mine.append(time.perf_counter() - began)
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()
        finally:
            close()
            with lock:
                latencies.extend(mine)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    end, own = time.perf_counter(), own_usage()
    server_after = usage_of(server_pid)
    if errors:
        raise RuntimeError(f"benchmark call failed: {errors[0]!r}") from errors[0]
    run = Run(
        len(latencies),
        end - start.time,
        latencies,
        own.cpu - start.own.cpu,
        own.minflt - start.own.minflt,
    )
    if start.server is not None and server_after is not None:
        run.server = Usage(
            server_after.cpu - start.server.cpu,
            server_after.minflt - start.server.minflt,
            server_after.loop_cpu - start.server.loop_cpu,
        )
    return run


@dataclass
class _Start:
    time: float = 0.0
    deadline: float = 0.0
    own: Usage = Usage(0.0, 0)
    server: Usage | None = None


def median_run(runs: Sequence[Run]) -> dict[str, float]:
    """Medians over rounds of each statistic (each taken separately)."""

    def med(values: list[float | None]) -> float:
        kept = [v for v in values if v is not None]
        return statistics.median(kept) if kept else float("nan")

    return {
        "calls": med([r.calls for r in runs]),
        "throughput": med([r.throughput for r in runs]),
        "p50": med([r.pct(50) for r in runs]),
        "p99": med([r.pct(99) for r in runs]),
        "client_cpu_ms": med([1000 * r.client_cpu / max(r.calls, 1) for r in runs]),
        "client_minflt": med([r.client_minflt / max(r.calls, 1) for r in runs]),
        "server_cpu_ms": med(
            [1000 * r.server.cpu / max(r.calls, 1) if r.server else None for r in runs]
        ),
        "server_loop_ms": med(
            [1000 * r.server.loop_cpu / max(r.calls, 1) if r.server else None for r in runs]
        ),
        "server_minflt": med(
            [r.server.minflt / max(r.calls, 1) if r.server else None for r in runs]
        ),
    }


SIDE_LABELS = {
    "in-process": "in-process",
    "httpx": "POST /v1/analyze (httpx)",
    "raw": "POST /v1/analyze (raw http.client)",
}


def raw_multipart_caller(url: str, key: str, image: bytes) -> tuple[Caller, Callable[[], None]]:
    """A keep-alive ``http.client`` connection posting one pre-encoded multipart body.

    The bench's client shares the server's two cores; httpx spends ~1 ms of CPU per
    multipart call, which shows up as "API overhead" although the server never sees
    it. This caller costs a small fraction of that, so its ratio is the server's own.
    """
    parsed = httpx.URL(url)
    conn = http.client.HTTPConnection(parsed.host, parsed.port, timeout=120)
    boundary = "opensight-bench-boundary"
    body = (
        (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="features"\r\n\r\n'
            f"{FEATURE}\r\n"
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="image"; filename="photo.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + image
        + f"\r\n--{boundary}--\r\n".encode()
    )
    headers = {
        "Authorization": f"Bearer {key}",
        "Content-Type": f"multipart/form-data; boundary={boundary}",
    }

    def call() -> None:
        conn.request("POST", "/v1/analyze", body=body, headers=headers)
        response = conn.getresponse()
        payload = response.read()
        if response.status != 200:
            raise RuntimeError(f"{response.status}: {payload[:300]!r}")
        if FEATURE not in json.loads(payload)["result"]:
            raise RuntimeError(f"no {FEATURE} in {payload[:300]!r}")

    return call, conn.close


# ----------------------------------------------------------------------- images
def _photos() -> list[np.ndarray]:
    from skimage import data

    photos = []
    for name in (
        "astronaut",
        "chelsea",
        "coffee",
        "rocket",
        "hubble_deep_field",
        "immunohistochemistry",
        "retina",
        "camera",
    ):
        try:
            arr = getattr(data, name)()
        except Exception:  # a data file that needs a download: skip it
            continue
        if arr.ndim == 2:
            arr = np.stack([arr] * 3, axis=-1)
        photos.append(np.ascontiguousarray(arr[..., :3]))
    if not photos:
        raise RuntimeError("no scikit-image sample photos available")
    return photos


def jpeg_bytes(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def reference_jpeg() -> bytes:
    """scikit-image's astronaut resized to ~1 MP (deterministic)."""
    from skimage import data

    return jpeg_bytes(Image.fromarray(data.astronaut()).resize(SIZE, Image.Resampling.LANCZOS))


def make_corpus(directory: Path, count: int, seed: int) -> int:
    """``count`` distinct ~1 MP JPEGs: crops, flips and brightness of sample photos."""
    rng = np.random.default_rng(seed)
    photos = _photos()
    total = 0
    for index in range(count):
        arr = photos[index % len(photos)]
        h, w = arr.shape[:2]
        frac = rng.uniform(0.6, 1.0)
        ch, cw = max(16, int(h * frac)), max(16, int(w * frac))
        y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        crop = arr[y : y + ch, x : x + cw]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        image = Image.fromarray(np.ascontiguousarray(crop))
        image = ImageEnhance.Brightness(image).enhance(float(rng.uniform(0.75, 1.25)))
        landscape = rng.random() < 0.7
        size = SIZE if landscape else (SIZE[1], SIZE[0])
        image = image.resize(size, Image.Resampling.BILINEAR)
        data = jpeg_bytes(image, quality=int(rng.integers(82, 95)))
        (directory / f"img_{index:03d}.jpg").write_bytes(data)
        total += len(data)
    return total


# ----------------------------------------------------------------------- output
def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def fmt(value: float, digits: int = 1) -> str:
    return "-" if value != value else f"{value:.{digits}f}"  # NaN -> "-"


def versions() -> dict[str, str]:
    import cv2

    out = {}
    for dist in ("opensight", "numpy", "pillow", "fastapi", "starlette", "uvicorn", "httpx"):
        try:
            out[dist] = importlib_metadata.version(dist)
        except importlib_metadata.PackageNotFoundError:
            out[dist] = "?"
    out["opencv"] = cv2.__version__
    return out


def header(args: argparse.Namespace) -> None:
    cpus = os.cpu_count()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = cpus
    load = " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    table = Table(title="opensight benchmark", show_header=False, title_justify="left")
    table.add_row("mode", "quick" if args.quick else "full", f"rounds={args.rounds}")
    table.add_row("cpus", f"{cpus} (usable {usable})", f"load avg {load}")
    table.add_row("python", platform.python_version(), platform.platform())
    table.add_row("versions", ", ".join(f"{k} {v}" for k, v in versions().items()), "")
    table.add_row("source", git_state(), "")
    malloc = "glibc default (OPENSIGHT_MALLOC_TUNING=false everywhere)"
    if args.malloc == "product":
        malloc = "OpenSight's mallopt tuning in every process (its default)"
        malloc += "" if args.malloc_applied else " (mallopt failed here: subprocesses only)"
    table.add_row("malloc", malloc, "")
    console.print(table)


def busy_machine() -> bool:
    if not hasattr(os, "getloadavg"):
        return False
    return os.getloadavg()[0] > (os.cpu_count() or 1)


def git_state() -> str:
    """Commit and whether the work tree differs (benchmarks of a dirty tree are not the commit's)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "src"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return f"{head}" + (
        f" + {len(dirty)} modified file(s) under src/" if dirty else " (clean src/)"
    )


# ------------------------------------------------------------------ bench 1
def bench_sync(args: argparse.Namespace, work: Path) -> None:
    data = reference_jpeg()
    probe = decode(data)
    console.rule(
        f"[bold]1. `{FEATURE}` on one {probe.width}x{probe.height} JPEG "
        f"({len(data) / 1024:.0f} KiB): in-process vs POST /v1/analyze (sync)"
    )
    pipeline = Pipeline()

    def inproc_factory() -> tuple[Caller, Callable[[], None]]:
        def call() -> None:
            outcome = pipeline.run_one(decode(data), [FEATURE])
            assert FEATURE in outcome.results

        return call, lambda: None

    server = ServerProcess(work / "server-sync", workers=2, env=subprocess_env(args))
    try:
        server.start()
        key = create_key(server.data_dir, "bench", env=NO_RATE_LIMIT)["key"]
        pid = server.proc.pid if server.proc else None

        def httpx_factory() -> tuple[Caller, Callable[[], None]]:
            client = httpx.Client(
                base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=120
            )

            def call() -> None:
                response = client.post(
                    "/v1/analyze",
                    files={"image": ("photo.jpg", data, "image/jpeg")},
                    data={"features": FEATURE},
                )
                if response.status_code != 200:
                    raise RuntimeError(f"{response.status_code}: {response.text[:300]}")

            return call, client.close

        def raw_factory() -> tuple[Caller, Callable[[], None]]:
            return raw_multipart_caller(server.url, key, data)

        factories = {"in-process": inproc_factory, "httpx": httpx_factory, "raw": raw_factory}
        results: dict[tuple[str, int], list[Run]] = {}
        n = {1: args.calls_c1, CONCURRENCY: args.calls_c8}
        warm = {1: 2, CONCURRENCY: 1}
        sides = list(factories)
        for round_no in range(args.rounds):
            # rotate which side goes first, so slow drifts hit all equally
            order = sides[round_no % 3 :] + sides[: round_no % 3]
            for conc in (1, CONCURRENCY):
                for side in order:
                    run = measure(
                        factories[side], conc, calls=n[conc], warmup=warm[conc], server_pid=pid
                    )
                    results.setdefault((side, conc), []).append(run)
            console.print(f"  round {round_no + 1}/{args.rounds} done", style="dim")
    finally:
        server.stop()

    table = Table(
        title="1. quality pipeline, in-process vs sync API "
        f"(median of {args.rounds} alternating round(s))",
        title_justify="left",
    )
    for col in (
        "path",
        "conc",
        "calls",
        "calls/s",
        "p50 ms",
        "p99 ms",
        "bench CPU ms/call",
        "server CPU ms/call",
        "of which event loop",
        "page faults/call bench/server",
    ):
        table.add_column(col, justify="left" if col == "path" else "right")
    stats = {k: median_run(v) for k, v in results.items()}
    for conc in (1, CONCURRENCY):
        for side in sides:
            s = stats[(side, conc)]
            table.add_row(
                SIDE_LABELS[side],
                str(conc),
                f"{s['calls']:.0f}",
                fmt(s["throughput"]),
                ms(s["p50"]),
                ms(s["p99"]),
                fmt(s["client_cpu_ms"]),
                ("" if side != "in-process" else "(idle) ") + fmt(s["server_cpu_ms"]),
                fmt(s["server_loop_ms"]),
                f"{fmt(s['client_minflt'], 0)} / {fmt(s['server_minflt'], 0)}",
            )
    console.print(table)

    over = Table(title="API overhead = in-process calls/s / API calls/s - 1", title_justify="left")
    for col in (
        "client",
        "conc",
        "per round",
        "median",
        "from medians",
        "CPU/call API vs in-proc",
        "CPU overhead",
        "goal",
    ):
        over.add_column(col, justify="right")
    for client, conc in ((c, k) for c in ("raw", "httpx") for k in (1, CONCURRENCY)):
        pairs = zip(results[("in-process", conc)], results[(client, conc)], strict=True)
        ratios = [a.throughput / b.throughput - 1 for a, b in pairs]
        med = statistics.median(ratios)
        from_medians = (
            stats[("in-process", conc)]["throughput"] / stats[(client, conc)]["throughput"] - 1
        )
        api_cpu = stats[(client, conc)]["client_cpu_ms"] + stats[(client, conc)]["server_cpu_ms"]
        inproc_cpu = stats[("in-process", conc)]["client_cpu_ms"]
        cpu_ratio = f"{api_cpu:.1f} / {inproc_cpu:.1f} ms"
        goal = ""
        if conc == CONCURRENCY:
            ok = med <= OVERHEAD_GOAL
            goal = f"<= {OVERHEAD_GOAL:.0%}: " + ("[green]met[/]" if ok else "[red]NOT met[/]")
        over.add_row(
            client,
            str(conc),
            " ".join(f"{r:+.0%}" for r in ratios),
            f"{med:+.1%}",
            f"{from_medians:+.1%}",
            cpu_ratio,
            f"{api_cpu / inproc_cpu - 1:+.0%}",
            goal,
        )
    console.print(over)
    if busy_machine():
        console.print(
            "  [yellow]the machine is busy (load average above its CPU count): calls/s and\n"
            "  latencies mostly measure waiting for a CPU; the CPU columns hold up better.[/]"
        )
    console.print(
        "  in-process = decode(bytes) + Pipeline().run_one(image, ['quality']) in this process.\n"
        "  in-process runs in this bench process while the server sits idle (its workers only\n"
        "  poll the queue: '(idle)' column); API runs have this process only sending requests,\n"
        "  so server and clients share the same cores. 'bench CPU' for API rows is the client\n"
        "  side (multipart encode + response parse): 'raw' is a keep-alive http.client connection\n"
        "  sending a pre-encoded body (the least a client can cost, so the ratio shows the\n"
        "  server's overhead), 'httpx' builds each request as an application would. 'event loop' is the server's\n"
        "  main thread (uvicorn, routing, multipart parsing, responses), the rest of server CPU\n"
        "  is its threadpool (auth lookup, decode, pipeline) and idle job workers. Page faults\n"
        "  are minor faults (fresh memory from the kernel, counted in CPU as system time).",
        style="dim",
    )


# ------------------------------------------------------------------ bench 2
def bench_async(args: argparse.Namespace, work: Path) -> None:
    console.rule("[bold]2. async submission: POST /v1/analyze {image_id, async: true}")
    data = reference_jpeg()
    rows: list[tuple[str, list[Run]]] = []
    for workers, rounds in ((0, args.rounds), (2, 1)):
        server = ServerProcess(
            work / f"server-async-{workers}", workers=workers, env=subprocess_env(args)
        )
        try:
            server.start()
            key = create_key(server.data_dir, "bench", env=NO_RATE_LIMIT)["key"]
            auth = {"Authorization": f"Bearer {key}"}
            uploaded = httpx.post(
                server.url + "/v1/images",
                headers=auth,
                timeout=60,
                files={"image": ("photo.jpg", data, "image/jpeg")},
            )
            uploaded.raise_for_status()
            body = {"image_id": uploaded.json()["id"], "async": True, "features": [FEATURE]}

            def factory(
                url: str = server.url, body: dict[str, Any] = body, auth: dict[str, str] = auth
            ) -> tuple[Caller, Callable[[], None]]:
                client = httpx.Client(base_url=url, headers=auth, timeout=60)

                def call() -> None:
                    response = client.post("/v1/analyze", json=body)
                    if response.status_code != 202:
                        raise RuntimeError(f"{response.status_code}: {response.text[:300]}")

                return call, client.close

            pid = server.proc.pid if server.proc else None
            runs = [
                measure(factory, CONCURRENCY, duration=args.async_seconds, warmup=2, server_pid=pid)
                for _ in range(rounds)
            ]
            rows.append((f"--workers {workers}", runs))
        finally:
            server.stop()  # with workers, a backlog of jobs must not slow the next bench

    table = Table(
        title=f"2. async submissions from {CONCURRENCY} threads, {args.async_seconds:g} s each",
        title_justify="left",
    )
    for col in (
        "server",
        "rounds",
        "accepted",
        "jobs/s",
        "p50 ms",
        "p99 ms",
        "server CPU ms/job",
        "of which event loop",
        "bench CPU ms/job",
        f"goal >= {ASYNC_GOAL:.0f}/s",
    ):
        table.add_column(col, justify="right")
    for label, runs in rows:
        s = median_run(runs)
        ok = s["throughput"] >= ASYNC_GOAL
        table.add_row(
            label,
            str(len(runs)),
            f"{sum(r.calls for r in runs)}",
            fmt(s["throughput"]),
            ms(s["p50"]),
            ms(s["p99"]),
            fmt(s["server_cpu_ms"], 2),
            fmt(s["server_loop_ms"], 2),
            fmt(s["client_cpu_ms"], 2),
            "[green]met[/]" if ok else "[red]NOT met[/]",
        )
    console.print(table)
    console.print(
        "  --workers 0: the server only accepts jobs (nothing analyzes them); "
        "--workers 2: two in-process workers analyze the queue meanwhile.",
        style="dim",
    )


# ------------------------------------------------------------------ bench 3
def bench_cli(args: argparse.Namespace, work: Path) -> None:
    count = args.images
    corpus = work / "corpus"
    corpus.mkdir()
    started = time.perf_counter()
    # in a child process, so this one's malloc state is not shaped by big scratch images
    subprocess.run(
        # as a module: run by path, bench/ would come first and bench/collections.py
        # would shadow the standard library's collections
        [
            sys.executable,
            "-m",
            "bench.api",
            "--make-corpus",
            str(corpus),
            str(count),
            str(args.seed),
        ],
        cwd=REPO_ROOT,
        check=True,
        timeout=600,
    )
    total = sum(path.stat().st_size for path in corpus.iterdir())
    console.rule(
        f"[bold]3. `opensight analyze DIR --json --features {CLI_FEATURES}` over "
        f"{count} JPEGs ({total / count / 1024:.0f} KiB avg, made in "
        f"{time.perf_counter() - started:.1f} s)"
    )
    single = work / "single"
    single.mkdir()
    shutil.copy(corpus / "img_000.jpg", single / "img_000.jpg")
    env = {
        **os.environ,
        **subprocess_env(args),
        "OPENSIGHT_DATA_DIR": str(work / "cli-data"),
        "NO_COLOR": "1",
    }

    def cli(directory: Path, expect: int) -> tuple[float, Usage]:
        before = own_usage(resource.RUSAGE_CHILDREN)
        begun = time.perf_counter()
        proc = subprocess.run(
            [*CLI, "analyze", str(directory), "--json", "--features", CLI_FEATURES],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
        )
        elapsed = time.perf_counter() - begun
        after = own_usage(resource.RUSAGE_CHILDREN)
        lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
        bad = [line for line in lines if "error" in line]
        if proc.returncode != 0 or len(lines) != expect or bad:
            raise RuntimeError(
                f"CLI failed (rc={proc.returncode}, {len(lines)} lines, "
                f"{bad[:1]}): {proc.stderr[-1000:]}"
            )
        return elapsed, Usage(after.cpu - before.cpu, after.minflt - before.minflt)

    sources = expand_sources([str(corpus)])
    assert len(sources) == count

    def local(workers: int) -> tuple[float, Usage]:
        runner = LocalAnalyzer(CLI_FEATURES)
        before = own_usage()
        begun = time.perf_counter()
        results = [result.to_json() for result in runner.run(sources, workers=workers)]
        elapsed = time.perf_counter() - begun
        after = own_usage()
        failed = [r for r in results if "error" in r]
        if failed:
            raise RuntimeError(f"LocalAnalyzer failed: {failed[:1]}")
        return elapsed, Usage(after.cpu - before.cpu, after.minflt - before.minflt)

    workers = min(default_workers(), count)
    local(workers)  # warm imports, analyzers and caches once
    times: dict[str, list[tuple[float, Usage]]] = {}
    for round_no in range(args.rounds):
        steps: list[tuple[str, Callable[[], tuple[float, Usage]]]] = [
            ("cli-1", lambda: cli(single, 1)),
            ("cli", lambda: cli(corpus, count)),
            (f"local-{workers}", lambda: local(workers)),
            ("local-1", lambda: local(1)),
        ]
        if round_no % 2:
            steps.reverse()
        for name, step in steps:
            times.setdefault(name, []).append(step())
        console.print(f"  round {round_no + 1}/{args.rounds} done", style="dim")

    def med(name: str, what: Callable[[tuple[float, Usage]], float]) -> float:
        return statistics.median(what(t) for t in times[name])

    table = Table(
        title=f"3. {count} images, quality+metadata (median of {args.rounds} alternating round(s))",
        title_justify="left",
    )
    for col in ("how", "images", "wall s", "images/s", "CPU s", "page faults/image", "per round"):
        table.add_column(col, justify="left" if col == "how" else "right")

    def row(label: str, name: str, images: int) -> None:
        wall = med(name, lambda t: t[0])
        table.add_row(
            label,
            str(images),
            f"{wall:.2f}",
            f"{images / wall:.1f}" if images > 1 else "-",
            f"{med(name, lambda t: t[1].cpu):.2f}",
            f"{med(name, lambda t: t[1].minflt) / images:.0f}" if images > 1 else "-",
            " ".join(f"{t[0]:.2f}" for t in times[name]),
        )

    row("CLI subprocess, 1 image (~start-up)", "cli-1", 1)
    row(f"CLI subprocess (workers={workers})", "cli", count)
    startup, wall = med("cli-1", lambda t: t[0]), med("cli", lambda t: t[0])
    table.add_row(
        "CLI minus the 1-image run (steady state)",
        str(count - 1),
        f"{wall - startup:.2f}",
        f"{(count - 1) / max(wall - startup, 1e-9):.1f}",
        f"{med('cli', lambda t: t[1].cpu) - med('cli-1', lambda t: t[1].cpu):.2f}",
        "",
        "",
    )
    row(f"LocalAnalyzer in-process (workers={workers})", f"local-{workers}", count)
    if workers != 1:
        row("LocalAnalyzer in-process (workers=1)", "local-1", count)
    console.print(table)
    console.print(
        "  CPU s: user + system of the CLI process (its start-up included) or of this process.",
        style="dim",
    )


# ------------------------------------------------------------------------ main
def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["--make-corpus"]:  # internal: bench 3 builds its images in a child
        make_corpus(Path(argv[1]), int(argv[2]), int(argv[3]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run (< 60 s)")
    parser.add_argument("--rounds", type=int, help="alternating rounds (default 5, quick 1)")
    parser.add_argument(
        "--only",
        choices=("sync", "async", "cli"),
        action="append",
        help="run only these benches (repeatable)",
    )
    parser.add_argument("--images", type=int, help="images for bench 3 (default 100, quick 30)")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument(
        "--malloc",
        choices=("product", "glibc"),
        default="product",
        help="product: OpenSight's own malloc tuning in every process, as shipped (default); "
        "glibc: glibc's defaults everywhere, to see what page faults cost",
    )
    args = parser.parse_args(argv)
    args.malloc_applied = tune_malloc() if args.malloc == "product" else False
    args.rounds = args.rounds or (1 if args.quick else 5)
    args.images = args.images or (30 if args.quick else 100)
    args.calls_c1 = 20 if args.quick else 80
    args.calls_c8 = 48 if args.quick else 160
    args.async_seconds = 1.0 if args.quick else 2.0
    only = set(args.only or ("sync", "async", "cli"))

    header(args)
    work = Path(tempfile.mkdtemp(prefix="opensight-bench-"))
    begun = time.perf_counter()
    try:
        if "sync" in only:
            bench_sync(args, work)
        if "async" in only:
            bench_async(args, work)
        if "cli" in only:
            bench_cli(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    console.print(
        f"total {time.perf_counter() - begun:.0f} s, load avg at the end {load}", style="dim"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
