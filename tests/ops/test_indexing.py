"""index_add/index_copy/index_fill (and the in-place scatter_/index_* family), diag,
diagonal, tril_/triu_, bincount, unique and meshgrid (issue 10)."""
import numpy as np
import pytest
from op_helper import Arg, check_op, has_oracle, on, torch

import shendu as sd

rng = np.random.default_rng(12)
T = torch


def r(*shape):
    return rng.uniform(-2, 2, shape)


def tidx(i):
    return T.from_numpy(np.asarray(i))


# ---------------------------------------------------------------------- index_* family
def _np_index_add(x, dim, idx, src, alpha=1.0):
    out = x.copy()
    np.add.at(np.moveaxis(out, dim, 0), idx, np.moveaxis(src, dim, 0) * alpha)
    return out


def _np_index_copy(x, dim, idx, src):
    out = x.copy()
    np.moveaxis(out, dim, 0)[idx] = np.moveaxis(src, dim, 0)
    return out


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_index_add(dim):
    x = r(4, 5)
    idx = np.array([0, 2, 0]) if x.shape[dim] == 4 else np.array([4, 1, 4])
    src_shape = list(x.shape)
    src_shape[dim] = 3
    check_op(lambda a, s, i: sd.index_add(a, dim, i, s, alpha=2.0),
             [x, r(*src_shape), Arg(idx)], lambda a, s, i: _np_index_add(a, dim, i, s, 2.0),
             T and (lambda a, s, i: T.index_add(a, dim, i, s, alpha=2.0)))


@pytest.mark.parametrize("dim", [0, 1])
def test_index_copy(dim):
    idx = np.array([3, 0])
    src_shape = [4, 4]
    src_shape[dim] = 2
    check_op(lambda a, s, i: sd.index_copy(a, dim, i, s), [r(4, 4), r(*src_shape), Arg(idx)],
             lambda a, s, i: _np_index_copy(a, dim, i, s),
             T and (lambda a, s, i: T.index_copy(a, dim, i, s)))


def test_index_fill():
    idx = np.array([0, 2])

    def np_fill(a, i, v=-1.5):
        out = a.copy()
        out[:, i] = v
        return out

    check_op(lambda a, i: sd.index_fill(a, 1, i, -1.5), [r(3, 4), Arg(idx)], np_fill,
             T and (lambda a, i: T.index_fill(a, 1, i, -1.5)))
    # a 0-d tensor value receives the gradient of the filled elements
    check_op(lambda a, v: sd.index_fill(a, 1, on(a, idx), v), [r(3, 4), r()],
             lambda a, v: np_fill(a, idx, v),
             T and (lambda a, v: T.index_fill(a, 1, tidx(idx), v)))


def test_in_place_index_and_scatter_methods():
    x = sd.zeros(3, 4)
    x.index_add_(0, sd.tensor([0, 0, 2]), sd.ones(3, 4))
    x.index_copy_(1, sd.tensor([3]), sd.full((3, 1), 7.0))
    x.index_fill_(0, sd.tensor([1]), -1.0)
    x.scatter_(1, sd.tensor([[0], [0], [0]]), 5.0)
    x.scatter_add_(1, sd.tensor([[1], [1], [1]]), sd.ones(3, 1))
    want = np.zeros((3, 4))
    want[0] += 2
    want[2] += 1
    want[:, 3] = 7
    want[1] = -1
    want[:, 0] = 5
    want[:, 1] += 1
    np.testing.assert_array_equal(x.numpy(), want)
    if has_oracle(T):
        tx = T.zeros(3, 4, dtype=T.float64)
        tx.index_add_(0, T.tensor([0, 0, 2]), T.ones(3, 4, dtype=T.float64))
        tx.index_copy_(1, T.tensor([3]), T.full((3, 1), 7.0, dtype=T.float64))
        tx.index_fill_(0, T.tensor([1]), -1.0)
        tx.scatter_(1, T.tensor([[0], [0], [0]]), 5.0)
        tx.scatter_add_(1, T.tensor([[1], [1], [1]]), T.ones(3, 1, dtype=T.float64))
        np.testing.assert_array_equal(x.numpy(), tx.numpy())


