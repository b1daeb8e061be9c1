"""Tensor.unfold (a strided view with gradient) and F.unfold / F.fold (im2col / col2im)."""
import numpy as np
import pytest
from op_helper import check_op, has_oracle, torch

import shendu as sd
import shendu.nn.functional as F

T = torch
TF = T and T.nn.functional


def np_windows(a, dim, size, step):
    """Reference: NumPy's sliding windows along ``dim``, every ``step``-th kept."""
    w = np.lib.stride_tricks.sliding_window_view(a, size, axis=dim)
    return np.take(w, np.arange(0, w.shape[dim], step), axis=dim)


@pytest.mark.parametrize("shape,dim,size,step", [
    ((7,), 0, 3, 2), ((7,), 0, 2, 2), ((3, 8), 1, 3, 1), ((4, 3, 5), 0, 2, 3),
    ((2, 6, 3), -2, 4, 1), ((5,), 0, 5, 1), ((3, 4), 1, 1, 3)])
def test_tensor_unfold(shape, dim, size, step):
    x = np.random.default_rng(0).standard_normal(shape)
    check_op(lambda t: t.unfold(dim, size, step), [x],
             lambda a: np_windows(a, dim, size, step),
             T and (lambda t: t.unfold(dim, size, step)))


def test_unfold_is_a_view():
    base = sd.zeros(2, 6)
    w = base.unfold(1, 2, 2)  # windows side by side: every element seen once, writable
    v0 = base._version[0]
    w[1, 2, 0] = 7.0
    assert base[1, 4].item() == 7.0 and base._version[0] == v0 + 1
    base[0, 1] = 3.0
    assert w[0, 0, 1].item() == 3.0
    over = base.unfold(1, 3, 1)  # overlapping windows share memory: writes refused
    with pytest.raises(RuntimeError, match="cannot write"):
        over[0, 0, 0] = 1.0
    assert sd.tensor(3.0).unfold(0, 1, 1).shape == (1,)
    if has_oracle(T):
        assert tuple(T.tensor(3.0).unfold(0, 1, 1).shape) == (1,)


def test_unfold_errors():
    with pytest.raises(RuntimeError, match="unfold: window size 4 does not fit dimension 0"):
        sd.arange(3.0).unfold(0, 4, 1)
    with pytest.raises(RuntimeError, match="unfold: step must be positive"):
        sd.arange(3.0).unfold(0, 2, 0)
    with pytest.raises(IndexError):
        sd.arange(3.0).unfold(1, 1, 1)


def np_im2col(x, k, d, p, s):
    """Reference im2col by loops over output positions and kernel taps."""
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])))
    oh = (h + 2 * p[0] - d[0] * (k[0] - 1) - 1) // s[0] + 1
    ow = (w + 2 * p[1] - d[1] * (k[1] - 1) - 1) // s[1] + 1
    out = np.zeros((n, c, k[0], k[1], oh, ow))
    for y in range(oh):
        for z in range(ow):
            for i in range(k[0]):
                for j in range(k[1]):
                    out[:, :, i, j, y, z] = xp[:, :, y * s[0] + i * d[0], z * s[1] + j * d[1]]
    return out.reshape(n, c * k[0] * k[1], oh * ow)


def np_col2im(cols, hw, k, d, p, s):
    """Reference col2im: every column entry added at the pixel it came from."""
    n = cols.shape[0]
    c = cols.shape[1] // (k[0] * k[1])
    oh = (hw[0] + 2 * p[0] - d[0] * (k[0] - 1) - 1) // s[0] + 1
    ow = (hw[1] + 2 * p[1] - d[1] * (k[1] - 1) - 1) // s[1] + 1
    cols = cols.reshape(n, c, k[0], k[1], oh, ow)
    out = np.zeros((n, c, hw[0] + 2 * p[0], hw[1] + 2 * p[1]))
    for y in range(oh):
        for z in range(ow):
            for i in range(k[0]):
                for j in range(k[1]):
                    out[:, :, y * s[0] + i * d[0], z * s[1] + j * d[1]] += cols[:, :, i, j, y, z]
    return out[:, :, p[0]:p[0] + hw[0], p[1]:p[1] + hw[1]]


GEOMS = [((2, 2), (1, 1), (0, 0), (1, 1)), ((3, 2), (1, 2), (1, 0), (2, 1)),
         ((2, 2), (1, 1), (0, 0), (2, 2)), ((1, 3), (2, 1), (2, 1), (1, 2))]


@pytest.mark.parametrize("k,d,p,s", GEOMS)
def test_functional_unfold(k, d, p, s):
    x = np.random.default_rng(1).standard_normal((2, 3, 5, 6))
    kw = dict(kernel_size=k, dilation=d, padding=p, stride=s)
    check_op(lambda t: F.unfold(t, **kw), [x], lambda a: np_im2col(a, k, d, p, s),
             TF and (lambda t: TF.unfold(t, **kw)))


@pytest.mark.parametrize("k,d,p,s", GEOMS)
def test_functional_fold(k, d, p, s):
    hw = (5, 6)
    n_cols = np_im2col(np.zeros((1, 1) + hw), k, d, p, s).shape[2]
    cols = np.random.default_rng(2).standard_normal((2, 2 * k[0] * k[1], n_cols))
    kw = dict(kernel_size=k, dilation=d, padding=p, stride=s)
    check_op(lambda t: F.fold(t, hw, **kw), [cols], lambda a: np_col2im(a, hw, k, d, p, s),
             TF and (lambda t: TF.fold(t, hw, **kw)))


def test_fold_unfold_unbatched_modules_and_second_order():
    x = sd.randn(3, 4, 4, dtype=sd.float64, requires_grad=True)
    cols = F.unfold(x, 2, stride=2)
    assert cols.shape == (12, 4)
    np.testing.assert_array_equal(F.fold(cols, (4, 4), 2, stride=2).detach().numpy(),
                                  x.detach().numpy())
    assert sd.nn.Unfold(2, stride=2)(x.unsqueeze(0)).shape == (1, 12, 4)
    assert sd.nn.Fold((4, 4), 2, stride=2)(cols.unsqueeze(0)).shape == (1, 3, 4, 4)
    # a nonlinear function of unfold: its second derivative goes through fold and unfold
    f = lambda t: (F.unfold(t, 2) ** 3).sum()  # noqa: E731
    assert sd.autograd.gradgradcheck(f, [x])
    with pytest.raises(RuntimeError, match="fold: input of shape"):
        F.fold(sd.zeros(1, 4, 5), (4, 4), 2)
    with pytest.raises(RuntimeError, match="unfold: expected a 3-D"):
        F.unfold(sd.zeros(4, 4), 2)
