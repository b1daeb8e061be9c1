"""Winograd's F(2x2, 3x3) (``backend/jit/conv_winograd.py``): which convolutions take it,
and that it computes the convolution and its input gradient, checked against a direct sum
in float64 with a bound derived from the transforms' arithmetic."""
import os
import subprocess
import sys

import numpy as np
import pytest
from tolerance import sum_bound

import shendu as sd
from shendu.backend import blas, convolution, jit, runtime
from shendu.ops.conv import Conv2d

# the transforms' matrices (Lavin and Gray, 2016)
BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float64)
G = np.array([[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]], np.float64)
AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.float64)


def _needs_kernels():
    if not (jit.enabled() and blas.mkl_loaded()):
        pytest.skip("the Winograd kernel needs numba and MKL, both on")


def _direct(x, w, bias, pad):
    """The convolution by definition, in float64: a sum over the nine taps."""
    (pt, pb), (pl, pr) = pad
    x = np.pad(np.asarray(x, np.float64), ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    oh, ow = x.shape[2] - 2, x.shape[3] - 2
    out = np.zeros((x.shape[0], w.shape[0], oh, ow))
    for i in range(3):
        for j in range(3):
            out += np.einsum("nchw,oc->nohw", x[:, :, i:i + oh, j:j + ow], w[:, :, i, j])
    return out + (0 if bias is None else np.asarray(bias, np.float64)[:, None, None])


def _winograd_scale(x, w, bias, pad):
    """Per output, the sum of the absolute values of every term F(2x2, 3x3) adds:
    |A^T| (sum over channels of (|G| |g| |G^T|) * (|B^T| |d| |B|)) |A|, plus |bias|."""
    (pt, pb), (pl, pr) = pad
    n, c, h, wd = x.shape
    oh, ow = h + pt + pb - 2, wd + pl + pr - 2
    th, tw = -(-oh // 2), -(-ow // 2)
    xp = np.zeros((n, c, 2 * th + 2, 2 * tw + 2))
    xp[:, :, pt:pt + h, pl:pl + wd] = np.abs(x)
    tiles = np.stack([np.stack([xp[:, :, 2 * a:2 * a + 4, 2 * b:2 * b + 4] for b in range(tw)],
                               axis=2) for a in range(th)], axis=2)  # (n, c, th, tw, 4, 4)
    v = np.einsum("ij,ncabjk,lk->ncabil", np.abs(BT), tiles, np.abs(BT))
    u = np.einsum("ij,ocjk,lk->ocil", np.abs(G), np.abs(np.asarray(w, np.float64)), np.abs(G))
    m = np.einsum("ocil,ncabil->noabil", u, v)
    y = np.einsum("ij,noabjk,lk->noaibl", np.abs(AT), m, np.abs(AT))
    y = y.reshape(n, w.shape[0], 2 * th, 2 * tw)[:, :, :oh, :ow]
    return y + (0 if bias is None else np.abs(np.asarray(bias, np.float64))[:, None, None])


def _check(got, x, w, bias, pad, relu=False):
    """``got`` is the convolution up to F(2x2, 3x3)'s rounding: a GEMM summing C terms
    between transforms that add at most 4 (input), 6 (filter) and 4 (output) more."""
    want = _direct(x, w, bias, pad)
    if relu:
        want = np.maximum(want, 0)
    bound = sum_bound(w.shape[1] + 14, _winograd_scale(x, w, bias, pad), got.dtype)
    err = np.abs(got.astype(np.float64) - want)
    assert (err <= bound).all(), f"max error {err.max():.3g} over bound {bound.max():.3g}"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n,c,o,h,w,pad", [(3, 64, 64, 8, 8, 1),      # ResNet's shapes
                                            (2, 96, 80, 7, 5, 1),      # odd sizes
                                            (2, 64, 72, 9, 6, 0),      # no padding
                                            (1, 64, 64, 5, 6, 2),      # wide padding
                                            (5, 128, 64, 4, 4, 1)])    # many images
