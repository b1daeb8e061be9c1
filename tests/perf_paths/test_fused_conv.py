"""The fused stride-1 convolution (``backend/jit/conv.py`` via ``backend/cpu.try_conv2d``) and
the Conv2d/Linear + ReLU fusions, against the plain NumPy paths and PyTorch."""
import numpy as np
import pytest

import shendu as sd
import shendu.nn.functional as F
from shendu.backend import jit

pytest.importorskip("numba")
if not jit.mkl_gemm_available():
    pytest.skip("the fused convolution needs MKL", allow_module_level=True)

try:
    import torch
except ImportError:  # the PyTorch comparisons skip
    torch = None

RNG = np.random.default_rng(0)


def _channel_major(a):
    return np.ascontiguousarray(a.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)


def _run(fn, x, w, b, g, kw):
    """Output and the gradients of x, w (and b) of ``fn`` for output gradient ``g``."""
    tx = sd.from_numpy(x).requires_grad_(True)
    tw = sd.from_numpy(w).requires_grad_(True)
    tb = None if b is None else sd.from_numpy(b).requires_grad_(True)
    y = fn(tx, tw, tb, **kw)
    y.backward(sd.from_numpy(g))
    grads = [tx.grad.numpy(), tw.grad.numpy()] + ([] if tb is None else [tb.grad.numpy()])
    return [y.detach().numpy()] + grads


CASES = [  # (n, c, h, w, o, k, padding, dilation)
    (64, 1, 28, 28, 6, 5, 2, 1),      # LeNet conv1
    (64, 6, 14, 14, 16, 5, 0, 1),     # LeNet conv2
    (5, 3, 9, 7, 4, 3, 1, 1),         # odd sizes, a batch no chunk divides
    (3, 2, 11, 10, 5, 3, 2, 2),       # dilation
    (7, 4, 6, 6, 3, 1, 0, 1),         # 1x1
    (2, 3, 8, 9, 4, (3, 2), (1, 0), 1),  # rectangular kernel and padding
    (1, 2, 5, 5, 2, 3, "same", 1),
]


@pytest.mark.parametrize("case", CASES, ids=[str(c) for c in CASES])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("layout", ["nchw", "channel_major"])
def test_fused_conv_matches_plain_path(case, dtype, relu, layout):
    n, c, h, wd, o, k, pad, dil = case
    kh, kw = (k, k) if isinstance(k, int) else k
    x = RNG.standard_normal((n, c, h, wd)).astype(dtype)
    if layout == "channel_major":
        x = _channel_major(x)
    w = RNG.standard_normal((o, c, kh, kw)).astype(dtype)
    b = RNG.standard_normal(o).astype(dtype)
    fn = F.conv2d_relu if relu else F.conv2d
    kwargs = dict(padding=pad, dilation=dil)
    with sd.no_grad():
        shape = F.conv2d(sd.from_numpy(x), sd.from_numpy(w), None, **kwargs).shape
    g = RNG.standard_normal(shape).astype(dtype)
    fused = _run(fn, x, w, b, g, kwargs)
    with jit.use(False):
        plain = _run(fn, x, w, b, g, kwargs)
    tol = 1e-4 if dtype == np.float32 else 1e-11
    for got, want in zip(fused, plain):
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max())


def test_fused_conv_without_bias_and_without_input_grad():
    x = RNG.standard_normal((9, 2, 10, 10)).astype(np.float32)
    w = RNG.standard_normal((3, 2, 3, 3)).astype(np.float32)
    tw = sd.from_numpy(w).requires_grad_(True)
    F.conv2d_relu(sd.from_numpy(x), tw, None, padding=1).sum().backward()
    got = tw.grad.numpy()
    tw.grad = None
    with jit.use(False):
        F.conv2d_relu(sd.from_numpy(x), tw, None, padding=1).sum().backward()
    np.testing.assert_allclose(got, tw.grad.numpy(), rtol=1e-4, atol=1e-3)


def test_fused_conv_handles_non_contiguous_inputs_and_weights():
    x = RNG.standard_normal((4, 6, 12, 12)).astype(np.float32)[:, ::2, 1:, ::-1]
    w = RNG.standard_normal((10, 3, 3, 3)).astype(np.float32)[::2]
    want = F.conv2d(sd.from_numpy(np.ascontiguousarray(x)),
                    sd.from_numpy(np.ascontiguousarray(w)), padding=1).numpy()
    got = F.conv2d(sd.from_numpy(x), sd.from_numpy(w), padding=1).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def test_relu_fusion_keeps_nan_and_masks_gradient_like_pytorch():
    x = np.ones((1, 1, 3, 3), np.float32)
    x[0, 0, 1, 1] = np.nan
    w = np.ones((2, 1, 1, 1), np.float32)
    w[1] = -1
    tx = sd.from_numpy(x).requires_grad_(True)
    y = F.conv2d_relu(tx, sd.from_numpy(w))
    assert np.isnan(y.detach().numpy()[0, :, 1, 1]).all()  # relu(nan) = nan, both channels
    assert (y.detach().numpy()[0, 1][~np.isnan(x[0, 0])] == 0).all()
    y.sum().backward()
    g = tx.grad.numpy()[0, 0]
    assert g[0, 0] == 1.0  # only the first channel is on there


@pytest.mark.skipif(torch is None, reason="PyTorch not installed")
@pytest.mark.parametrize("case", CASES[:3], ids=[str(c) for c in CASES[:3]])
def test_fused_conv_relu_matches_pytorch(case):
    n, c, h, wd, o, k, pad, dil = case
    x = RNG.standard_normal((n, c, h, wd))
    w = RNG.standard_normal((o, c, k, k))
    b = RNG.standard_normal(o)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = torch.relu(torch.nn.functional.conv2d(tx, tw, tb, padding=pad, dilation=dil))
    g = RNG.standard_normal(tuple(ty.shape))
    ty.backward(torch.tensor(g))
    got = _run(F.conv2d_relu, x, w, b, g, dict(padding=pad, dilation=dil))
    for mine, theirs in zip(got, [ty.detach(), tx.grad, tw.grad, tb.grad]):
        np.testing.assert_allclose(mine, theirs.numpy(), rtol=1e-10, atol=1e-10)


def test_linear_relu_matches_linear_then_relu():
    for dtype in (np.float32, np.float64):
        x = RNG.standard_normal((7, 5)).astype(dtype)
        w = RNG.standard_normal((3, 5)).astype(dtype)
        b = RNG.standard_normal(3).astype(dtype)
        g = RNG.standard_normal((7, 3)).astype(dtype)
        fused = _run(lambda a, c, d: F.linear_relu(a, c, d), x, w, b, g, {})
        plain = _run(lambda a, c, d: F.relu(F.linear(a, c, d)), x, w, b, g, {})
        for got, want in zip(fused, plain):
            np.testing.assert_allclose(got, want, rtol=1e-6)


def test_linear_relu_and_conv_relu_pass_gradcheck():
    x = sd.randn(3, 4, dtype=sd.float64, requires_grad=True)
    w = sd.randn(2, 4, dtype=sd.float64, requires_grad=True)
    b = sd.randn(2, dtype=sd.float64, requires_grad=True)
    assert sd.autograd.gradcheck(lambda *a: F.linear_relu(*a), (x, w, b))
    xc = sd.randn(2, 2, 5, 5, dtype=sd.float64, requires_grad=True)
    wc = sd.randn(3, 2, 3, 3, dtype=sd.float64, requires_grad=True)
    assert sd.autograd.gradcheck(lambda a, c: F.conv2d_relu(a, c, padding=1), (xc, wc))