def test_in_place_index_add_records_gradients():
    a = sd.tensor(r(3, 2), requires_grad=True)
    s = sd.tensor(r(2, 2), requires_grad=True)
    y = a * 2
    y.index_add_(0, sd.tensor([1, 1]), s * 3)
    (y * y).sum().backward()
    if has_oracle(T):
        ta = T.tensor(a.detach().numpy(), requires_grad=True)
        ts = T.tensor(s.detach().numpy(), requires_grad=True)
        ty = ta * 2
        ty.index_add_(0, T.tensor([1, 1]), ts * 3)
        (ty * ty).sum().backward()
        np.testing.assert_allclose(a.grad.numpy(), ta.grad.numpy(), rtol=1e-6)
        np.testing.assert_allclose(s.grad.numpy(), ts.grad.numpy(), rtol=1e-6)
    else:  # pragma: no cover
        pytest.skip("PyTorch is not installed: the in-place gradient oracle is skipped")


def test_index_errors_name_the_op_and_shapes():
    with pytest.raises(ValueError, match=r"index_add: source of shape \(2, 3\)"):
        sd.index_add(sd.zeros(3, 4), 0, sd.tensor([0, 1]), sd.ones(2, 3))
    with pytest.raises(IndexError, match="index_copy: index values must be in"):
        sd.index_copy(sd.zeros(3), 0, sd.tensor([5]), sd.ones(1))
    with pytest.raises(TypeError, match="index_add: index must be an integer"):
        sd.index_add(sd.zeros(3), 0, sd.tensor([0.0]), sd.ones(1))


# ---------------------------------------------------------------------- diagonals
@pytest.mark.parametrize("offset", [0, 1, -2])
def test_diag(offset):
    check_op(lambda v: sd.diag(v, offset), [r(3)], lambda v: np.diag(v, offset),
             T and (lambda v: T.diag(v, offset)))
    check_op(lambda m: sd.diag(m, offset), [r(3, 4)], lambda m: np.diag(m, offset),
             T and (lambda m: T.diag(m, offset)))


@pytest.mark.parametrize("offset,d1,d2", [(0, 0, 1), (1, 1, 2), (-1, 2, 0), (0, -1, -2)])
def test_diagonal(offset, d1, d2):
    check_op(lambda x: x.diagonal(offset, d1, d2), [r(3, 4, 5)],
             lambda x: np.diagonal(x, offset, d1, d2),
             T and (lambda x: T.diagonal(x, offset, d1, d2)))


def test_diag_errors():
    with pytest.raises(ValueError, match=r"diag: expected a 1-D or 2-D tensor, got shape"):
        sd.diag(sd.zeros(2, 2, 2))
    with pytest.raises(ValueError, match="diagonal: dim1 and dim2 must differ"):
        sd.diagonal(sd.zeros(2, 2), 0, 1, 1)


def test_tril_triu_in_place():
    x = sd.tensor(r(3, 4))
    ref = x.numpy().copy()
    x.tril_(1)
    np.testing.assert_array_equal(x.numpy(), np.tril(ref, 1))
    x.triu_(-0)
    np.testing.assert_array_equal(x.numpy(), np.triu(np.tril(ref, 1)))


# ---------------------------------------------------------------------- counting
def test_bincount():
    x = np.array([0, 3, 3, 1, 7])
    w = np.linspace(0.5, 2.5, 5)
    out = sd.bincount(sd.tensor(x))
    assert out.dtype == sd.int64
    np.testing.assert_array_equal(out.numpy(), np.bincount(x))
    np.testing.assert_array_equal(sd.tensor(x).bincount(minlength=10).numpy(),
                                  np.bincount(x, minlength=10))
    wout = sd.bincount(sd.tensor(x), weights=sd.tensor(w, dtype=sd.float32))
    assert wout.dtype == sd.float32
    np.testing.assert_allclose(wout.numpy(), np.bincount(x, w), rtol=1e-6)
    assert sd.bincount(sd.tensor(x), weights=sd.tensor([1, 2, 3, 4, 5])).dtype == sd.float64
    if has_oracle(T):
        np.testing.assert_array_equal(out.numpy(), T.bincount(tidx(x)).numpy())
    with pytest.raises(ValueError, match="bincount: values must be non-negative"):
        sd.bincount(sd.tensor([-1, 2]))
    with pytest.raises(TypeError, match=r"bincount: expected a 1-D integer tensor"):
        sd.bincount(sd.tensor([1.0]))
    with pytest.raises(ValueError, match=r"bincount: expected a 1-D integer tensor"):
        sd.bincount(sd.tensor([[1]]))


