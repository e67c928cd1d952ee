"""One loaded copy of each model per process, shared by every worker; idle ones unloaded.

``get_runtime()`` is the process-wide ``ModelRuntime``. It loads an ONNX
session (or anything else, via ``load``) the first time a model is asked for,
hands the same object to every later caller, and unloads models that went
unused for ``model_idle_seconds`` or that fall off the LRU end when more than
``max_loaded_models`` are loaded -- so memory stays bounded on a server that
has many models installed but uses a few.

Callers should fetch the session on every call (a dict lookup) rather than
keep it: a kept reference would pin a model the runtime has unloaded.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ..config import Settings
from ..errors import ModelUnavailable
from . import catalog, store
from .batcher import Batcher

if TYPE_CHECKING:
    import onnxruntime

log = logging.getLogger("opensight.runtime")

T = TypeVar("T")
Warmup = Callable[["onnxruntime.InferenceSession"], None]

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
PROVIDER_ALIASES = {
    "cpu": CPU,
    "cuda": CUDA,
    "gpu": CUDA,
    "tensorrt": TENSORRT,
    "trt": TENSORRT,
    "coreml": "CoreMLExecutionProvider",
    "dml": "DmlExecutionProvider",
    "directml": "DmlExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "rocm": "ROCMExecutionProvider",
}


def cpu_count() -> int:
    """CPUs this process may run on (respects affinity / container cpusets)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _tensorrt_usable() -> bool:
    """ORT-GPU lists TensorRT even when libnvinfer is absent; only pick it when it loads."""
    return ctypes.util.find_library("nvinfer") is not None


def choose_providers(requested: str | Sequence[str] | None, available: Sequence[str]) -> list[str]:
    """Execution providers in priority order: the requested ones that exist, else the best.

    Auto: TensorRT (when its libraries are present), then CUDA, then CPU. CPU always
    comes last as the fallback for operators a GPU provider cannot run.
    """
    if requested:
        names = requested.split(",") if isinstance(requested, str) else list(requested)
        chosen = []
        for raw in names:
            name = PROVIDER_ALIASES.get(raw.strip().lower(), raw.strip())
            if not name:
                continue
            if name in available:
                chosen.append(name)
            else:
                log.warning(
                    "execution provider %s is not available here (have %s)", name, available
                )
    else:
        chosen = [p for p in (TENSORRT, CUDA) if p in available]
        if TENSORRT in chosen and not _tensorrt_usable():
            chosen.remove(TENSORRT)
    if CPU not in chosen:
        chosen.append(CPU)
    return list(dict.fromkeys(chosen))


def provider_options(provider: str, model_dir: Path) -> dict[str, Any]:
    """Per-provider options: TensorRT caches its built engines (minutes to build) on disk."""
    if provider == TENSORRT:
        return {
            "trt_engine_cache_enable": True,
            "trt_engine_cache_path": str(model_dir / ".tensorrt-cache"),
            "trt_timing_cache_enable": True,
        }
    return {}


