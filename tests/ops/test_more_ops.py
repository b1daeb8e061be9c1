"""The smaller everyday names (issue 10): matrix composites (addmm, tensordot, kron, cross,
cdist, ...), shape helpers (diff, rot90, diag_embed, block_diag, cartesian_prod,
tril/triu_indices), NaN-aware and paired reductions, cummax/cummin, and searching/binning.
Against NumPy, finite differences and PyTorch."""
import numpy as np
import pytest
from op_helper import check_op, has_oracle, torch

import shendu as sd

rng = np.random.default_rng(14)
T = torch


def r(*shape):
    return rng.uniform(-2, 2, shape)


def t_(name):
    return None if T is None else getattr(T, name)


# ---------------------------------------------------------------------- matrix composites
MATRIX = [
    ("addmm", lambda c, a, b: sd.addmm(c, a, b, beta=0.5, alpha=2.0),
     lambda c, a, b: 0.5 * c + 2.0 * a @ b,
     T and (lambda c, a, b: T.addmm(c, a, b, beta=0.5, alpha=2.0)), [(3,), (2, 4), (4, 3)]),
    ("addmv", lambda c, a, b: sd.addmv(c, a, b), lambda c, a, b: c + a @ b,
     t_("addmv"), [(2,), (2, 4), (4,)]),
    ("baddbmm", lambda c, a, b: sd.baddbmm(c, a, b, alpha=-1.0),
     lambda c, a, b: c - a @ b, T and (lambda c, a, b: T.baddbmm(c, a, b, alpha=-1.0)),
     [(2, 3, 3), (2, 3, 4), (2, 4, 3)]),
    ("addbmm", lambda c, a, b: sd.addbmm(c, a, b), lambda c, a, b: c + (a @ b).sum(0),
     t_("addbmm"), [(3, 3), (2, 3, 4), (2, 4, 3)]),
    ("trace", lambda a: sd.trace(a), np.trace, t_("trace"), [(3, 4)]),
    ("inner", lambda a, b: sd.inner(a, b), np.inner, t_("inner"), [(2, 3), (4, 3)]),
    ("tensordot", lambda a, b: sd.tensordot(a, b, dims=([1, 0], [0, 2])),
     lambda a, b: np.tensordot(a, b, axes=([1, 0], [0, 2])),
     T and (lambda a, b: T.tensordot(a, b, dims=([1, 0], [0, 2]))), [(2, 3, 4), (3, 5, 2)]),
    ("tensordot_int", lambda a, b: sd.tensordot(a, b, 1), lambda a, b: np.tensordot(a, b, 1),
     T and (lambda a, b: T.tensordot(a, b, 1)), [(2, 3), (3, 4)]),
    ("kron", lambda a, b: sd.kron(a, b), np.kron, t_("kron"), [(2, 3), (3, 2)]),
    ("kron_nd", lambda a, b: sd.kron(a, b), np.kron, t_("kron"), [(2, 1, 2), (2, 3)]),
    ("cross", lambda a, b: sd.cross(a, b, dim=1), lambda a, b: np.cross(a, b, axis=1),
     T and (lambda a, b: T.cross(a, b, dim=1)), [(2, 3, 4), (2, 3, 4)]),
    ("cdist", lambda a, b: sd.cdist(a, b), lambda a, b: np.sqrt(
        ((a[:, None] - b[None]) ** 2).sum(-1)), t_("cdist"), [(3, 4), (5, 4)]),
    ("cdist_p1", lambda a, b: sd.cdist(a, b, p=1.0), lambda a, b: np.abs(
        a[:, None] - b[None]).sum(-1), T and (lambda a, b: T.cdist(a, b, p=1.0)),
     [(3, 4), (2, 4)]),
]


@pytest.mark.parametrize("name,fn,np_fn,t_fn,shapes", MATRIX, ids=[m[0] for m in MATRIX])
def test_matrix_composites(name, fn, np_fn, t_fn, shapes):
    check_op(fn, [r(*s) for s in shapes], np_fn, t_fn)


def test_matrix_composite_errors_and_methods():
    with pytest.raises(ValueError, match="tensordot: dimension 1 of the first tensor"):
        sd.tensordot(sd.ones(2, 3), sd.ones(4, 2), dims=([1], [0]))
    with pytest.raises(ValueError, match="cross: dimension 0 must have size 3"):
        sd.cross(sd.ones(2, 3), sd.ones(2, 3), dim=0)
    with pytest.raises(ValueError, match="cdist: expected"):
        sd.cdist(sd.ones(2, 3), sd.ones(2, 4))
    assert sd.eye(3).trace().item() == 3.0
    c = sd.zeros(2, 2)
    c.addmm_(sd.eye(2), sd.full((2, 2), 2.0))
    assert c.tolist() == [[2.0, 2.0], [2.0, 2.0]]


