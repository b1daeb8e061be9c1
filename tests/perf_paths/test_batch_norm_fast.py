"""The batch-norm kernels (``backend/jit/norm.py`` via ``backend/cpu.batch_norm_*``) against
a float64 reference, the plain NumPy path and PyTorch, for the layouts activations arrive
in (channel-major from a convolution, NCHW from the user) and gradients of either layout."""
import numpy as np
import pytest

import shendu as sd
import shendu.nn.functional as F
from shendu.backend import jit, runtime

pytest.importorskip("numba")

try:
    import torch
except ImportError:  # the PyTorch comparison skips
    torch = None

RNG = np.random.default_rng(0)
EPS = 1e-5


@pytest.fixture(autouse=True)
def _kernels_on():
    with jit.use(True):  # also under SHENDU_JIT=0: these tests are about the kernels
        assert jit.enabled()
        yield


def _channel_major(a):
    return np.ascontiguousarray(np.moveaxis(a, 1, 0)).transpose(1, 0, 2, 3)


def _layout(a, layout):
    return _channel_major(a) if layout == "channel_major" else np.ascontiguousarray(a)


def _reference(x, w, b, g, training, mean=None, var=None):
    """Output and gradients (x, w, b) of batch norm in float64, written out plainly."""
    x, w, b, g = (a.astype(np.float64) for a in (x, w, b, g))
    axes, shape = (0, 2, 3), (1, -1, 1, 1)
    if training:
        mean, var = x.mean(axes), x.var(axes)
    istd = 1 / np.sqrt(var + EPS)
    xhat = (x - mean.reshape(shape)) * istd.reshape(shape)
    y = xhat * w.reshape(shape) + b.reshape(shape)
    gb, gw = g.sum(axes), (g * xhat).sum(axes)
    n = x.size // x.shape[1]
    gh = g if not training else g - (gb / n).reshape(shape) - xhat * (gw / n).reshape(shape)
    gx = gh * (istd * w).reshape(shape)
    return y, gx, gw, gb, xhat, istd


def _run(x, w, b, g, training, mean=None, var=None, x_grad=True):
    tx = sd.from_numpy(x).requires_grad_(x_grad)
    tw, tb = sd.from_numpy(w).requires_grad_(True), sd.from_numpy(b).requires_grad_(True)
    rm = sd.from_numpy(np.zeros(x.shape[1], x.dtype) if mean is None else mean.copy())
    rv = sd.from_numpy(np.ones(x.shape[1], x.dtype) if var is None else var.copy())
    y = F.batch_norm(tx, rm, rv, tw, tb, training=training, eps=EPS)
    y.backward(sd.from_numpy(g))
    gx = tx.grad.numpy() if x_grad else None
    return y.detach().numpy(), gx, tw.grad.numpy(), tb.grad.numpy(), rm.numpy(), rv.numpy()


def _check_float32(got, x, w, b, g, training, mean=None, var=None):
    """float32 results within a bound derived from their arithmetic: a few roundings of
    each term (the kernels sum in float64, so the sums add no error that grows with n)."""
    y, gx, gw, gb, xhat, istd = _reference(x, w, b, g, training, mean, var)
    eps = float(np.finfo(np.float32).eps)
    shape = (1, -1, 1, 1)
    m = x.astype(np.float64).mean((0, 2, 3)) if training else mean.astype(np.float64)
    s = np.abs(istd * w).reshape(shape)
    # (x - m) and m each rounded, times a scale rounded a few times, plus b
    y_scale = (np.abs(xhat) / istd.reshape(shape) + np.abs(m).reshape(shape)) * s \
        + np.abs(b).reshape(shape)
    np.testing.assert_array_less(np.abs(got[0] - y), 16 * eps * y_scale + 1e-30)
    n = x.size // x.shape[1]
    ag, ah = np.abs(g.astype(np.float64)), np.abs(xhat)
    gw_scale = (ag * ah).sum((0, 2, 3))
    np.testing.assert_array_less(np.abs(got[2] - gw), 16 * eps * gw_scale + 1e-30)
    np.testing.assert_array_less(np.abs(got[3] - gb), 16 * eps * ag.sum((0, 2, 3)) + 1e-30)
    if got[1] is not None:
        gx_scale = s * (ag + (ag.sum((0, 2, 3)) / n).reshape(shape)
                        + ah * (gw_scale / n).reshape(shape))
        np.testing.assert_array_less(np.abs(got[1] - gx), 16 * eps * gx_scale + 1e-30)


