"""conv2d by FFT: the direct convolution's values (float64, 1e-9) and gradients, through
check_op (NumPy loop, finite differences, jvp, PyTorch), second order, and the setting."""
import numpy as np
import pytest
from op_helper import check_op, on, torch

import shendu as sd
import shendu.nn.functional as F
from shendu.ops.conv_fft import Conv2dFFT, fft_size

TF = torch and torch.nn.functional
rng = np.random.default_rng(0)


def conv_loop(x, w, b=None, padding=0):
    """out[n, o, i, j] = sum_{c, p, q} x_pad[n, c, i + p, j + q] w[o, c, p, q] (+ b[o])."""
    (pt, pb), (pl, pr) = padding if isinstance(padding[0], tuple) else \
        ((padding[0],) * 2, (padding[1],) * 2)
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    o, _, kh, kw = w.shape
    oh, ow = xp.shape[2] - kh + 1, xp.shape[3] - kw + 1
    out = np.zeros((x.shape[0], o, oh, ow))
    for i in range(oh):
        for j in range(ow):
            out[:, :, i, j] = np.einsum("nchw,ochw->no", xp[:, :, i:i + kh, j:j + kw], w)
    return out if b is None else out + b[None, :, None, None]


CASES = [  # x shape, w shape, padding
    ((2, 3, 7, 6), (4, 3, 3, 3), (1, 1)),
    ((1, 2, 9, 8), (3, 2, 5, 4), (2, 0)),
    ((2, 1, 6, 6), (2, 1, 6, 6), (0, 0)),  # the kernel covers the whole image
    ((3, 2, 5, 7), (1, 2, 1, 1), (0, 0)),  # 1x1
    ((1, 3, 11, 10), (2, 3, 7, 7), (3, 3)),  # a large kernel, 'same'
]


@pytest.mark.parametrize("xs,ws,pad", CASES)
@pytest.mark.parametrize("bias", [True, False])
def test_fft_conv_through_check_op(xs, ws, pad, bias):
    args = [rng.standard_normal(xs), rng.standard_normal(ws)] + \
        ([rng.standard_normal(ws[0])] if bias else [])
    check_op(lambda *a: F.conv2d(*a, padding=pad, algorithm="fft"), args,
             lambda x, w, *b: conv_loop(x, w, *b, padding=pad),
             TF and (lambda *a: TF.conv2d(*a, padding=pad)), atol=1e-9, rtol=1e-9)


@pytest.mark.parametrize("xs,ws,pad", CASES)
def test_fft_equals_direct_in_float64(xs, ws, pad):
    x, w = sd.tensor(rng.standard_normal(xs), requires_grad=True), \
        sd.tensor(rng.standard_normal(ws), requires_grad=True)
    b = sd.tensor(rng.standard_normal(ws[0]), requires_grad=True)
    direct = F.conv2d(x, w, b, padding=pad, algorithm="direct")
    fft = F.conv2d(x, w, b, padding=pad, algorithm="fft")
    assert isinstance(fft.grad_fn, Conv2dFFT) and not isinstance(direct.grad_fn, Conv2dFFT)
    np.testing.assert_allclose(fft.detach().numpy(), direct.detach().numpy(), rtol=1e-9,
                               atol=1e-9)
    g = sd.tensor(rng.standard_normal(direct.shape))
    for a, b_ in zip(sd.autograd.grad([fft], [x, w, b], [g]),
                     sd.autograd.grad([direct], [x, w, b], [g])):
        np.testing.assert_allclose(a.numpy(), b_.numpy(), rtol=1e-9, atol=1e-9)


def test_fft_conv_second_order():
    x = sd.tensor(rng.standard_normal((1, 2, 5, 5)), requires_grad=True)
    w = sd.tensor(rng.standard_normal((2, 2, 3, 3)), requires_grad=True)
    assert sd.autograd.gradgradcheck(lambda x, w: F.conv2d(x, w, padding=1, algorithm="fft"),
                                     (x, w))


def test_fft_conv_float32_keeps_its_dtype():
    x = sd.randn(2, 3, 8, 8)
    w = sd.randn(4, 3, 5, 5)
    y = F.conv2d(x, w, padding=2, algorithm="fft")
    assert y.dtype == sd.float32
    ref = F.conv2d(x, w, padding=2)
    # both sum 75 products of unit-size terms: a few float32 ulps of sqrt(75) each way
    np.testing.assert_allclose(y.numpy(), ref.numpy(), atol=64 * np.finfo(np.float32).eps
                               * np.sqrt(75) * 4)


def test_the_backend_setting_and_errors(monkeypatch):
    x, w = sd.randn(1, 2, 6, 6), sd.randn(3, 2, 3, 3)
    conv = sd.nn.Conv2d(2, 3, 3, padding=1)
    monkeypatch.setattr(sd.backends.conv, "algorithm", "fft")
    assert isinstance(F.conv2d(x.requires_grad_(), w).grad_fn, Conv2dFFT)
    assert isinstance(conv(x).grad_fn, Conv2dFFT)  # layers follow the setting
    strided = F.conv2d(x, w, stride=2)  # FFT cannot: it stays direct
    assert not isinstance(strided.grad_fn, Conv2dFFT)
    with pytest.raises(ValueError, match="algorithm='fft' needs stride 1, dilation 1 and "
                                         "groups 1, got stride \\(2, 2\\)"):
        F.conv2d(x, w, stride=2, algorithm="fft")
    with pytest.raises(ValueError, match="conv2d: algorithm must be one of"):
        F.conv2d(x, w, algorithm="winograd")
    monkeypatch.setattr(sd.backends.conv, "algorithm", "fast")
    with pytest.raises(ValueError, match="sd.backends.conv.algorithm must be one of"):
        F.conv2d(x, w)


def test_fft_sizes_are_5_smooth():
    assert [fft_size(n) for n in (1, 7, 11, 13, 17, 31, 97)] == [1, 8, 12, 15, 18, 32, 100]


def test_fft_conv_on_the_targets_device():
    x = sd.tensor(rng.standard_normal((1, 2, 6, 6)))
    y = F.conv2d(x, on(x, rng.standard_normal((2, 2, 3, 3))), algorithm="fft")
    assert y.device == x.device
