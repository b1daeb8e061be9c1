"""Keep freed array memory in the process instead of returning it to the OS (glibc only).

A training step allocates the same activations and gradients every time: arrays of
0.1-50 MB. glibc serves blocks above its mmap threshold with fresh ``mmap`` pages and
unmaps them on free, so every step pays a page fault per 4 KB page it writes, and
NumPy's request for transparent huge pages on big arrays adds, now and then, a stall
while the kernel compacts memory. Serving every block from the heap and keeping what is
freed there (up to ``TRIM_THRESHOLD`` at its top) was measured in this project's VM: the
MLP step 3.2 -> 2.0 ms, LeNet-5 4.4 -> 3.4 ms, the CIFAR CNN 65 -> 61 ms, the LSTM
language model's 100-250 ms (45 MB score arrays, one step in ~10 stalling) -> a steady
92 ms. PyTorch's CPU steps gain the same way in the same process (its MLP step 3.3 ->
2.0 ms, its LSTM LM 118-130 -> 96 ms), so benchmark ratios are not flattered by it. The
cost: memory freed below the heap's top stays with the process until reused.
``SHENDU_MALLOC=0`` in the environment leaves glibc's defaults alone.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD, _M_MMAP_MAX = -1, -2, -3, -4

MMAP_THRESHOLD = 32 << 20   # glibc's maximum (used should mmap be turned back on)
TRIM_THRESHOLD = 512 << 20  # free memory at the heap's top kept before giving it back
TOP_PAD = 64 << 20          # grow the heap in steps this big (fewer brk calls)

applied = False


def keep_freed_memory() -> bool:
    """Apply the settings above once; True when they are in effect."""
    global applied
    if applied or os.environ.get("SHENDU_MALLOC", "1") == "0" or not sys.platform.startswith(
            "linux"):
        return applied
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl has no mallopt)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    applied = all(mallopt(opt, value) == 1 for opt, value in (
        (_M_MMAP_THRESHOLD, MMAP_THRESHOLD), (_M_MMAP_MAX, 0),  # no block is mmapped
        (_M_TRIM_THRESHOLD, TRIM_THRESHOLD), (_M_TOP_PAD, TOP_PAD)))
    return applied