def test_winograd_equals_the_direct_sum(dtype, n, c, o, h, w, pad):
    _needs_kernels()
    rng = np.random.default_rng(0)
    x = sd.tensor(rng.standard_normal((n, c, h, w)).astype(dtype))
    wt = sd.tensor((rng.standard_normal((o, c, 3, 3)) / np.sqrt(9 * c)).astype(dtype))
    b = sd.tensor(rng.standard_normal(o).astype(dtype))
    with runtime.trace_paths() as log:
        y = sd.nn.functional.conv2d(x, wt, b, padding=pad)
    assert ("conv2d", "winograd") in log
    _check(y.numpy(), x.numpy(), wt.numpy(), b.numpy(), ((pad, pad), (pad, pad)))


def test_winograd_with_fused_relu_channel_major_input_and_asymmetric_padding():
    """The input a previous convolution left channel-major (its storage (C, N, H, W)),
    the ReLU applied as the output is written, padding (top 0, bottom 2, left 1, right 0)."""
    _needs_kernels()
    rng = np.random.default_rng(1)
    x0 = sd.tensor(rng.standard_normal((3, 8, 6, 7), dtype=np.float32))
    w0 = sd.tensor(rng.standard_normal((64, 8, 1, 1), dtype=np.float32))
    x = sd.nn.functional.conv2d(x0, w0)
    assert x.numpy().transpose(1, 0, 2, 3).flags.c_contiguous  # channel-major storage
    w = sd.tensor(rng.standard_normal((64, 64, 3, 3), dtype=np.float32) / 24)
    b = sd.tensor(rng.standard_normal(64, dtype=np.float32))
    pads = ((0, 2), (1, 0))
    with runtime.trace_paths() as log:
        y = Conv2d.apply(x, w, b, stride=(1, 1), pads=pads, dilation=(1, 1), groups=1,
                         relu=True)
    assert ("conv2d", "winograd") in log
    assert (y.numpy() >= 0).all() and (y.numpy() == 0).any()
    _check(y.numpy(), x.numpy(), w.numpy(), b.numpy(), pads, relu=True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("pads", [((1, 1), (1, 1)), ((0, 0), (0, 0)), ((2, 2), (2, 2)),
                                  ((0, 2), (1, 0))])
def test_input_gradient_by_winograd_weight_gradient_by_the_direct_kernel(kernel_spy, dtype,
                                                                          pads):
    """dX is the convolution of the output gradient, padded by 2 - p, with the filters
    turned 180 degrees and their channels swapped: checked against that sum in float64
    with the same bound as the forward. dW comes from the direct kernel the forward would
    have run: equal to the NumPy path's."""
    _needs_kernels()
    rng = np.random.default_rng(2)
    x = sd.tensor(rng.standard_normal((2, 72, 6, 7)).astype(dtype), requires_grad=True)
    w = sd.tensor((rng.standard_normal((64, 72, 3, 3)) / 24).astype(dtype), requires_grad=True)
    y = Conv2d.apply(x, w, stride=(1, 1), pads=pads, dilation=(1, 1), groups=1)
    g = rng.standard_normal(y.shape).astype(dtype)
    calls = kernel_spy("conv2d_forward_winograd", "conv2d_backward_compact",
                       "conv2d_backward_taps", "conv2d_backward")
    with runtime.trace_paths() as log:
        (y * sd.tensor(g)).sum().backward()
    assert ("conv2d_backward", "winograd") in log
    kind = convolution._direct_kernel(g.transpose(1, 0, 2, 3), w.detach().numpy(), (1, 1), 1,
                                      (1, 1), g.shape[3], pads)
    assert calls == ["conv2d_forward_winograd",
                     "conv2d_backward" + ("" if kind == "wide" else "_" + kind)]
    turned = w.detach().numpy().transpose(1, 0, 2, 3)[:, :, ::-1, ::-1]
    _check(x.grad.numpy(), g, turned, None, tuple((2 - a, 2 - b) for a, b in pads))
    with runtime.use(kernels=False):
        x2, w2 = (sd.tensor(np.asarray(t.detach().numpy(), np.float64), requires_grad=True)
                  for t in (x, w))
        y2 = Conv2d.apply(x2, w2, stride=(1, 1), pads=pads, dilation=(1, 1), groups=1)
        (y2 * sd.tensor(g.astype(np.float64))).sum().backward()
    # dW: the direct kernel's sum of N*OH*OW products per weight, against float64
    scale = np.abs(g).sum(axis=(0, 2, 3))[:, None, None, None] * np.abs(x.detach().numpy()).max()
    bound = sum_bound(g.shape[0] * g.shape[2] * g.shape[3], scale, dtype)
    assert (np.abs(w.grad.numpy() - w2.grad.numpy()) <= bound).all()


def test_input_gradient_through_a_fused_relu_and_with_frozen_weights():
    """The fused ReLU's zeros mask the output gradient before the turned convolution; with
    the weights frozen only dX is formed (no weight-gradient pass)."""
    _needs_kernels()
    rng = np.random.default_rng(6)
    x = sd.tensor(rng.standard_normal((3, 64, 5, 6)), requires_grad=True)
    w = sd.tensor(rng.standard_normal((64, 64, 3, 3)) / 24)
    b = sd.tensor(rng.standard_normal(64))
    pads = ((1, 1), (1, 1))
    y = Conv2d.apply(x, w, b, stride=(1, 1), pads=pads, dilation=(1, 1), groups=1, relu=True)
    g = rng.standard_normal(y.shape)
    with runtime.trace_paths() as log:
        (y * sd.tensor(g)).sum().backward()
    assert ("conv2d_backward", "winograd") in log and ("conv2d_backward", "numba") not in log
    masked = np.where(y.detach().numpy() > 0, g, 0)
    assert (masked == 0).any() and (masked != 0).any()
    turned = w.numpy().transpose(1, 0, 2, 3)[:, :, ::-1, ::-1]
    _check(x.grad.numpy(), masked, turned, None, ((1, 1), (1, 1)))


def test_weight_and_bias_gradients_through_a_fused_relu():
    """The mask applied once, before both gradients: dW and the bias gradient equal the
    NumPy path's (float64), dX is by Winograd."""
    _needs_kernels()
    rng = np.random.default_rng(9)
    x = sd.tensor(rng.standard_normal((2, 64, 5, 6)), requires_grad=True)
    w = sd.tensor(rng.standard_normal((64, 64, 3, 3)) / 24, requires_grad=True)
    b = sd.tensor(rng.standard_normal(64), requires_grad=True)
    g = rng.standard_normal((2, 64, 5, 6))
    pads = ((1, 1), (1, 1))

    def grads():
        y = Conv2d.apply(x, w, b, stride=(1, 1), pads=pads, dilation=(1, 1), groups=1,
                         relu=True)
        (y * sd.tensor(g)).sum().backward()
        out = [t.grad.numpy().copy() for t in (x, w, b)]
        for t in (x, w, b):
            t.grad = None
        return out

    with runtime.trace_paths() as log:
        fast = grads()
    assert ("conv2d_backward", "winograd") in log
    with runtime.use(kernels=False):
        ref = grads()
    for got, want in zip(fast, ref):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def test_wide_padding_takes_the_direct_kernel_for_the_input_gradient():
    """Padding 3 would need the output gradient padded by -1: dX stays direct."""
    _needs_kernels()
    rng = np.random.default_rng(7)
    x = sd.tensor(rng.standard_normal((2, 64, 4, 4)), requires_grad=True)
    w = sd.tensor(rng.standard_normal((64, 64, 3, 3)) / 24, requires_grad=True)
    y = sd.nn.functional.conv2d(x, w, padding=3)
    with runtime.trace_paths() as log:
        y.sum().backward()
    assert ("conv2d_backward", "winograd") not in log
    with runtime.use(kernels=False):
        x2 = sd.tensor(x.detach().numpy(), requires_grad=True)
        sd.nn.functional.conv2d(x2, w.detach(), padding=3).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), x2.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_input_gradient_follows_the_switch_at_backward_time():
    """Winograd turned off between the forward and the backward: dX by the direct kernel."""
    _needs_kernels()
    rng = np.random.default_rng(8)
    x = sd.tensor(rng.standard_normal((2, 64, 6, 6)), requires_grad=True)
    w = sd.tensor(rng.standard_normal((64, 64, 3, 3)) / 24)
    y = sd.nn.functional.conv2d(x, w, padding=1)
    with runtime.use(winograd=False), runtime.trace_paths() as log:
        y.sum().backward()
    assert ("conv2d_backward", "numba") in log and ("conv2d_backward", "winograd") not in log
    with runtime.use(kernels=False):
        x2 = sd.tensor(x.detach().numpy(), requires_grad=True)
        sd.nn.functional.conv2d(x2, w, padding=1).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), x2.grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("o,c,stride,dilation", [(63, 64, 1, 1),   # too few output channels
                                                 (64, 32, 1, 1),   # too few input channels
                                                 (64, 64, 2, 1),   # strided
                                                 (64, 64, 1, 2)])  # dilated
