"""The fused convolution kernels (``backend/jit/conv.py``, stride 1 with wide patches,
``backend/jit/conv_taps.py``, stride 1 as one GEMM per tap, and
``backend/jit/conv_compact.py``, any stride, via ``backend/convolution.conv2d``) and the
Conv2d/Linear + ReLU fusions, against the plain NumPy paths and PyTorch."""
import numpy as np
import pytest
from tolerance import assert_matmul_close, assert_sums_close, matmul_scale, sum_bound

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


def _assert_same_sums(got, want, x, w, b, g, kw):
    """The fused and plain paths add the same products in other orders: compare each
    output and gradient within the reassociation bound of its sums. Each entry's sum of
    absolute terms is the same computation on |x|, |w|, |b|, |g| in float64 (an upper bound
    under a ReLU, which only drops terms)."""
    n, c, kh, kw_ = x.shape[0], x.shape[1], w.shape[2], w.shape[3]
    with jit.use(False):
        scales = _run(F.conv2d, *(None if a is None else np.abs(a).astype(np.float64)
                                  for a in (x, w, b, g)), kw)
    oh, ow = g.shape[2:]
    terms = [c * kh * kw_, w.shape[0] * kh * kw_, n * oh * ow, n * oh * ow]
    for k, (a, c_, scale, m) in enumerate(zip(got, want, scales, terms)):
        assert_sums_close(a, c_, m, scale, err_msg=f"array {k} (output, grad x, w, b)")


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


def _case_arrays(case, dtype, layout):
    """A ``CASES`` convolution's input, weight, bias, keyword arguments and output shape."""
    n, c, h, wd, o, k, pad, dil = case
    kh, kw = (k, k) if isinstance(k, int) else k
    x = RNG.standard_normal((n, c, h, wd)).astype(dtype)
    if layout == "channel_major":
        x = _channel_major(x)
    w = RNG.standard_normal((o, c, kh, kw)).astype(dtype)
    b = RNG.standard_normal(o).astype(dtype)
    kwargs = dict(padding=pad, dilation=dil)
    with sd.no_grad():
        shape = F.conv2d(sd.from_numpy(x), sd.from_numpy(w), None, **kwargs).shape
    return x, w, b, kwargs, shape


@pytest.mark.parametrize("case", CASES, ids=[str(c) for c in CASES])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("layout", ["nchw", "channel_major"])
def test_fused_conv_matches_plain_path(case, dtype, relu, layout):
    x, w, b, kwargs, shape = _case_arrays(case, dtype, layout)
    fn = F.conv2d_relu if relu else F.conv2d
    g = RNG.standard_normal(shape).astype(dtype)
    fused = _run(fn, x, w, b, g, kwargs)
    with jit.use(False):
        plain = _run(fn, x, w, b, g, kwargs)
    _assert_same_sums(fused, plain, x, w, b, g, kwargs)


@pytest.mark.parametrize("case", CASES, ids=[str(c) for c in CASES])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("layout", ["nchw", "channel_major"])
@pytest.mark.parametrize("rows", [1, 3])
def test_fused_conv_in_row_blocks_matches_plain_path(case, dtype, relu, layout, rows,
                                                     monkeypatch, kernel_spy):
    """Images whose patches exceed the cache budget go through the wide kernel ``rows``
    output rows at a time (the last block shorter where ``rows`` does not divide OH)."""
    from shendu.backend import convolution

    x, w, b, kwargs, shape = _case_arrays(case, dtype, layout)
    c, kh, kw, dil = w.shape[1], w.shape[2], w.shape[3], kwargs["dilation"]
    wp = shape[3] + (kw - 1) * dil
    monkeypatch.setattr(convolution, "FUSED_CONV_CHUNK_BYTES",
                        c * kh * kw * wp * x.itemsize * rows)
    assert convolution._conv_plan(x, w, shape[2:], (dil, dil))[:2] == (1, min(rows, shape[2]))
    g = RNG.standard_normal(shape).astype(dtype)
    calls = kernel_spy("conv2d_forward", "conv2d_backward")
    fused = _run(F.conv2d_relu if relu else F.conv2d, x, w, b, g, kwargs)
    assert calls == ["conv2d_forward", "conv2d_backward"]
    with jit.use(False):
        plain = _run(F.conv2d_relu if relu else F.conv2d, x, w, b, g, kwargs)
    _assert_same_sums(fused, plain, x, w, b, g, kwargs)


