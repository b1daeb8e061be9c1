"""``sd.backend.info()``, path tracing, and the process settings of ``backend.runtime``."""
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import shendu as sd
import shendu.nn.functional as F
from shendu.backend import cpu, runtime

ROOT = Path(sd.__file__).parent


def _python(code: str, **env) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SHENDU_")}
    return subprocess.run([sys.executable, "-c", code], env={**clean, **env},
                          capture_output=True, text=True, check=True, timeout=300)


def test_info_reports_blas_kernels_and_settings():
    info = sd.backend.info()
    assert set(info) >= {"blas", "blas_threads", "mkl", "kernels", "kernel_threads",
                         "openmp_nesting", "keep_freed_memory", "fork_child", "tracing"}
    assert info["blas"].startswith(("MKL", "NumPy"))
    assert info["blas"].startswith("MKL") == runtime.mkl_loaded()
    assert info["kernels"].startswith("on") == runtime.kernels_on()
    assert "blas " in str(info) and "kernels " in str(info)  # prints as a report


def test_info_says_why_a_path_is_off():
    code = "import shendu as sd; i = sd.backend.info(); print(i['kernels']); print(i['mkl'])"
    kernels, mkl = _python(code, SHENDU_JIT="0", SHENDU_MKL="0").stdout.splitlines()
    assert kernels == "off: SHENDU_JIT=0 in the environment"
    assert mkl == "off: SHENDU_MKL=0 in the environment"
    with runtime.use(kernels=False):
        assert sd.backend.info()["kernels"].startswith("off: turned off at run time")


def test_trace_paths_records_each_op_and_nests():
    x = sd.randn(8, 16)
    with sd.backend.trace_paths() as outer:
        F.relu(x)
        with sd.backend.trace_paths() as inner:
            F.linear(x, sd.randn(4, 16), sd.randn(4))
    ops = [op for op, _ in inner]
    assert "matmul" in ops and outer[0][0] == "relu"
    assert outer[1:] == inner  # the outer block sees the inner calls too
    assert runtime.trace is None  # off again


@pytest.mark.parametrize("kernels", [True, False])
def test_trace_shows_the_kernel_or_numpy_path(kernels):
    if kernels and not runtime.kernels_on():
        pytest.skip("numba is not installed (or SHENDU_JIT=0)")
    x = np.random.default_rng(0).standard_normal((4, 3, 8, 8)).astype(np.float32)
    with runtime.use(kernels=kernels), runtime.trace_paths() as log:
        y = F.max_pool2d(F.relu(sd.tensor(x, requires_grad=True)), 2)
        y.sum().backward()
    want = "numba" if kernels else "numpy"
    for op in ("relu", "max_pool2d", "max_pool2d_backward", "relu_grad"):
        assert (op, want) in log, (op, log)


def test_trace_from_the_environment_prints_a_summary_at_exit():
    code = "import shendu as sd; sd.relu(sd.ones(3)); sd.relu(sd.ones(3))"
    err = _python(code, SHENDU_TRACE_PATHS="1").stderr
    assert "shendu paths taken" in err
    assert re.search(r"relu\s+\w+\s+2", err), err


def test_matmul_route_is_reported():
    a = np.ones((64, 64), np.float32)
    with runtime.use(mkl=False), runtime.trace_paths() as log:
        cpu.matmul(a, a)
    assert log == [("matmul", "numpy")]
    if runtime.mkl_loaded():
        with runtime.trace_paths() as log:
            cpu.matmul(a, a)
        assert log[0][1] in ("mkl", "mkl-compiled")


def test_no_environment_reads_outside_the_runtime_module():
    """Fast-path switches are read in backend/runtime.py only. The exceptions name files,
    not fast paths: where datasets live and where benchmarks live, and the distributed
    launcher, which builds each rank's environment."""
    allowed = {"backend/runtime.py", "data/datasets/_files.py", "bench.py",
               "distributed/launcher.py", "distributed/_rank.py"}
    found = []
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT).as_posix()
        if rel not in allowed and re.search(r"os\.environ|getenv\(", path.read_text()):
            found.append(rel)
    assert not found


def test_set_num_threads_reaches_the_runtime():
    before = sd.get_num_threads()
    try:
        sd.set_num_threads(1)
        assert runtime.kernel_threads() == 1
        if runtime.mkl_loaded():
            assert runtime.mkl_threads() == 1
    finally:
        sd.set_num_threads(before)