# ---------------------------------------------------------------------- shapes
@pytest.mark.parametrize("k", [-1, 0, 1, 2, 3, 5])
def test_rot90(k):
    check_op(lambda x: sd.rot90(x, k, (1, 2)), [r(2, 3, 4)],
             lambda x: np.rot90(x, k, (1, 2)), T and (lambda x: T.rot90(x, k, (1, 2))))


@pytest.mark.parametrize("n,dim", [(1, -1), (2, 0), (3, 1)])
def test_diff(n, dim):
    check_op(lambda x: sd.diff(x, n, dim), [r(4, 5)], lambda x: np.diff(x, n, dim),
             T and (lambda x: T.diff(x, n, dim)))


def test_diff_prepend_append_and_bool():
    check_op(lambda x, p: sd.diff(x, prepend=p), [r(3, 4), r(3, 2)],
             lambda x, p: np.diff(x, prepend=p), T and (lambda x, p: T.diff(x, prepend=p)))
    b = sd.tensor([True, True, False])
    assert sd.diff(b).tolist() == [False, True]


@pytest.mark.parametrize("offset,d1,d2", [(0, -2, -1), (1, 0, 2), (-1, 1, 0)])
def test_diag_embed(offset, d1, d2):
    def ref(x):
        n = x.shape[-1] + abs(offset)
        out = np.zeros(x.shape[:-1] + (n, n))
        i = np.arange(x.shape[-1])
        out[..., i + max(-offset, 0), i + max(offset, 0)] = x
        return np.moveaxis(out, (-2, -1), (d1, d2))

    check_op(lambda x: sd.diag_embed(x, offset, d1, d2), [r(2, 3)], ref,
             T and (lambda x: T.diag_embed(x, offset, d1, d2)))


def test_block_diag():
    def ref(a, b, c):
        out = np.zeros((2 + 1 + 1, 2 + 3 + 1))
        out[:2, :2] = a
        out[2, 2:5] = b
        out[3, 5] = c
        return out

    check_op(lambda a, b, c: sd.block_diag(a, b, c), [r(2, 2), r(3), r()], ref,
             t_("block_diag"))


def test_cartesian_prod_and_tri_indices():
    a, b = np.array([1, 2]), np.array([3, 4, 5])
    out = sd.cartesian_prod(sd.tensor(a), sd.tensor(b))
    np.testing.assert_array_equal(out.numpy(), [[x, y] for x in a for y in b])
    for row, col, off in ((3, 3, 0), (4, 3, -1), (3, 5, 2)):
        np.testing.assert_array_equal(sd.tril_indices(row, col, off).numpy(),
                                      np.stack(np.tril_indices(row, off, col)))
        np.testing.assert_array_equal(sd.triu_indices(row, col, off).numpy(),
                                      np.stack(np.triu_indices(row, off, col)))
        if has_oracle(T):
            np.testing.assert_array_equal(sd.tril_indices(row, col, off).numpy(),
                                          T.tril_indices(row, col, off).numpy())
            np.testing.assert_array_equal(sd.triu_indices(row, col, off).numpy(),
                                          T.triu_indices(row, col, off).numpy())
    if has_oracle(T):
        np.testing.assert_array_equal(
            out.numpy(), T.cartesian_prod(T.from_numpy(a), T.from_numpy(b)).numpy())


# ---------------------------------------------------------------------- reductions
def _with_nans(*shape):
    x = r(*shape)
    x[0, 1] = np.nan
    x[1, :] = np.nan
    return x


def test_nansum_nanmean():
    check_op(lambda x: sd.nansum(x, 1), [_with_nans(3, 4)], lambda x: np.nansum(x, 1),
             T and (lambda x: T.nansum(x, 1)), check_noncontig=False)
    x = _with_nans(3, 4)
    with np.errstate(invalid="ignore"), pytest.warns(RuntimeWarning):
        ref = np.nanmean(x, 1)
    np.testing.assert_allclose(sd.nanmean(sd.tensor(x), 1).numpy(), ref)
    check_op(lambda x: sd.nanmean(x, 0), [_with_nans(3, 4)[[0, 2]]],
             lambda x: np.nanmean(x, 0), T and (lambda x: T.nanmean(x, 0)),
             check_noncontig=False)


def test_var_mean_std_mean_aminmax():
    check_op(lambda x: sd.var_mean(x, 1), [r(3, 4)],
             lambda x: (np.var(x, 1, ddof=1), np.mean(x, 1)), T and (lambda x: T.var_mean(x, 1)))
    check_op(lambda x: sd.std_mean(x, 0, keepdim=True), [r(3, 4)],
             lambda x: (np.std(x, 0, ddof=1, keepdims=True), np.mean(x, 0, keepdims=True)),
             T and (lambda x: T.std_mean(x, 0, keepdim=True)))
    res = sd.aminmax(sd.tensor([[1.0, 5.0], [-2.0, 3.0]]), dim=1)
    assert res.min.tolist() == [1.0, -2.0] and res.max.tolist() == [5.0, 3.0]
    assert sd.tensor([3, 1, 2]).aminmax() == (sd.tensor(1), sd.tensor(3))


