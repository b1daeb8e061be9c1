"""cumprod, median, nanmedian, quantile, nanquantile and mode (issue 10) against NumPy
references, finite differences and PyTorch."""
import numpy as np
import pytest
from op_helper import check_op, has_oracle, on, torch

import shendu as sd

rng = np.random.default_rng(11)
T = torch


def distinct(*shape):
    """Values without ties (order statistics have a unique gradient then)."""
    n = int(np.prod(shape))
    return rng.permutation(n).reshape(shape) / n * 4 - 2 + rng.uniform(0, 0.01, shape)


# ---------------------------------------------------------------------- cumprod
def _with_zeros(*shape):
    x = rng.uniform(0.5, 1.5, shape) * rng.choice([-1, 1], shape)
    x[..., 1] = 0.0  # one zero per row
    if shape[-1] > 4:
        x[0, ..., 3] = 0.0  # two zeros in the first row
    return x


@pytest.mark.parametrize("shape,dim", [((5,), 0), ((3, 4), 1), ((3, 4), 0), ((2, 3, 4), -2)])
def test_cumprod(shape, dim):
    check_op(lambda x: sd.cumprod(x, dim), [rng.uniform(0.5, 1.5, shape)],
             lambda x: np.cumprod(x, axis=dim), T and (lambda x: T.cumprod(x, dim)))


@pytest.mark.parametrize("shape", [(3, 6), (4, 3), (2, 2)])
def test_cumprod_gradient_with_zeros(shape):
    check_op(lambda x: x.cumprod(-1), [_with_zeros(*shape)], lambda x: np.cumprod(x, -1),
             T and (lambda x: T.cumprod(x, -1)), check_noncontig=False)


def test_cumprod_in_place_and_dtypes():
    assert sd.cumprod(sd.tensor([1, 2, 3], dtype=sd.int32), 0).dtype == sd.int64
    x = sd.tensor([1.0, 2.0, 3.0])
    x.cumprod_(0)
    assert x.tolist() == [1.0, 2.0, 6.0]
    with pytest.raises(TypeError, match="cumprod"):
        sd.cumprod(x)


# ---------------------------------------------------------------------- median
def _np_lower_median(x, axis):
    s = np.sort(x, axis=axis)
    k = (x.shape[axis] - 1) // 2
    return np.take(s, k, axis=axis)


@pytest.mark.parametrize("shape,dim", [((5,), 0), ((4, 6), 1), ((4, 6), 0), ((2, 3, 4), -1)])
def test_median_dim(shape, dim):
    check_op(lambda x: sd.median(x, dim).values, [distinct(*shape)],
             lambda x: _np_lower_median(x, dim), T and (lambda x: T.median(x, dim).values))
    x = distinct(*shape)
    res = sd.median(sd.tensor(x), dim, keepdim=True)
    np.testing.assert_array_equal(
        np.take_along_axis(x, res.indices.numpy(), axis=dim), res.values.numpy())
    if has_oracle(T):
        tres = T.median(T.from_numpy(x), dim, keepdim=True)
        np.testing.assert_array_equal(res.indices.numpy(), tres.indices.numpy())


def test_median_all_and_even_count():
    check_op(sd.median, [distinct(4, 6)], lambda x: np.sort(x.ravel())[11],
             T and T.median)
    assert sd.median(sd.tensor([1.0, 2.0, 3.0, 4.0])).item() == 2.0  # the lower middle


def test_median_nan_and_nanmedian():
    x = np.array([[1.0, np.nan, 3.0, 2.0], [4.0, 6.0, 5.0, 7.0], [np.nan] * 4])
    m = sd.median(sd.tensor(x), 1)
    n = sd.nanmedian(sd.tensor(x), 1)
    assert np.isnan(m.values.numpy()[[0, 2]]).all() and m.values.numpy()[1] == 5.0
    np.testing.assert_array_equal(n.values.numpy()[:2], [2.0, 5.0])
    assert np.isnan(n.values.numpy()[2])
    assert sd.nanmedian(sd.tensor(x[0])).item() == 2.0
    if has_oracle(T):
        tm, tn = T.median(T.from_numpy(x), 1), T.nanmedian(T.from_numpy(x), 1)
        np.testing.assert_array_equal(m.indices.numpy(), tm.indices.numpy())
        # (which NaN an all-NaN row reports is PyTorch's implementation detail)
        np.testing.assert_array_equal(n.indices.numpy()[:2], tn.indices.numpy()[:2])
        np.testing.assert_array_equal(n.values.numpy(), tn.values.numpy())


