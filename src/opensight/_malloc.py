"""Keep large image buffers in the heap instead of fresh ``mmap`` pages.

glibc hands every allocation over its (dynamic) mmap threshold a fresh mapping
and returns it on free, so each decoded 1 MP image costs ~3,000 page faults --
measured at ~7 ms of a ~16 ms quality call (bench/api.py). Raising the mmap and
trim thresholds lets freed buffers be reused; the price is that up to the trim
threshold of freed memory stays with the process. Opt out with
``OPENSIGHT_MALLOC_TUNING=false``. A no-op off glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD = 64 * 1024 * 1024
_TRIM_THRESHOLD = 256 * 1024 * 1024
_applied = False


def tune() -> bool:
    """Apply once per process; True when glibc accepted the settings."""
    global _applied
    if _applied:
        return True
    if os.environ.get("OPENSIGHT_MALLOC_TUNING", "true").lower() in ("0", "false", "no"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok = bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
    )
    _applied = ok
    return ok