@pytest.mark.parametrize("name,np_acc", [("cummax", np.maximum), ("cummin", np.minimum)])
def test_cummax_cummin(name, np_acc):
    x = rng.permutation(20).reshape(4, 5).astype(np.float64)  # no ties: unique gradient
    check_op(lambda t: getattr(sd, name)(t, 1).values, [x],
             lambda t: np_acc.accumulate(t, axis=1),
             T and (lambda t: getattr(T, name)(t, 1).values))
    ties = np.array([[1.0, 3.0, 3.0, 2.0, 5.0, 5.0], [4.0, 4.0, 1.0, 1.0, 0.0, 0.0]])
    res = getattr(sd, name)(sd.tensor(ties), 1)
    np.testing.assert_array_equal(res.values.numpy(), np_acc.accumulate(ties, axis=1))
    if has_oracle(T):
        tres = getattr(T, name)(T.from_numpy(ties), 1)
        np.testing.assert_array_equal(res.indices.numpy(), tres.indices.numpy())


# ---------------------------------------------------------------------- searching
def test_searchsorted_and_bucketize():
    seq = np.array([1.0, 3.0, 3.0, 5.0, 7.0])
    vals = np.array([[0.0, 3.0], [6.0, 9.0]])
    for right in (False, True):
        out = sd.searchsorted(sd.tensor(seq), sd.tensor(vals), right=right)
        np.testing.assert_array_equal(
            out.numpy(), np.searchsorted(seq, vals, side="right" if right else "left"))
        b = sd.bucketize(sd.tensor(vals), sd.tensor(seq), right=right)
        if has_oracle(T):
            np.testing.assert_array_equal(out.numpy(), T.searchsorted(
                T.from_numpy(seq), T.from_numpy(vals), right=right).numpy())
            np.testing.assert_array_equal(b.numpy(), T.bucketize(
                T.from_numpy(vals), T.from_numpy(seq), right=right).numpy())
    rows = np.array([[1, 3, 5], [2, 4, 6]])
    q = np.array([[3, 6], [1, 4]])
    out = sd.searchsorted(sd.tensor(rows), sd.tensor(q), side="right", out_int32=True)
    assert out.dtype == sd.int32
    np.testing.assert_array_equal(out.numpy(), [np.searchsorted(rows[i], q[i], side="right")
                                                for i in range(2)])
    with pytest.raises(ValueError, match="searchsorted: a 2-D sorted_sequence"):
        sd.searchsorted(sd.tensor(rows), sd.tensor([1, 2]))


def test_isin_argwhere_histc():
    x = np.array([[1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(sd.isin(sd.tensor(x), sd.tensor([2, 6])).numpy(),
                                  np.isin(x, [2, 6]))
    np.testing.assert_array_equal(sd.tensor(x).isin(sd.tensor([2]), invert=True).numpy(),
                                  ~np.isin(x, [2]))
    np.testing.assert_array_equal(sd.argwhere(sd.tensor(x > 3)).numpy(), np.argwhere(x > 3))
    v = rng.uniform(-1, 3, 200)
    h = sd.histc(sd.tensor(v), bins=7, min=0, max=2)
    np.testing.assert_array_equal(h.numpy(), np.histogram(v, 7, (0, 2))[0])
    if has_oracle(T):
        np.testing.assert_array_equal(h.numpy(), T.histc(T.from_numpy(v), 7, 0, 2).numpy())
        np.testing.assert_array_equal(sd.histc(sd.tensor(v), bins=5).numpy(),
                                      T.histc(T.from_numpy(v), 5).numpy())
        np.testing.assert_array_equal(sd.argwhere(sd.tensor(x > 3)).numpy(),
                                      T.argwhere(T.from_numpy(x > 3)).numpy())




@pytest.mark.parametrize("shape,dim", [((5,), 0), ((3, 4), 1), ((3, 4), 0)])
def test_logcumsumexp(shape, dim):
    check_op(lambda x: sd.logcumsumexp(x, dim), [r(*shape)],
             lambda x: np.log(np.cumsum(np.exp(x), axis=dim)),
             T and (lambda x: T.logcumsumexp(x, dim)))


def test_logcumsumexp_extremes():
    x = np.array([-1000.0, 0.0, 1000.0, -np.inf, 999.0])
    g = np.array([1.0, -2.0, 3.0, 0.5, -1.0])
    xt = sd.tensor(x, requires_grad=True)
    y = xt.logcumsumexp(0)
    (y * sd.tensor(g)).sum().backward()
    assert np.isfinite(y.detach().numpy()).all() and np.isfinite(xt.grad.numpy()).all()
    if has_oracle(T):
        tx = T.tensor(x, requires_grad=True)
        ty = T.logcumsumexp(tx, 0)
        (ty * T.from_numpy(g)).sum().backward()
        np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), rtol=1e-12)
        np.testing.assert_allclose(xt.grad.numpy(), tx.grad.numpy(), rtol=1e-10, atol=1e-300)