def test_unique():
    x = np.array([[3, 1, 3], [2, 1, 5]])
    vals, inv, counts = sd.unique(sd.tensor(x), return_inverse=True, return_counts=True)
    rv, ri, rc = np.unique(x, return_inverse=True, return_counts=True)
    np.testing.assert_array_equal(vals.numpy(), rv)
    np.testing.assert_array_equal(inv.numpy(), ri.reshape(x.shape))
    np.testing.assert_array_equal(counts.numpy(), rc)
    assert sd.tensor(x).unique().tolist() == rv.tolist()
    if has_oracle(T):
        tv, ti, tc = T.unique(tidx(x), sorted=False, return_inverse=True, return_counts=True)
        for a, b in ((vals, tv), (inv, ti), (counts, tc)):
            np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_unique_dim():
    x = np.array([[1, 2], [0, 5], [1, 2], [0, 5], [0, 4]])
    for dim, arr in ((0, x), (1, x.T)):
        vals, inv, counts = sd.unique(sd.tensor(arr), dim=dim, return_inverse=True,
                                      return_counts=True)
        rv, ri, rc = np.unique(arr, axis=dim, return_inverse=True, return_counts=True)
        np.testing.assert_array_equal(vals.numpy(), rv)
        np.testing.assert_array_equal(inv.numpy(), ri.reshape(-1))
        np.testing.assert_array_equal(counts.numpy(), rc)
        if has_oracle(T):
            tv, ti, tc = T.unique(tidx(arr), dim=dim, return_inverse=True, return_counts=True)
            np.testing.assert_array_equal(vals.numpy(), tv.numpy())
            np.testing.assert_array_equal(inv.numpy(), ti.numpy())


def test_unique_consecutive():
    x = np.array([1, 1, 2, 2, 3, 1, 1, 2])
    vals, inv, counts = sd.unique_consecutive(sd.tensor(x), return_inverse=True,
                                              return_counts=True)
    assert vals.tolist() == [1, 2, 3, 1, 2] and counts.tolist() == [2, 2, 1, 2, 1]
    np.testing.assert_array_equal(vals.numpy()[inv.numpy()], x)  # the inverse rebuilds x
    m = np.array([[1, 1, 2], [3, 3, 4]])
    out = sd.unique_consecutive(sd.tensor(m), dim=1)
    np.testing.assert_array_equal(out.numpy(), [[1, 2], [3, 4]])
    if has_oracle(T):
        tv, ti, tc = T.unique_consecutive(tidx(x), return_inverse=True, return_counts=True)
        np.testing.assert_array_equal(inv.numpy(), ti.numpy())
        np.testing.assert_array_equal(
            out.numpy(), T.unique_consecutive(tidx(m), dim=1).numpy())


# ---------------------------------------------------------------------- meshgrid
@pytest.mark.parametrize("indexing", ["ij", "xy"])
def test_meshgrid(indexing):
    def fn(a, b, c):
        gx, gy, gz = sd.meshgrid(a, b, c, indexing=indexing)
        return gx * 1.0, gy * 2.0, gz * 3.0

    def np_fn(a, b, c):
        gx, gy, gz = np.meshgrid(a, b, c, indexing=indexing)
        return gx, gy * 2.0, gz * 3.0

    def t_fn(a, b, c):
        gx, gy, gz = T.meshgrid(a, b, c, indexing=indexing)
        return gx * 1.0, gy * 2.0, gz * 3.0

    check_op(fn, [r(2), r(3), r(4)], np_fn, T and t_fn)


def test_meshgrid_list_and_errors():
    a, b = sd.meshgrid([sd.arange(2), sd.arange(3)], indexing="xy")
    assert a.shape == b.shape == (3, 2)
    with pytest.raises(ValueError, match="meshgrid: indexing must be"):
        sd.meshgrid(sd.arange(2), indexing="yx")
    with pytest.raises(ValueError, match="meshgrid: expected 0-D or 1-D tensors"):
        sd.meshgrid(sd.zeros(2, 2))


@pytest.mark.parametrize("accumulate", [False, True])
def test_index_put(accumulate):
    rows, cols = np.array([0, 2, 0]), np.array([1, 3, 1])
    if not accumulate:
        rows, cols = rows[:2], cols[:2]

    def ref(a, v):
        out = a.copy()
        if accumulate:
            np.add.at(out, (rows, cols), v)
        else:
            out[rows, cols] = v
        return out

    check_op(lambda a, v: sd.index_put(a, (on(a, rows), on(a, cols)), v, accumulate),
             [r(3, 4), r(len(rows))], ref,
             T and (lambda a, v: T.index_put(a, (tidx(rows), tidx(cols)), v, accumulate)))
    x = sd.zeros(3, 4)
    x.index_put_((sd.tensor(rows), sd.tensor(cols)), sd.tensor(1.0), accumulate=accumulate)
    np.testing.assert_array_equal(x.numpy(), ref(np.zeros((3, 4)), 1.0))


