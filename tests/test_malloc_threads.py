"""Process-level speed settings: glibc's allocator keeps freed memory; thread counts."""
import os
import subprocess
import sys

import pytest

import shendu as sd
from shendu.backend import _malloc, blas, jit


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_allocator_settings_applied_once_and_can_be_refused():
    assert _malloc.keep_freed_memory() is _malloc.applied
    code = "import shendu.backend._malloc as m; print(m.applied)"
    env = {**os.environ, "SHENDU_MALLOC": "0"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout.strip()
    assert out == "False"


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
