"""Convolution and pooling against a direct NumPy loop, finite differences and PyTorch."""
import numpy as np
import pytest
from op_helper import check_op, torch

import shendu as sd
import shendu.nn.functional as F

rng = np.random.default_rng(0)
TF = torch and torch.nn.functional


def r(*shape):
    return rng.standard_normal(shape)


def conv2d_loop(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """Direct definition: out[n,o,i,j] = sum_{c,p,q} x_pad[n,c,i*s+p*d,j*s+q*d] w[o,c,p,q]."""
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    oh = (h + 2 * padding - dilation * (kh - 1) - 1) // stride + 1
    ow = (wd + 2 * padding - dilation * (kw - 1) - 1) // stride + 1
    out = np.zeros((n, o, oh, ow))
    og = o // groups
    for oc in range(o):
        g = oc // og
        for i in range(oh):
            for j in range(ow):
                rows = slice(i * stride, i * stride + dilation * (kh - 1) + 1, dilation)
                cols = slice(j * stride, j * stride + dilation * (kw - 1) + 1, dilation)
                patch = xp[:, g * cg:(g + 1) * cg, rows, cols]
                out[:, oc, i, j] = (patch * w[oc]).sum((1, 2, 3))
    if b is not None:
        out += b[None, :, None, None]
    return out


CONV = [dict(), dict(stride=2), dict(padding=1), dict(dilation=2, padding=2),
        dict(groups=2), dict(stride=2, padding=1, groups=2)]


@pytest.mark.parametrize("kw", CONV, ids=[str(k) for k in CONV])
def test_conv2d(kw):
    x, w, b = r(2, 4, 7, 6), r(4, 4 // kw.get("groups", 1), 3, 3), r(4)
    check_op(lambda x, w, b: F.conv2d(x, w, b, **kw), [x, w, b],
             lambda x, w, b: conv2d_loop(x, w, b, **kw),
             TF and (lambda x, w, b: TF.conv2d(x, w, b, **kw)))


@pytest.mark.filterwarnings("ignore:Using padding='same'")  # PyTorch's own notice
def test_conv2d_no_bias_rect_kernel_and_same_valid():
    check_op(lambda x, w: F.conv2d(x, w, padding=(2, 0), stride=(1, 2)), [r(1, 2, 5, 7),
                                                                         r(3, 2, 2, 3)],
             None, TF and (lambda x, w: TF.conv2d(x, w, padding=(2, 0), stride=(1, 2))))
    for pad in ("same", "valid"):
        check_op(lambda x, w, pad=pad: F.conv2d(x, w, padding=pad), [r(1, 2, 5, 5), r(3, 2, 4, 3)],
                 None, TF and (lambda x, w, pad=pad: TF.conv2d(x, w, padding=pad)))
    out = F.conv2d(sd.ones(1, 1, 6, 6), sd.ones(2, 1, 5, 5), padding="same")
    assert out.shape == (1, 2, 6, 6)


def test_conv1d_and_1x1():
    check_op(lambda x, w, b: F.conv1d(x, w, b, stride=2, padding=1), [r(2, 3, 9), r(4, 3, 3),
                                                                      r(4)],
             None, TF and (lambda x, w, b: TF.conv1d(x, w, b, stride=2, padding=1)))
    x, w = r(2, 3, 4, 4), r(5, 3, 1, 1)
    check_op(F.conv2d, [x, w], lambda x, w: np.einsum("nchw,oc->nohw", x, w[:, :, 0, 0]),
             TF and TF.conv2d)


@pytest.mark.parametrize("kw", [dict(), dict(stride=2), dict(stride=2, padding=1),
                                dict(stride=2, padding=1, output_padding=1),
                                dict(stride=3, dilation=2), dict(groups=2, stride=2)])
def test_conv_transpose2d(kw):
    g = kw.get("groups", 1)
    x, w, b = r(2, 4, 3, 4), r(4, 6 // g, 3, 3), r(6)
    check_op(lambda x, w, b: F.conv_transpose2d(x, w, b, **kw), [x, w, b], None,
             TF and (lambda x, w, b: TF.conv_transpose2d(x, w, b, **kw)))


def test_conv_transpose_is_the_adjoint_of_conv():
    x, y, w = r(2, 3, 6, 6), r(2, 4, 3, 3), r(4, 3, 3, 3)
    lhs = (F.conv2d(sd.tensor(x), sd.tensor(w), stride=2, padding=1).numpy() * y).sum()
    rhs = (F.conv_transpose2d(sd.tensor(y), sd.tensor(w), stride=2, padding=1,
                              output_padding=1).numpy() * x).sum()
    assert lhs == pytest.approx(rhs, rel=1e-10)


def test_conv_errors():
    with pytest.raises(ValueError, match=r"conv2d: input has 3 channels but weight expects 1 "
                                         r"\(weight shape \(6, 1, 5, 5\)"):
        F.conv2d(sd.ones(1, 3, 28, 28), sd.ones(6, 1, 5, 5))
    with pytest.raises(ValueError, match="too small"):
        F.conv2d(sd.ones(1, 1, 2, 2), sd.ones(1, 1, 3, 3))
    with pytest.raises(TypeError, match="dtype"):
        F.conv2d(sd.ones(1, 1, 4, 4, dtype=sd.float64), sd.ones(1, 1, 3, 3))


def test_conv_unbatched_input():
    x, w = sd.randn(3, 5, 5), sd.randn(2, 3, 3, 3)
    np.testing.assert_allclose(F.conv2d(x, w).numpy(), F.conv2d(x.unsqueeze(0), w)[0].numpy())


def distinct(*shape):
    n = int(np.prod(shape))
    return rng.permutation(n).reshape(shape).astype(np.float64) / n


POOL = [dict(kernel_size=2), dict(kernel_size=3, stride=2), dict(kernel_size=3, stride=1,
                                                                 padding=1),
        dict(kernel_size=2, stride=2, ceil_mode=True), dict(kernel_size=(2, 3), stride=(1, 2)),
        dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)]


@pytest.mark.parametrize("kw", POOL, ids=[str(k) for k in POOL])
def test_max_pool2d(kw):
    check_op(lambda x: F.max_pool2d(x, **kw), [distinct(2, 3, 7, 7)], None,
             TF and (lambda x: TF.max_pool2d(x, **kw)))


def test_max_pool_dilation_and_indices():
    check_op(lambda x: F.max_pool2d(x, 2, dilation=2), [distinct(1, 2, 6, 6)], None,
             TF and (lambda x: TF.max_pool2d(x, 2, dilation=2)))
    x = distinct(2, 3, 6, 7)
    for kw in (dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1)):
        _, idx = F.max_pool2d(sd.tensor(x), return_indices=True, **kw)
        if torch is not None:
            _, tidx = TF.max_pool2d(torch.from_numpy(x), return_indices=True, **kw)
            assert np.array_equal(idx.numpy(), tidx.numpy())


def test_max_pool_2x2_matches_reshape_definition():
    x = distinct(2, 3, 8, 6)
    ref = x.reshape(2, 3, 4, 2, 3, 2).max(axis=(3, 5))
    np.testing.assert_array_equal(F.max_pool2d(sd.tensor(x), 2).numpy(), ref)


@pytest.mark.parametrize("kw", POOL + [dict(kernel_size=3, padding=1, count_include_pad=False),
                                       dict(kernel_size=3, stride=2, padding=1, ceil_mode=True,
                                            count_include_pad=False),
                                       dict(kernel_size=2, divisor_override=3)])
def test_avg_pool2d(kw):
    check_op(lambda x: F.avg_pool2d(x, **kw), [r(2, 3, 7, 7)], None,
             TF and (lambda x: TF.avg_pool2d(x, **kw)))


@pytest.mark.parametrize("size", [1, (2, 3), (3, 3), 5, (None, 2)])
def test_adaptive_pools(size):
    check_op(lambda x: F.adaptive_avg_pool2d(x, size), [r(2, 3, 6, 7)], None,
             TF and (lambda x: TF.adaptive_avg_pool2d(x, size)))
    check_op(lambda x: F.adaptive_max_pool2d(x, size), [distinct(2, 3, 6, 7)], None,
             TF and (lambda x: TF.adaptive_max_pool2d(x, size)))


def test_pool_1d():
    check_op(lambda x: F.max_pool1d(x, 2), [distinct(2, 3, 8)], None,
             TF and (lambda x: TF.max_pool1d(x, 2)))
    check_op(lambda x: F.avg_pool1d(x, 3, 2, 1), [r(2, 3, 8)], None,
             TF and (lambda x: TF.avg_pool1d(x, 3, 2, 1)))
    check_op(lambda x: F.adaptive_avg_pool1d(x, 3), [r(2, 3, 7)], None,
             TF and (lambda x: TF.adaptive_avg_pool1d(x, 3)))