def _np_scatter_reduce(a, dim, idx, src, reduce, include_self):
    """Element-by-element reference: gather each output's contributors, then reduce."""
    out = a.copy()
    contrib = {}
    for pos in np.ndindex(*idx.shape):
        target = list(pos)
        target[dim] = idx[pos]
        contrib.setdefault(tuple(target), []).append(src[pos])
    fn = {"sum": np.sum, "prod": np.prod, "mean": np.mean, "amax": np.max, "amin": np.min}
    for target, vals in contrib.items():
        vals = ([a[target]] if include_self else []) + vals
        out[target] = fn[reduce](vals)
    return out


@pytest.mark.parametrize("reduce", ["sum", "prod", "mean", "amax", "amin"])
@pytest.mark.parametrize("include_self", [True, False])
def test_scatter_reduce(reduce, include_self):
    idx = np.array([[0, 1, 0, 3], [2, 2, 2, 0]])
    # (src as large as index: PyTorch's backward refuses a larger src)
    src = rng.permutation(8).reshape(2, 4) / 3 - 2 + 0.1  # no ties: one gradient
    a = rng.permutation(8).reshape(2, 4) / 2 + 3.05

    def fn(x, s):
        return sd.scatter_reduce(x, 1, sd.tensor(idx), s, reduce, include_self=include_self)

    check_op(fn, [a, src], lambda x, s: _np_scatter_reduce(x, 1, idx, s, reduce, include_self),
             T and (lambda x, s: T.scatter_reduce(x, 1, tidx(idx), s, reduce,
                                                  include_self=include_self)))


@pytest.mark.parametrize("include_self", [True, False])
def test_scatter_reduce_prod_gradient_through_zeros(include_self):
    idx = np.array([0, 0, 0, 1, 1])
    src = np.array([2.0, 0.0, 3.0, 0.0, 0.0])
    check_op(lambda x, s: sd.scatter_reduce(x, 0, on(x, idx), s, "prod",
                                            include_self=include_self),
             [np.array([1.5, 2.0, -1.0]), src],
             lambda x, s: _np_scatter_reduce(x, 0, idx, s, "prod", include_self),
             T and (lambda x, s: T.scatter_reduce(x, 0, tidx(idx), s, "prod",
                                                  include_self=include_self)),
             check_noncontig=False)


def test_scatter_reduce_ties_and_errors():
    x = sd.tensor([1.0, 0.0], dtype=sd.float64, requires_grad=True)
    s = sd.tensor([1.0, 1.0, 0.5], dtype=sd.float64, requires_grad=True)
    sd.scatter_reduce(x, 0, sd.tensor([0, 0, 1]), s, "amax").sum().backward()
    if has_oracle(T):  # tied maxima share the gradient, as in PyTorch
        tx = T.tensor([1.0, 0.0], dtype=T.float64, requires_grad=True)
        ts = T.tensor([1.0, 1.0, 0.5], dtype=T.float64, requires_grad=True)
        T.scatter_reduce(tx, 0, T.tensor([0, 0, 1]), ts, "amax").sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy())
        np.testing.assert_allclose(s.grad.numpy(), ts.grad.numpy())
    np.testing.assert_allclose(x.grad.numpy(), [1 / 3, 0.0])
    with pytest.raises(ValueError, match="scatter_reduce: reduce must be one of"):
        sd.scatter_reduce(sd.zeros(2), 0, sd.tensor([0]), sd.ones(1), "max")
    with pytest.raises(IndexError, match=r"scatter_reduce: index values must be in \[0, 2\)"):
        sd.scatter_reduce(sd.zeros(2), 0, sd.tensor([2]), sd.ones(1), "sum")
    y = sd.zeros(3)
    y.scatter_reduce_(0, sd.tensor([1, 1]), sd.tensor([2.0, 3.0]), "mean", include_self=False)
    assert y.tolist() == [0.0, 2.5, 0.0]


def test_scatter_reduce_src_larger_than_index():
    idx = np.array([[0, 1, 0], [2, 2, 2]])
    src = rng.permutation(12).reshape(2, 6) / 3 - 2 + 0.1
    check_op(lambda x, s: sd.scatter_reduce(x, 1, on(x, idx), s, "mean"), [r(2, 4), src],
             lambda x, s: _np_scatter_reduce(x, 1, idx, s, "mean", True))