SHAPES = [(8, 4, 6, 6), (3, 5, 4, 7), (64, 16, 4, 4)]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("layout", ["channel_major", "nchw"])
@pytest.mark.parametrize("g_layout", ["same", "other"])
@pytest.mark.parametrize("training", [True, False])
def test_kernels_match_float64_reference(shape, layout, g_layout, training):
    c = shape[1]
    x = _layout((RNG.standard_normal(shape) * 3 + 2).astype(np.float32), layout)
    other = "nchw" if layout == "channel_major" else "channel_major"
    g = _layout(RNG.standard_normal(shape).astype(np.float32),
                layout if g_layout == "same" else other)
    w, b = RNG.standard_normal(c).astype(np.float32), RNG.standard_normal(c).astype(np.float32)
    mean = RNG.standard_normal(c).astype(np.float32)
    var = RNG.uniform(0.5, 2, c).astype(np.float32)
    with runtime.trace_paths() as log:
        got = _run(x, w, b, g, training, mean, var)
    paths = dict(log)
    assert paths["batch_norm_forward"] == paths["batch_norm_backward"] == "numba"
    if training:
        assert paths["batch_norm_stats"] == "numba"
    _check_float32(got, x, w, b, g, training, mean, var)
    if training:  # running statistics: momentum 0.1, unbiased variance
        n = x.size // c
        x64 = x.astype(np.float64)
        np.testing.assert_allclose(got[4], 0.9 * mean + 0.1 * x64.mean((0, 2, 3)), rtol=1e-6,
                                   atol=1e-6)
        np.testing.assert_allclose(got[5], 0.9 * var + 0.1 * x64.var((0, 2, 3)) * n / (n - 1),
                                   rtol=1e-5)


@pytest.mark.parametrize("layout", ["channel_major", "nchw"])
@pytest.mark.parametrize("training", [True, False])
def test_float64_kernels_match_numpy_path(layout, training):
    """In float64 the kernel and NumPy's reference add the same terms in other orders."""
    shape = (6, 3, 5, 5)
    x = _layout(RNG.standard_normal(shape) + 1, layout)
    g = _layout(RNG.standard_normal(shape), layout)
    w, b = RNG.standard_normal(3), RNG.standard_normal(3)
    mean, var = RNG.standard_normal(3), RNG.uniform(0.5, 2, 3)
    fast = _run(x, w, b, g, training, mean, var)
    with jit.use(False), runtime.trace_paths() as log:
        plain = _run(x, w, b, g, training, mean, var)
    assert dict(log)["batch_norm_backward"] == "numpy"
    n = x.size // 3
    for got, want in zip(fast, plain):
        # sums of n terms of size ~|x|*|g| <= 10 * 5: (n + 2) eps each, well inside 1e-12
        np.testing.assert_allclose(got, want, rtol=0, atol=(n + 2) * 2.3e-16 * 100)


def test_no_input_gradient_and_no_affine():
    """Only the weight's gradient wanted (a frozen input), and a norm with no weight."""
    x = _channel_major(RNG.standard_normal((4, 3, 5, 5)).astype(np.float32))
    g = _channel_major(RNG.standard_normal((4, 3, 5, 5)).astype(np.float32))
    w, b = np.ones(3, np.float32), np.zeros(3, np.float32)
    got = _run(x, w, b, g, True, x_grad=False)
    assert got[1] is None
    _check_float32(got, x, w, b, g, True)
    tx = sd.from_numpy(x).requires_grad_(True)
    y = F.batch_norm(tx, None, None, training=True, eps=EPS)
    y.backward(sd.from_numpy(g))
    want = _reference(x, w, b, g, True)
    _check_float32((y.detach().numpy(), tx.grad.numpy(), want[2], want[3]), x, w, b, g, True)


@pytest.mark.skipif(torch is None, reason="PyTorch not installed")
def test_matches_pytorch_training_step():
    x = _channel_major((RNG.standard_normal((16, 8, 6, 6)) * 2 - 1).astype(np.float32))
    g = RNG.standard_normal((16, 8, 6, 6)).astype(np.float32)
    w, b = RNG.standard_normal(8).astype(np.float32), RNG.standard_normal(8).astype(np.float32)
    got = _run(x, w, b, g, True)
    tx = torch.tensor(x, requires_grad=True)
    tw, tb = torch.tensor(w, requires_grad=True), torch.tensor(b, requires_grad=True)
    rm, rv = torch.zeros(8), torch.ones(8)
    y = torch.nn.functional.batch_norm(tx, rm, rv, tw, tb, training=True, eps=EPS)
    y.backward(torch.tensor(g))
    n = 16 * 36
    for k, (mine, theirs) in enumerate(zip(got, (y, tx.grad, tw.grad, tb.grad, rm, rv))):
        theirs = theirs.detach().numpy().astype(np.float64)
        # two float32 evaluations of sums of at most n terms of size about max|theirs|
        bound = (n + 2) * float(np.finfo(np.float32).eps) * np.abs(theirs).max()
        np.testing.assert_allclose(mine, theirs, rtol=0, atol=bound, err_msg=f"array {k}")