def test_median_errors():
    with pytest.raises(IndexError, match="median"):
        sd.median(sd.zeros(0))


# ---------------------------------------------------------------------- quantile
@pytest.mark.parametrize("interp", ["linear", "lower", "higher", "midpoint", "nearest"])
@pytest.mark.parametrize("dim,keepdim", [(None, False), (None, True), (1, False), (0, True),
                                         (-1, True)])
def test_quantile(interp, dim, keepdim):
    q = np.array([0.0, 0.3, 0.5, 0.95, 1.0])

    def ref(x):
        return np.quantile(x, q, axis=dim, keepdims=keepdim, method=interp)

    check_op(lambda x: sd.quantile(x, on(x, q), dim, keepdim, interpolation=interp),
             [distinct(4, 5)], ref,
             T and (lambda x: T.quantile(x, T.from_numpy(q), dim, keepdim,
                                         interpolation=interp)))


def test_quantile_scalar_q_and_method():
    x = distinct(3, 7)
    np.testing.assert_allclose(sd.tensor(x).quantile(0.25, dim=1).numpy(),
                               np.quantile(x, 0.25, axis=1))
    assert sd.quantile(sd.tensor(x), 0.5).shape == ()


def test_quantile_nan_and_nanquantile():
    x = np.array([[1.0, np.nan, 3.0, 2.0], [np.nan] * 4, [4.0, 6.0, 5.0, 7.0]])
    q = sd.quantile(sd.tensor(x), 0.5, dim=1).numpy()
    nq = sd.nanquantile(sd.tensor(x), 0.5, dim=1).numpy()
    np.testing.assert_array_equal(np.isnan(q), [True, True, False])
    with pytest.warns(RuntimeWarning, match="All-NaN slice"):
        ref = np.nanquantile(x, 0.5, axis=1)
    np.testing.assert_allclose(nq, ref)
    if has_oracle(T):
        np.testing.assert_allclose(nq, T.nanquantile(T.from_numpy(x), 0.5, dim=1).numpy())


def test_quantile_errors():
    with pytest.raises(ValueError, match=r"quantile: q values must be in \[0, 1\]"):
        sd.quantile(sd.ones(3), 1.5)
    with pytest.raises(ValueError, match="interpolation"):
        sd.quantile(sd.ones(3), 0.5, interpolation="cubic")
    with pytest.raises(TypeError, match="floating"):
        sd.quantile(sd.tensor([1, 2]), 0.5)


# ---------------------------------------------------------------------- mode
def _np_mode(x, axis):
    """Smallest most frequent value and its last index, slice by slice."""
    x = np.moveaxis(x, axis, -1)
    vals = np.empty(x.shape[:-1], x.dtype)
    idx = np.empty(x.shape[:-1], np.int64)
    for pos in np.ndindex(*x.shape[:-1]):
        row = x[pos]
        uniq, counts = np.unique(row, return_counts=True)
        v = uniq[np.argmax(counts)]
        vals[pos] = v
        idx[pos] = np.nonzero(row == v)[0][-1]
    return vals, idx


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_mode(dim):
    x = rng.integers(0, 4, (5, 6)).astype(np.float64)
    res = sd.mode(sd.tensor(x), dim)
    vals, idx = _np_mode(x, dim)
    np.testing.assert_array_equal(res.values.numpy(), vals)
    np.testing.assert_array_equal(res.indices.numpy(), idx)
    if has_oracle(T):
        tres = T.mode(T.from_numpy(x), dim)
        np.testing.assert_array_equal(res.values.numpy(), tres.values.numpy())
        np.testing.assert_array_equal(res.indices.numpy(), tres.indices.numpy())
    # the gradient goes to the reported element (finite differences cannot see it: any
    # perturbation of a repeated value changes which value is the mode)
    xt = sd.tensor(x, requires_grad=True)
    sd.mode(xt, dim).values.sum().backward()
    want = np.zeros_like(x)
    np.put_along_axis(want, np.expand_dims(idx, dim), 1.0, axis=dim)
    np.testing.assert_array_equal(xt.grad.numpy(), want)


def test_mode_keepdim_and_ints():
    res = sd.tensor([[1, 2, 2], [3, 3, 1]]).mode(1, keepdim=True)
    assert res.values.tolist() == [[2], [3]] and res.indices.tolist() == [[2], [1]]