def release_memory() -> None:
    """Collect garbage and hand freed heap back to the OS (glibc), after an unload."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)


@dataclass
class _Entry:
    model_id: str
    key: str
    value: Any
    loaded_at: float
    last_used: float
    load_seconds: float


class ModelRuntime:
    """Cache of loaded models (LRU + idle unload) and of per-model batchers."""

    def __init__(
        self, settings: Settings | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings or store.current_settings()
        self.clock = clock
        self._lock = threading.RLock()
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._loading: dict[tuple[str, str], threading.Lock] = {}
        self._batchers: dict[tuple[str, str], Batcher[Any, Any]] = {}
        self._reaper: threading.Thread | None = None
        self._closed = threading.Event()
        self.loads = 0
        self.unloads = 0

    # ---------------------------------------------------------------- providers
    @property
    def providers(self) -> list[str]:
        import onnxruntime as ort

        return choose_providers(self.settings.providers, ort.get_available_providers())

    @property
    def threads(self) -> int:
        return self.settings.model_threads or min(8, cpu_count())

    # -------------------------------------------------------------------- load
    def load(self, model_id: str, key: str, loader: Callable[[Path], T]) -> T:
        """The shared object for (model, key), made by ``loader(model_dir)`` on first use.

        Raises ``ModelUnavailable`` (naming the pull command) when the model is not
        installed. Concurrent first calls load once; the others wait for it.
        """
        slot = (model_id, key)
        entry = self._touch(slot)
        if entry is not None:
            return entry.value
        path = store.require(model_id, self.settings)
        with self._lock:
            gate = self._loading.setdefault(slot, threading.Lock())
        with gate:
            entry = self._touch(slot)
            if entry is not None:
                return entry.value
            started = time.perf_counter()
            try:
                value = loader(path)
            except BaseException:
                with self._lock:
                    self._loading.pop(slot, None)
                raise
            elapsed = time.perf_counter() - started
            now = self.clock()
            with self._lock:
                self._entries[slot] = _Entry(model_id, key, value, now, now, elapsed)
                self._entries.move_to_end(slot)
                self._loading.pop(slot, None)
                self.loads += 1
                evicted = self._evict_over_capacity(keep=model_id)
                self._start_reaper()
            log.info("loaded %s/%s in %.2fs", model_id, key, elapsed)
        if evicted:
            release_memory()
        return value

    def onnx_session(
        self, model_id: str, filename: str, warmup: Warmup | bool = True
    ) -> onnxruntime.InferenceSession:
        """The shared ONNX Runtime session of ``<model>/<filename>``.

        ``warmup``: True runs one inference on zero inputs (shapes from the spec's
        ``config["warmup_shapes"]`` or the graph, symbolic dims as 1) so the first
        real request does not pay for lazy initialisation; a callable does its own.
        """

        def create(path: Path) -> onnxruntime.InferenceSession:
            file = path / filename
            if not file.is_file():
                raise ModelUnavailable(
                    model_id,
                    f"model {model_id!r} is incomplete ({filename} is missing); "
                    f"run `opensight models pull {model_id} --force`",
                )
            session = self.create_session(file)
            if warmup:
                self._warm(model_id, session, warmup)
            return session

        return self.load(model_id, f"onnx:{filename}", create)

    def create_session(self, file: Path) -> onnxruntime.InferenceSession:
        """A new session with this runtime's providers and thread counts (not cached)."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # Shared sessions on a server: idle threads should sleep, not spin on the CPUs.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = self.providers
        return ort.InferenceSession(
            str(file),
            sess_options=options,
            providers=providers,
            provider_options=[
                provider_options(p, store.model_dir(self.settings)) for p in providers
            ],
        )

    def _warm(self, model_id: str, session: onnxruntime.InferenceSession, warmup: Any) -> None:
        try:
            if callable(warmup):
                warmup(session)
                return
            shapes: dict[str, Any] = {}
            with contextlib.suppress(Exception):
                shapes = dict(catalog.get(model_id).config.get("warmup_shapes", {}))
            session.run(None, zero_inputs(session, shapes))
        except Exception as exc:  # warm-up is an optimisation: never fail the load for it
            log.info("warm-up of %s skipped: %s: %s", model_id, type(exc).__name__, exc)

    # --------------------------------------------------------------- batching
    def batcher(
        self,
        model_id: str,
        name: str,
        run_batch: Callable[[list[Any]], Sequence[Any]],
        **limits: Any,
    ) -> Batcher[Any, Any]:
        """The process-wide batcher (model, name); the first caller's ``run_batch`` is kept.

        Limits default to the settings ``batch_max_size``, ``batch_max_wait_ms`` and
        ``batch_max_queue``; pass ``max_batch_size=...`` etc. to override.
        """
        slot = (model_id, name)
        with self._lock:
            existing = self._batchers.get(slot)
            if existing is not None:
                return existing
            options: dict[str, Any] = {
                "max_batch_size": self.settings.batch_max_size,
                "max_wait_ms": self.settings.batch_max_wait_ms,
                "max_queue": self.settings.batch_max_queue,
                "name": f"{model_id}/{name}",
            }
            options.update(limits)
            created: Batcher[Any, Any] = Batcher(run_batch, **options)
            self._batchers[slot] = created
            return created

    # ---------------------------------------------------------------- unloading
    def loaded(self) -> list[dict[str, Any]]:
        """What is in memory now, least recently used first."""
        now = self.clock()
        with self._lock:
            return [
                {
                    "model": e.model_id,
                    "key": e.key,
                    "idle_seconds": round(now - e.last_used, 3),
                    "load_seconds": round(e.load_seconds, 3),
                }
                for e in self._entries.values()
            ]

    def is_loaded(self, model_id: str) -> bool:
        with self._lock:
            return any(e.model_id == model_id for e in self._entries.values())

    def unload(self, model_id: str | None = None) -> int:
        """Drop one model's objects (or all); returns how many were dropped."""
        with self._lock:
            count = self._drop(lambda slot: model_id is None or slot[0] == model_id)
        if count:
            log.info("unloaded %s", model_id or "all models")
            release_memory()
        return count

    def _drop(self, which: Callable[[tuple[str, str]], bool]) -> int:
        """Remove matching entries (lock held); their objects die when this returns."""
        slots = [slot for slot in self._entries if which(slot)]
        for slot in slots:
            del self._entries[slot]
        self.unloads += len(slots)
        return len(slots)

    def unload_idle(self, now: float | None = None) -> int:
        """Drop models unused for ``model_idle_seconds``; returns how many objects went."""
        limit = self.settings.model_idle_seconds
        if limit <= 0:
            return 0
        now = self.clock() if now is None else now
        with self._lock:
            # A model's objects go together, when the most recent use of any is too old.
            last: dict[str, float] = {}
            for model_id, used in [(e.model_id, e.last_used) for e in self._entries.values()]:
                last[model_id] = max(last.get(model_id, 0.0), used)
            idle = {m for m, used in last.items() if now - used >= limit}
            count = self._drop(lambda slot: slot[0] in idle)
        if count:
            log.info("unloaded idle models: %s", ", ".join(sorted(idle)))
            release_memory()  # after _drop returned: no frame here still holds the objects
        return count

    def close(self) -> None:
        """Unload everything and stop the batchers and the reaper."""
        self._closed.set()
        with self._lock:
            batchers = list(self._batchers.values())
            self._batchers.clear()
        for batcher in batchers:
            batcher.close()
        self.unload()

    def _touch(self, slot: tuple[str, str]) -> _Entry | None:
        with self._lock:
            entry = self._entries.get(slot)
            if entry is not None:
                entry.last_used = self.clock()
                self._entries.move_to_end(slot)
            return entry

    def _evict_over_capacity(self, keep: str) -> bool:
        """Drop least-recently-used models beyond ``max_loaded_models`` (lock held)."""
        evicted = False
        limit = max(1, self.settings.max_loaded_models)
        while True:
            models = list(dict.fromkeys(e.model_id for e in self._entries.values()))
            if len(models) <= limit:
                return evicted
            victim = next((m for m in models if m != keep), None)
            if victim is None:
                return evicted
            self._drop(lambda slot, victim=victim: slot[0] == victim)  # type: ignore[misc]
            log.info("unloaded %s (more than %d models loaded)", victim, limit)
            evicted = True

    def _start_reaper(self) -> None:
        """A daemon thread that unloads idle models; it ends when nothing is loaded."""
        if self.settings.model_idle_seconds <= 0 or self._reaper is not None:
            return
        self._reaper = threading.Thread(target=self._reap, name="model-reaper", daemon=True)
        self._reaper.start()

    def _reap(self) -> None:
        period = max(0.05, min(self.settings.model_idle_seconds / 4, 30.0))
        while not self._closed.wait(period):
            self.unload_idle()
            with self._lock:
                if not self._entries:
                    self._reaper = None
                    return
        with self._lock:
            self._reaper = None


