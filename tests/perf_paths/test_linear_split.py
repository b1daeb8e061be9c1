"""Linear's bias add over a large output runs in row blocks on shendu's threads (the path
without MKL; with MKL the bias is added inside the GEMM)."""
import numpy as np

import shendu as sd
import shendu.nn.functional as F
from shendu.backend import pool as _parallel
from shendu.backend import runtime
from shendu.backend.pool import SPLIT_MIN as _SPLIT_MIN

rng = np.random.default_rng(11)


def test_large_output_bias_add_matches_one_thread_and_numpy(monkeypatch):
    monkeypatch.setattr(_parallel, "_blas_threads", lambda: 8)  # the tests pin BLAS to 1
    rows, out_f = _SPLIT_MIN // 500 + 3, 500
    x = rng.standard_normal((rows, 16)).astype(np.float32)
    w = rng.standard_normal((out_f, 16)).astype(np.float32)
    b = rng.standard_normal(out_f).astype(np.float32)
    before = _parallel.get_num_threads()
    got = []
    with runtime.use(mkl=False), runtime.trace_paths() as log:
        try:
            for n in (1, 2):
                _parallel.set_num_threads(n)
                xt = sd.tensor(x, requires_grad=True)
                bt = sd.tensor(b, requires_grad=True)
                y = F.linear(xt, sd.tensor(w), bt)
                y.sum().backward()
                got.append((y.detach().numpy(), bt.grad.numpy()))
        finally:
            _parallel.set_num_threads(before)
    assert ("add_rows", "numpy") in log and ("matmul", "numpy") in log
    np.testing.assert_array_equal(got[0][0], got[1][0])
    np.testing.assert_array_equal(got[0][0], x @ w.T + b)
    np.testing.assert_allclose(got[1][1], np.full(out_f, rows, np.float32))


def test_split_rows_covers_every_row_once_on_several_threads(monkeypatch):
    import threading

    monkeypatch.setattr(_parallel, "_blas_threads", lambda: 8)
    monkeypatch.setattr(runtime, "kernels_parallel", lambda: False)  # (an OpenMP pool: none)
    before = _parallel.get_num_threads()
    seen = []
    try:
        _parallel.set_num_threads(3)
        _parallel.split_rows(lambda a, b: seen.append((a, b, threading.current_thread().name)),
                             10, _parallel.SPLIT_MIN)
        assert sorted(r[:2] for r in seen) == [(0, 3), (3, 6), (6, 10)]
        assert sum(name.startswith("shendu-optim") for *_, name in seen) == 2
        seen.clear()  # small work, or one thread: all in the caller
        _parallel.split_rows(lambda a, b: seen.append((a, b)), 10, _parallel.SPLIT_MIN - 1)
        _parallel.set_num_threads(1)
        _parallel.split_rows(lambda a, b: seen.append((a, b)), 10, _parallel.SPLIT_MIN)
        assert seen == [(0, 10), (0, 10)]
    finally:
        _parallel.set_num_threads(before)


def test_split_rows_stays_in_the_caller_beside_an_openmp_pool(monkeypatch):
    monkeypatch.setattr(_parallel, "_blas_threads", lambda: 8)
    monkeypatch.setattr(runtime, "kernels_parallel", lambda: True)
    seen = []
    _parallel.split_rows(lambda a, b: seen.append((a, b)), 10, _parallel.SPLIT_MIN)
    assert seen == [(0, 10)]


def test_split_rows_respects_a_blas_limit(monkeypatch):
    monkeypatch.setattr(_parallel, "_blas_threads", lambda: 1)
    seen = []
    _parallel.split_rows(lambda a, b: seen.append((a, b)), 10, _parallel.SPLIT_MIN)
    assert seen == [(0, 10)]
