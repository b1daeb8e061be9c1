"""Reductions through check_op, plus dim/axis spellings and tie handling."""
import numpy as np
import pytest
from op_helper import check_op, torch

import shendu as sd

rng = np.random.default_rng(0)
T = torch


def r(*shape):
    return rng.standard_normal(shape)


def distinct(*shape):
    """Values without ties, so max/min have a unique answer."""
    n = int(np.prod(shape))
    return rng.permutation(n).reshape(shape).astype(np.float64) / n + rng.uniform(0, 1e-3, shape)


CASES = [
    ("sum_all", lambda x: x.sum(), lambda x: x.sum(), lambda x: x.sum(), (3, 4)),
    ("sum_dim", lambda x: x.sum(1), lambda x: x.sum(1), lambda x: x.sum(1), (3, 4)),
    ("sum_dims_keep", lambda x: x.sum((0, 2), keepdim=True),
     lambda x: x.sum((0, 2), keepdims=True), lambda x: x.sum((0, 2), keepdim=True), (2, 3, 4)),
    ("sum_neg_axis", lambda x: x.sum(axis=-1, keepdims=True),
     lambda x: x.sum(-1, keepdims=True), lambda x: x.sum(-1, keepdim=True), (2, 3)),
    ("sum_empty", lambda x: x.sum(0), lambda x: x.sum(0), lambda x: x.sum(0), (0, 3)),
    ("mean_all", lambda x: x.mean(), np.mean, lambda x: x.mean(), (3, 4)),
    ("mean_dim", lambda x: x.mean(0), lambda x: x.mean(0), lambda x: x.mean(0), (3, 4)),
    ("var", lambda x: x.var(), lambda x: x.var(ddof=1), lambda x: x.var(), (3, 4)),
    ("var_dim_biased", lambda x: x.var(1, unbiased=False, keepdim=True),
     lambda x: x.var(1, keepdims=True), lambda x: x.var(1, unbiased=False, keepdim=True),
     (3, 4)),
    ("var_correction", lambda x: x.var(0, correction=2), lambda x: x.var(0, ddof=2),
     lambda x: x.var(0, correction=2), (5, 2)),
    ("std", lambda x: x.std(0), lambda x: x.std(0, ddof=1), lambda x: x.std(0), (4, 3)),
    ("std_all_biased", lambda x: x.std(unbiased=False), np.std,
     lambda x: x.std(unbiased=False), (4, 3)),
    ("prod", lambda x: x.prod(1), lambda x: x.prod(1), lambda x: x.prod(1), (3, 4)),
    ("logsumexp", lambda x: sd.logsumexp(x, 1), lambda x: np.log(np.exp(x).sum(1)),
     T and (lambda x: T.logsumexp(x, 1)), (3, 4)),
    ("logsumexp_all", lambda x: x.logsumexp(dim=(0, 1)), lambda x: np.log(np.exp(x).sum()),
     T and (lambda x: T.logsumexp(x, (0, 1))), (3, 4)),
    ("norm", lambda x: x.norm(), np.linalg.norm, lambda x: x.norm(), (3, 4)),
    ("norm_dim", lambda x: x.norm(dim=1), lambda x: np.linalg.norm(x, axis=1),
     lambda x: x.norm(dim=1), (3, 4)),
    ("norm_p1", lambda x: x.norm(p=1), lambda x: np.abs(x).sum(), lambda x: x.norm(p=1), (3, 4)),
    ("norm_p3", lambda x: x.norm(p=3, dim=0), lambda x: (np.abs(x) ** 3).sum(0) ** (1 / 3),
     lambda x: x.norm(p=3, dim=0), (3, 4)),
    ("cumsum", lambda x: x.cumsum(1), lambda x: x.cumsum(1), lambda x: x.cumsum(1), (3, 4)),
    ("cumsum0", lambda x: x.cumsum(dim=0), lambda x: x.cumsum(0), lambda x: x.cumsum(0), (3, 4)),
]


@pytest.mark.parametrize("name,fn,np_fn,t_fn,shape", CASES, ids=[c[0] for c in CASES])
def test_reduction(name, fn, np_fn, t_fn, shape):
    check_op(fn, [r(*shape)], np_fn, t_fn)


MAXMIN = [
    ("max_all", lambda x: x.max(), np.max, lambda x: x.max()),
    ("min_all", lambda x: x.min(), np.min, lambda x: x.min()),
    ("amax_dims", lambda x: x.amax((0, 2)), lambda x: x.max((0, 2)), lambda x: x.amax((0, 2))),
    ("amin_keep", lambda x: x.amin(1, keepdim=True), lambda x: x.min(1, keepdims=True),
     lambda x: x.amin(1, keepdim=True)),
    ("max_dim", lambda x: x.max(1).values, lambda x: x.max(1), lambda x: x.max(1).values),
    ("min_dim_keep", lambda x: x.min(dim=2, keepdim=True)[0], lambda x: x.min(2, keepdims=True),
     lambda x: x.min(dim=2, keepdim=True)[0]),
]


@pytest.mark.parametrize("name,fn,np_fn,t_fn", MAXMIN, ids=[m[0] for m in MAXMIN])
def test_max_min(name, fn, np_fn, t_fn):
    check_op(fn, [distinct(2, 3, 4)], np_fn, t_fn)


def test_prod_with_zeros_gradient():
    for vals in ([2.0, 0.0, 3.0], [0.0, 0.0, 3.0], [1.5, 2.0, 3.0]):
        check_op(lambda x: x.prod(), [np.array(vals)], np.prod, lambda x: x.prod())


def test_max_indices_and_argmax():
    x = sd.tensor([[1.0, 5.0, 3.0], [7.0, 2.0, 0.0]])
    values, indices = x.max(dim=1)
    assert values.tolist() == [5.0, 7.0] and indices.tolist() == [1, 0]
    assert indices.dtype == sd.int64
    assert x.argmax().item() == 3 and x.argmin(dim=0).tolist() == [0, 1, 1]
    assert x.argmax(1, keepdim=True).shape == (2, 1)


def test_max_of_two_tensors_is_elementwise():
    a, b = sd.tensor([1.0, 4.0]), sd.tensor([3.0, 2.0])
    assert sd.max(a, b).tolist() == [3.0, 4.0]


def test_full_max_shares_gradient_among_ties():
    x = sd.tensor([3.0, 1.0, 3.0], requires_grad=True)
    x.max().backward()
    assert x.grad.tolist() == [0.5, 0.0, 0.5]


def test_dim_and_axis_spellings_agree():
    x = sd.tensor(r(3, 4))
    np.testing.assert_allclose(x.sum(dim=1, keepdim=True).numpy(),
                               x.sum(axis=1, keepdims=True).numpy())
    with pytest.raises(TypeError):
        x.sum(dim=1, axis=1)


def test_bad_dim_error_names_op():
    with pytest.raises(IndexError, match="sum: dimension 2 is out of range"):
        sd.ones(2, 3).sum(2)


def test_sum_of_bools_and_ints_is_int64():
    assert (sd.tensor([1.0, 2.0]) > 0).sum().item() == 2
    assert sd.tensor([1, 2], dtype=sd.int32).sum().dtype == sd.int64


def test_all_any_count_nonzero():
    x = sd.tensor([[0.0, 1.0], [2.0, 3.0]])
    assert not x.all().item() and x.any().item() and (x > -1).all().item()
    assert x.all(dim=1).tolist() == [False, True]
    assert sd.count_nonzero(x).item() == 3