COMPACT_CASES = [  # (n, c, h, w, o, k, stride, padding, dilation): what the compact kernel takes
    (5, 3, 9, 7, 4, 3, 2, 1, 1),         # ResNet's 3x3 stride 2, odd sizes
    (4, 8, 8, 8, 6, 1, 2, 0, 1),         # the 1x1 stride-2 downsample
    (3, 4, 7, 9, 5, 3, 2, 2, 2),         # dilation, padding wider than the kernel reach
    (2, 2, 6, 6, 3, (3, 2), (2, 3), (1, 0), 1),  # rectangular kernel, strides, padding
    (3, 5, 5, 6, 4, 3, 3, 0, 1),         # stride 3, no padding
    (6, 128, 4, 4, 8, 3, 1, 1, 1),       # stride 1, long patches on a small map
    (40, 2, 5, 5, 3, 3, 2, 1, 1),        # 9 pixels an image: 40 images in a chunk
]


TAPS_CASES = [  # (n, c, h, w, o, k, stride, padding, dilation): what the taps kernel takes
    (3, 64, 10, 10, 5, 3, 1, 1, 1),      # ResNet's 3x3 'same' (waste 12/10)
    (2, 64, 7, 24, 4, 3, 1, 2, 2),       # dilation
    (3, 64, 6, 12, 4, (3, 2), 1, (1, 1), 1),  # rectangular kernel, taller output
    (2, 64, 6, 7, 3, 1, 1, 0, 1),        # 1x1 (no padding needed: kw - 1 = 0)
    (2, 64, 9, 13, 3, 3, 1, (1, 0), 1),  # padded rows only: rows, not columns, of zeros
    (2, 80, 5, 16, 6, 3, 1, (2, 1), 1),  # wider padding on top than the kernel reaches
]


def _check_kernel_against_plain_path(case, dtype, relu, layout, kernel_spy, names):
    n, c, h, wd, o, k, stride, pad, dil = case
    kh, kw = (k, k) if isinstance(k, int) else k
    x = RNG.standard_normal((n, c, h, wd)).astype(dtype)
    if layout == "channel_major":
        x = _channel_major(x)
    w = RNG.standard_normal((o, c, kh, kw)).astype(dtype)
    b = RNG.standard_normal(o).astype(dtype)
    fn = F.conv2d_relu if relu else F.conv2d
    kwargs = dict(stride=stride, padding=pad, dilation=dil)
    with sd.no_grad():
        shape = F.conv2d(sd.from_numpy(x), sd.from_numpy(w), None, **kwargs).shape
    g = RNG.standard_normal(shape).astype(dtype)
    calls = kernel_spy(*names)
    fused = _run(fn, x, w, b, g, kwargs)
    assert calls == list(names)
    with jit.use(False):
        plain = _run(fn, x, w, b, g, kwargs)
    _assert_same_sums(fused, plain, x, w, b, g, kwargs)


@pytest.mark.parametrize("case", TAPS_CASES, ids=[str(c) for c in TAPS_CASES])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("layout", ["nchw", "channel_major"])
def test_taps_conv_matches_plain_path(case, dtype, relu, layout, kernel_spy):
    _check_kernel_against_plain_path(case, dtype, relu, layout, kernel_spy,
                                     ("conv2d_forward_taps", "conv2d_backward_taps"))


def test_taps_conv_keeps_non_finite_inputs_in_their_own_channel():
    """The last tap's reads past a plane's end land in the next plane's padding: an inf
    in channel 1 must not reach channel 0's weight gradient (0 * inf would be NaN)."""
    x = np.zeros((1, 64, 4, 8), np.float32)
    x[0, 1, 0, :2] = np.inf
    tx, tw = sd.from_numpy(x), sd.from_numpy(np.ones((2, 64, 3, 3), np.float32))
    tw.requires_grad_(True)
    F.conv2d(tx, tw, padding=1).sum().backward()
    assert np.isfinite(tw.grad.numpy()[:, 0]).all()


@pytest.mark.parametrize("case", COMPACT_CASES, ids=[str(c) for c in COMPACT_CASES])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("layout", ["nchw", "channel_major"])
def test_compact_conv_matches_plain_path(case, dtype, relu, layout, kernel_spy):
    _check_kernel_against_plain_path(case, dtype, relu, layout, kernel_spy,
                                     ("conv2d_forward_compact", "conv2d_backward_compact"))


def test_compact_conv_with_many_chunks_per_thread(monkeypatch):
    from shendu.backend import convolution

    monkeypatch.setattr(convolution, "COMPACT_CONV_MIN_COLUMNS", 1)  # one image a chunk
    monkeypatch.setattr(convolution, "COMPACT_CONV_CHUNK_BYTES", 1)
    x = _channel_major(RNG.standard_normal((7, 3, 6, 5)).astype(np.float32))
    w, b = RNG.standard_normal((4, 3, 3, 3)).astype(np.float32), np.zeros(4, np.float32)
    kwargs = dict(stride=2, padding=1)
    g = RNG.standard_normal((7, 4, 3, 3)).astype(np.float32)
    fused = _run(F.conv2d, x, w, b, g, kwargs)
    with jit.use(False):
        plain = _run(F.conv2d, x, w, b, g, kwargs)
    _assert_same_sums(fused, plain, x, w, b, g, kwargs)


