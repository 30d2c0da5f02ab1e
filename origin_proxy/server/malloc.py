"""glibc malloc thresholds for the serving process, set once at start (`service.malloc`, DESIGN.md §8).

Why: a cold `?start=` parses a moov of several MB into temporary numpy arrays of 0.1–10 MB. glibc serves every
allocation above its mmap threshold (128 KiB, raised dynamically only up to the size of the largest block freed so
far) with a fresh mmap and gives it back with munmap on free, so each parse faults its temporaries in again, page
by page: ~5000 minor faults and ~half of the parse time of a 5.4 MB moov (bench/cold_parse.py, BENCHMARKS.md).
Fixed thresholds keep such blocks in the heap, where the next parse reuses them; free memory above
`trim_threshold_bytes` at the top of a heap is still returned to the kernel.

`mallopt(3)` through ctypes; on a C library without it (musl, macOS) nothing is changed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

from ..config import MallocSettings

log = logging.getLogger("origin_proxy.server")

# mallopt(3) parameter numbers (glibc malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3


def apply_malloc_settings(settings: MallocSettings) -> dict[str, int]:
    """Set M_MMAP_THRESHOLD and M_TRIM_THRESHOLD from `settings` (0 leaves a threshold at glibc's default).

    Returns:
        {"mmap_threshold_bytes": n, "trim_threshold_bytes": n} of the values glibc accepted; empty when the C
        library has no mallopt. Never raises: a refused value is logged and left at the default.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return {}
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    applied: dict[str, int] = {}
    for name, param, value in (("mmap_threshold_bytes", M_MMAP_THRESHOLD, settings.mmap_threshold_bytes),
                               ("trim_threshold_bytes", M_TRIM_THRESHOLD, settings.trim_threshold_bytes)):
        if not value:
            continue
        if mallopt(param, value) == 1:
            applied[name] = value
        else:
            log.warning("malloc: %s=%d refused by the C library; left at its default", name, value)
    return applied