def test_other_convolutions_stay_on_the_direct_kernels(o, c, stride, dilation):
    _needs_kernels()
    rng = np.random.default_rng(3)
    x = sd.tensor(rng.standard_normal((2, c, 8, 8), dtype=np.float32))
    w = sd.tensor(rng.standard_normal((o, c, 3, 3), dtype=np.float32))
    with runtime.trace_paths() as log:
        sd.nn.functional.conv2d(x, w, stride=stride, padding=1, dilation=dilation)
    assert ("conv2d", "numba") in log and ("conv2d", "winograd") not in log


def test_winograd_can_be_turned_off():
    _needs_kernels()
    rng = np.random.default_rng(4)
    x = sd.tensor(rng.standard_normal((2, 64, 8, 8), dtype=np.float32))
    w = sd.tensor(rng.standard_normal((64, 64, 3, 3), dtype=np.float32))
    before = sd.backend.set_winograd(False)
    try:
        assert sd.backend.info()["winograd"].startswith("off")
        with runtime.trace_paths() as log:
            sd.nn.functional.conv2d(x, w, padding=1)
        assert ("conv2d", "numba") in log and ("conv2d", "winograd") not in log
    finally:
        sd.backend.set_winograd(before)
    assert sd.backend.info()["winograd"].startswith("on")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SHENDU_")}
    out = subprocess.run([sys.executable, "-c", "import shendu as sd; "
                          "print(sd.backend.info()['winograd'])"],
                         env={**clean, "SHENDU_WINOGRAD": "0"}, capture_output=True,
                         text=True, check=True, timeout=300).stdout
    assert out.startswith("off")


@pytest.mark.parametrize("turned", [False, True])
def test_filter_transform_is_g_g_gt(turned):
    """(16, C, O) G g G^T of each filter; turned, (16, O, C) of each filter turned 180
    degrees (the input gradient's products)."""
    _needs_kernels()
    rng = np.random.default_rng(5)
    w = rng.standard_normal((20, 17, 3, 3))
    g = w[:, :, ::-1, ::-1] if turned else w
    spec = "ij,ocjk,lk->iloc" if turned else "ij,ocjk,lk->ilco"
    shape = (16, 20, 17) if turned else (16, 17, 20)
    u = np.empty(shape)
    jit.winograd_filter(w, turned, u)
    want = np.einsum(spec, G, g, G).reshape(shape)
    scale = np.einsum(spec, np.abs(G), np.abs(g), np.abs(G)).reshape(shape)
    assert (np.abs(u - want) <= sum_bound(6, scale, np.float64)).all()