def zero_inputs(
    session: onnxruntime.InferenceSession, shapes: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Zero-filled feeds for every graph input (symbolic dims become 1)."""
    import numpy as np

    dtypes = {
        "tensor(float)": np.float32,
        "tensor(float16)": np.float16,
        "tensor(double)": np.float64,
        "tensor(int64)": np.int64,
        "tensor(int32)": np.int32,
        "tensor(int8)": np.int8,
        "tensor(uint8)": np.uint8,
        "tensor(bool)": np.bool_,
    }
    feeds: dict[str, Any] = {}
    for spec in session.get_inputs():
        shape = (shapes or {}).get(spec.name) or [
            d if isinstance(d, int) and d > 0 else 1 for d in spec.shape
        ]
        feeds[spec.name] = np.zeros(shape, dtype=dtypes.get(spec.type, np.float32))
    return feeds


_RUNTIME: ModelRuntime | None = None
_RUNTIME_LOCK = threading.Lock()


def get_runtime() -> ModelRuntime:
    """The process-wide runtime (made on first use from the configured settings)."""
    global _RUNTIME
    with _RUNTIME_LOCK:
        if _RUNTIME is None:
            _RUNTIME = ModelRuntime(store.current_settings())
        return _RUNTIME


def configure(settings: Settings | None) -> ModelRuntime:
    """Use ``settings`` for the model dir and sessions from now on (server start, tests)."""
    global _RUNTIME
    store.configure(settings)
    with _RUNTIME_LOCK:
        old, _RUNTIME = _RUNTIME, ModelRuntime(store.current_settings())
        runtime = _RUNTIME
    if old is not None:
        old.close()
    return runtime
