"""The row kernels of the cross-entropy and the Linear layer (``backend/jit/loss.py`` and
``elementwise.py``): softmax rows with MKL's vector exp, row scaling, bias fill and
bias-gradient column sums, against the plain NumPy paths."""
import numpy as np
import pytest
from tolerance import assert_sums_close, matmul_scale

import shendu as sd
import shendu.nn.functional as F
from shendu.backend import jit

pytest.importorskip("numba")
if not jit.mkl_gemm_available():
    pytest.skip("the softmax row kernel needs MKL", allow_module_level=True)

RNG = np.random.default_rng(11)


def _ce(x, t, **kw):
    tx = sd.from_numpy(x).requires_grad_(True)
    loss = F.cross_entropy(tx, sd.from_numpy(t), **kw)
    g = np.ones(loss.shape, x.dtype) if loss.ndim else None
    loss.backward(None if g is None else sd.from_numpy(g))
    return loss.detach().numpy(), tx.grad.numpy()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kw", [{}, {"reduction": "sum"}, {"reduction": "none"},
                                {"label_smoothing": 0.1}, {"ignore_index": 3}])
def test_cross_entropy_rows_match_plain_path(dtype, kw):
    x = (RNG.standard_normal((70, 1200)) * 4).astype(dtype)  # above the kernel's size
    t = RNG.integers(0, 1200, 70)
    t[::7] = 3
    got = _ce(x, t, **kw)
    with jit.use(False):
        want = _ce(x, t, **kw)
    tol = 2e-6 if dtype == np.float32 else 1e-13
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol * np.abs(b).max())


def test_rows_that_need_a_shift_and_rows_with_infinities():
    x = RNG.standard_normal((8, 9000)).astype(np.float32)
    x[0] += 500         # exp overflows unshifted: shifted by the row maximum
    x[1] -= 500         # everything underflows unshifted
    x[2, 5] = np.inf    # a +inf score: the loss is nan/inf as on the plain path
    x[3, :] = -np.inf
    x[3, 7] = 0.0
    x[4, 2] = np.nan
    t = np.array([1, 2, 3, 7, 5, 6, 7, 8])
    with np.errstate(all="ignore"):
        got = _ce(x, t, reduction="none")
        with jit.use(False):
            want = _ce(x, t, reduction="none")
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7, equal_nan=True)
    assert np.isfinite(got[0][:2]).all() and np.isnan(got[0][4])


def test_softmax_rows_kernel_directly():
    x = RNG.standard_normal((5, 20000)).astype(np.float64) * 30
    e, m, s = np.empty_like(x), np.empty(5), np.empty(5)
    jit.softmax_rows(x, e, m, s, 1e-300, 2)
    ref = np.exp(x - m[:, None])
    np.testing.assert_allclose(e, ref, rtol=1e-14)
    np.testing.assert_allclose(s, ref.sum(1), rtol=1e-12)


def test_bias_fill_and_column_sums_in_linear():
    for dtype in (np.float32, np.float64):
        x = RNG.standard_normal((300, 64)).astype(dtype)
        w = RNG.standard_normal((500, 64)).astype(dtype)
        b = RNG.standard_normal(500).astype(dtype)
        g = RNG.standard_normal((300, 500)).astype(dtype)

        def run(x=x, w=w, b=b, g=g):
            tx, tw, tb = (sd.from_numpy(a).requires_grad_(True) for a in (x, w, b))
            y = F.linear(tx, tw, tb)
            y.backward(sd.from_numpy(g))
            return y.detach().numpy(), tb.grad.numpy(), tw.grad.numpy()

        got = run()
        with jit.use(False):
            want = run()
        # the same sums in other orders (the products may take another GEMM route)
        scales = (matmul_scale(x, w.T) + np.abs(b), np.abs(g).sum(0), matmul_scale(g.T, x))
        for a, c, n, scale in zip(got, want, (64, 300, 300), scales):
            assert_sums_close(a, c, n, scale)
        assert_sums_close(got[0], x.astype(np.float64) @ w.T.astype(np.float64) + b, 64,
                          scales[0])
        parts = np.empty((3, 500), dtype)
        jit.column_sums(g, parts, 3)
        assert_sums_close(parts.sum(0), g.astype(np.float64).sum(0), 300, np.abs(g).sum(0))
