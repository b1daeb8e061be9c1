"""Process-level speed settings: glibc's allocator keeps freed memory (opt-in); thread
counts; ``import shendu`` alone changes nothing process-wide."""
import os
import subprocess
import sys

import pytest

import shendu as sd
from shendu.backend import blas, jit


def _run(code: str, **env) -> str:
    return subprocess.run([sys.executable, "-c", code], env={**os.environ, **env},
                          capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_keeping_freed_memory_is_opt_in_and_reversible():
    code = "import shendu as sd; print(sd.backend.keep_freed_memory())"
    env = {k: v for k, v in os.environ.items() if k != "SHENDU_KEEP_FREED_MEMORY"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout.strip()
    assert out == "False"
    assert _run(code, SHENDU_KEEP_FREED_MEMORY="1") == "True"
    code = ("import shendu as sd; a = sd.backend.keep_freed_memory(True); "
            "b = sd.backend.keep_freed_memory(False); print(a, b)")
    assert _run(code) == "True False"


# What ``import shendu`` could change: loaded libraries, OpenMP and BLAS state, the
# environment, the allocator (a 64 MB block, above glibc's largest dynamic mmap threshold,
# comes from mmap under glibc's defaults, from the heap once freed memory is kept), threads.
_PROBE = """
import ctypes, os, sys, threading
def state():
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    p = libc.malloc(64 << 20)
    maps = open("/proc/self/maps").read()
    heap = [l for l in maps.splitlines() if "[heap]" in l]
    lo, hi = (int(x, 16) for x in heap[0].split()[0].split("-")) if heap else (0, 0)
    from_heap = lo <= p < hi
    libc.free(ctypes.c_void_p(p))
    mods = sorted(m for m in ("numba", "threadpoolctl", "llvmlite") if m in sys.modules)
    return dict(env=dict(os.environ), threads=threading.active_count(),
                mkl="libmkl_rt" in maps, gomp="libgomp" in maps, mods=mods,
                from_heap=from_heap)
import numpy
before = state()
import shendu, shendu.nn, shendu.nn.functional
after = state()
print(before == after or (before, after))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_import_shendu_changes_nothing_process_wide():
    env = {k: v for k, v in os.environ.items()
           if k not in ("SHENDU_KEEP_FREED_MEMORY", "SHENDU_TRACE_PATHS")}
    out = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True,
                         text=True, check=True).stdout.strip()
    assert out == "True"


def test_set_num_threads_reaches_mkl_and_the_kernels():
    before = sd.get_num_threads()
    try:
        sd.set_num_threads(1)
        assert jit.num_threads() == 1
        if blas.mkl_loaded():
            assert blas.get_num_threads() == 1
        sd.set_num_threads(2)
        if blas.mkl_loaded():
            assert blas.get_num_threads() == 2
        if jit.parallel():
            assert jit.num_threads() == min(2, os.cpu_count())
    finally:
        sd.set_num_threads(before)


def test_blas_threads_block_limits_the_kernels_too():
    from shendu._threads import blas_threads

    sd.set_num_threads(2)
    outside = jit.num_threads()
    with blas_threads(1) as n:
        if n == 1 and jit.enabled():
            assert jit.num_threads() == 1
            if blas.mkl_loaded():
                assert blas.get_num_threads() == 1
    assert jit.num_threads() == outside


def test_kernels_leave_openmp_unnested():
    # numba's OpenMP layer turns nesting on for the whole process; shendu turns it off,
    # or MKL (and PyTorch, in the same process) start a thread team inside each region
    import ctypes

    if not (jit.enabled() and blas.mkl_loaded()):
        pytest.skip("the kernels share OpenMP with MKL only when both are there")
    jit.num_threads()  # sets numba up
    assert jit.parallel()
    assert ctypes.CDLL("libgomp.so.1").omp_get_max_active_levels() == 1