@pytest.mark.skipif(torch is None, reason="PyTorch not installed")
def test_compact_conv_matches_pytorch():
    x, w, b = RNG.standard_normal((3, 4, 9, 8)), RNG.standard_normal((5, 4, 3, 3)), \
        RNG.standard_normal(5)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = torch.nn.functional.conv2d(tx, tw, tb, stride=2, padding=1)
    g = RNG.standard_normal(tuple(ty.shape))
    ty.backward(torch.tensor(g))
    got = _run(F.conv2d, x, w, b, g, dict(stride=2, padding=1))
    for mine, theirs in zip(got, [ty.detach(), tx.grad, tw.grad, tb.grad]):
        np.testing.assert_allclose(mine, theirs.numpy(), rtol=1e-10, atol=1e-10)


def test_compact_conv_passes_gradcheck():
    x = sd.randn(2, 2, 5, 6, dtype=sd.float64, requires_grad=True)
    w = sd.randn(3, 2, 3, 3, dtype=sd.float64, requires_grad=True)
    b = sd.randn(3, dtype=sd.float64, requires_grad=True)
    assert sd.autograd.gradcheck(lambda *a: F.conv2d(*a, stride=2, padding=1), (x, w, b))


def test_fused_conv_without_bias_and_without_input_grad():
    x = RNG.standard_normal((9, 2, 10, 10)).astype(np.float32)
    w = RNG.standard_normal((3, 2, 3, 3)).astype(np.float32)
    tw = sd.from_numpy(w).requires_grad_(True)
    F.conv2d_relu(sd.from_numpy(x), tw, None, padding=1).sum().backward()
    got = tw.grad.numpy()
    tw.grad = None
    with jit.use(False):
        F.conv2d_relu(sd.from_numpy(x), tw, None, padding=1).sum().backward()
    # each weight gradient sums 9 * 10 * 10 products x * 1 (fewer under the ReLU)
    with jit.use(False):
        scale = _run(F.conv2d, np.abs(x).astype(np.float64), np.abs(w).astype(np.float64),
                     None, np.ones((9, 3, 10, 10)), dict(padding=1))[2]
    assert_sums_close(got, tw.grad.numpy(), 9 * 10 * 10, scale)


def test_fused_conv_handles_non_contiguous_inputs_and_weights():
    x = RNG.standard_normal((4, 6, 12, 12)).astype(np.float32)[:, ::2, 1:, ::-1]
    w = RNG.standard_normal((10, 3, 3, 3)).astype(np.float32)[::2]
    want = F.conv2d(sd.from_numpy(np.ascontiguousarray(x)),
                    sd.from_numpy(np.ascontiguousarray(w)), padding=1).numpy()
    got = F.conv2d(sd.from_numpy(x), sd.from_numpy(w), padding=1).numpy()
    scale = F.conv2d(sd.from_numpy(np.abs(x).astype(np.float64)),
                     sd.from_numpy(np.abs(w).astype(np.float64)), padding=1).numpy()
    assert_sums_close(got, want, 3 * 3 * 3, scale)


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
        scale = matmul_scale(x, w.T) + np.abs(b)
        pre = x.astype(np.float64) @ w.T.astype(np.float64) + b
        # every unit is further from 0 than rounding can move it: both paths mask alike
        assert (np.abs(pre) > sum_bound(5, scale, dtype)).all()
        mask = pre > 0
        exact = np.maximum(pre, 0)
        assert_sums_close(fused[0], exact, 5, scale)
        assert_sums_close(fused[0], plain[0], 5, scale)
        gm = g * mask
        assert_matmul_close(fused[1], gm, w, err_msg="grad x")
        assert_matmul_close(fused[2], gm.T, x, err_msg="grad w")
        assert_sums_close(fused[3], gm.sum(0), 7, np.abs(gm).sum(0), err_msg="grad b")


def test_linear_relu_and_conv_relu_pass_gradcheck():
    x = sd.randn(3, 4, dtype=sd.float64, requires_grad=True)
    w = sd.randn(2, 4, dtype=sd.float64, requires_grad=True)
    b = sd.randn(2, dtype=sd.float64, requires_grad=True)
    assert sd.autograd.gradcheck(lambda *a: F.linear_relu(*a), (x, w, b))
    xc = sd.randn(2, 2, 5, 5, dtype=sd.float64, requires_grad=True)
    wc = sd.randn(3, 2, 3, 3, dtype=sd.float64, requires_grad=True)
    assert sd.autograd.gradcheck(lambda a, c: F.conv2d_relu(a, c, padding=1), (xc, wc))
