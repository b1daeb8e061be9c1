"""Elementwise ops: every one through check_op (NumPy, finite differences, jvp, PyTorch)."""
import math

import numpy as np
import pytest
from op_helper import check_op, on, torch

import shendu as sd
import shendu.nn.functional as F

rng = np.random.default_rng(0)


def r(*shape, lo=-2.0, hi=2.0):
    return rng.uniform(lo, hi, shape)


def pos(*shape):
    return rng.uniform(0.5, 2.0, shape)


def away_from_zero(*shape):
    a = rng.uniform(0.3, 2.0, shape)
    return a * rng.choice([-1, 1], shape)


T = torch
BINARY_SHAPES = [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 4), (3, 1)), ((1,), (2, 3)),
                 ((), (2, 2)), ((0, 3), (3,)), ((2, 3), (1, 1))]

BINARY = [
    ("add", lambda a, b: a + b, lambda a, b: a + b, lambda a, b: a + b, r, r),
    ("sub", lambda a, b: a - b, lambda a, b: a - b, lambda a, b: a - b, r, r),
    ("mul", lambda a, b: a * b, lambda a, b: a * b, lambda a, b: a * b, r, r),
    ("div", lambda a, b: a / b, lambda a, b: a / b, lambda a, b: a / b, r, away_from_zero),
    ("pow", lambda a, b: a ** b, lambda a, b: a ** b, lambda a, b: a ** b, pos, r),
    ("maximum", sd.maximum, np.maximum, lambda a, b: T.maximum(a, b), r, r),
    ("minimum", sd.minimum, np.minimum, lambda a, b: T.minimum(a, b), r, r),
]


@pytest.mark.parametrize("name,fn,np_fn,t_fn,ga,gb", BINARY, ids=[b[0] for b in BINARY])
@pytest.mark.parametrize("sa,sb", BINARY_SHAPES)
def test_binary(name, fn, np_fn, t_fn, ga, gb, sa, sb):
    check_op(fn, [ga(*sa), gb(*sb)], np_fn, t_fn)


_erf = np.vectorize(math.erf, otypes=[float])  # (NumPy has no erf)

UNARY = [
    ("neg", lambda x: -x, lambda x: -x, lambda x: -x, r),
    ("abs", sd.abs, np.abs, T and T.abs, away_from_zero),
    ("exp", sd.exp, np.exp, T and T.exp, r),
    ("log", sd.log, np.log, T and T.log, pos),
    ("log1p", sd.log1p, np.log1p, T and T.log1p, pos),
    ("sqrt", sd.sqrt, np.sqrt, T and T.sqrt, pos),
    ("rsqrt", sd.rsqrt, lambda x: 1 / np.sqrt(x), T and T.rsqrt, pos),
    ("sin", sd.sin, np.sin, T and T.sin, r),
    ("cos", sd.cos, np.cos, T and T.cos, r),
    ("tanh", sd.tanh, np.tanh, T and T.tanh, r),
    ("sigmoid", sd.sigmoid, lambda x: 1 / (1 + np.exp(-x)), T and T.sigmoid, r),
    ("relu", sd.relu, lambda x: np.maximum(x, 0), T and T.relu, away_from_zero),
    ("leaky_relu", lambda x: F.leaky_relu(x, 0.1), lambda x: np.where(x > 0, x, 0.1 * x),
     T and (lambda x: T.nn.functional.leaky_relu(x, 0.1)), away_from_zero),
    ("elu", lambda x: F.elu(x, 1.5), lambda x: np.where(x > 0, x, 1.5 * (np.exp(x) - 1)),
     T and (lambda x: T.nn.functional.elu(x, 1.5)), away_from_zero),
    ("gelu", F.gelu, lambda x: x * 0.5 * (1 + _erf(x / np.sqrt(2))),
     T and T.nn.functional.gelu, r),
    ("gelu_tanh", lambda x: F.gelu(x, approximate="tanh"),
     lambda x: 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3))),
     T and (lambda x: T.nn.functional.gelu(x, approximate="tanh")), r),
    ("softplus", F.softplus, lambda x: np.log1p(np.exp(x)), T and T.nn.functional.softplus, r),
    ("softplus_beta", lambda x: F.softplus(x, beta=2.0, threshold=3.0),
     lambda x: np.where(2 * x > 3, x, np.log1p(np.exp(2 * x)) / 2),
     T and (lambda x: T.nn.functional.softplus(x, beta=2.0, threshold=3.0)), r),
    ("square", sd.square, np.square, T and T.square, r),
    ("pow_scalar", lambda x: x ** 3, lambda x: x ** 3, lambda x: x ** 3, r),
    ("pow_frac", lambda x: x ** 0.5, np.sqrt, lambda x: x ** 0.5, pos),
    ("rpow", lambda x: 2.0 ** x, lambda x: 2.0 ** x, lambda x: 2.0 ** x, r),
    ("rsub", lambda x: 3.0 - x, lambda x: 3.0 - x, lambda x: 3.0 - x, r),
    ("rdiv", lambda x: 3.0 / x, lambda x: 3.0 / x, lambda x: 3.0 / x, away_from_zero),
    ("add_scalar", lambda x: x + 1.5, lambda x: x + 1.5, lambda x: x + 1.5, r),
    ("mul_scalar", lambda x: x * -2.5, lambda x: x * -2.5, lambda x: x * -2.5, r),
    ("div_scalar", lambda x: x / 4.0, lambda x: x / 4.0, lambda x: x / 4.0, r),
    ("clamp", lambda x: sd.clamp(x, -0.5, 0.7), lambda x: np.clip(x, -0.5, 0.7),
     T and (lambda x: T.clamp(x, -0.5, 0.7)), r),
    ("clamp_min", lambda x: x.clamp(min=0.1), lambda x: np.maximum(x, 0.1),
     lambda x: x.clamp(min=0.1), r),
    ("silu", F.silu, lambda x: x / (1 + np.exp(-x)), T and T.nn.functional.silu, r),
    ("logsigmoid", F.logsigmoid, lambda x: -np.log1p(np.exp(-x)),
     T and T.nn.functional.logsigmoid, r),
]


@pytest.mark.parametrize("name,fn,np_fn,t_fn,gen", UNARY, ids=[u[0] for u in UNARY])
@pytest.mark.parametrize("shape", [(3, 4), (), (0, 2), (1, 5)])
def test_unary(name, fn, np_fn, t_fn, gen, shape):
    check_op(fn, [gen(*shape)], np_fn, t_fn)


def test_where():
    cond = rng.random((3, 4)) > 0.5
    check_op(lambda a, b: sd.where(on(a, cond), a, b), [r(3, 4), r(4)],
             lambda a, b: np.where(cond, a, b),
             T and (lambda a, b: T.where(T.from_numpy(cond), a, b)))


def test_where_scalar_branch():
    cond = rng.random((5,)) > 0.5
    check_op(lambda a: sd.where(on(a, cond), a, 0.0), [r(5)],
             lambda a: np.where(cond, a, 0.0))


def test_gelu_matches_erf_formula():
    x = np.linspace(-4, 4, 41)
    ref = 0.5 * x * (1 + np.array([math.erf(v / math.sqrt(2)) for v in x]))
    np.testing.assert_allclose(F.gelu(sd.tensor(x)).numpy(), ref, atol=1e-12)


def test_maximum_splits_gradient_at_ties():
    a = sd.tensor([1.0, 2.0], requires_grad=True)
    b = sd.tensor([1.0, 3.0], requires_grad=True)
    sd.maximum(a, b).sum().backward()
    assert a.grad.tolist() == [0.5, 0.0] and b.grad.tolist() == [0.5, 1.0]


@pytest.mark.parametrize("fn", [sd.sigmoid, F.softplus, F.logsigmoid, sd.tanh, F.gelu])
def test_stable_at_extremes(fn):
    x = sd.tensor([-1000.0, -50.0, 0.0, 50.0, 1000.0], requires_grad=True)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y = fn(x)
        y.sum().backward()
    assert np.isfinite(y.detach().numpy()).all()
    assert np.isfinite(x.grad.numpy()).all()


def test_sigmoid_keeps_relative_precision_for_large_negative_inputs():
    x = sd.tensor([-30.0], dtype=sd.float64)
    np.testing.assert_allclose(sd.sigmoid(x).numpy(), [np.exp(-30) / (1 + np.exp(-30))],
                               rtol=1e-12)


def test_comparisons_are_not_differentiable():
    x = sd.tensor([1.0, 2.0, 3.0], requires_grad=True)
    for out in (x > 2, x >= 2, x < 2, x <= 2, x == 2, x != 2):
        assert out.dtype == sd.bool and not out.requires_grad
    assert (x > 2).tolist() == [False, False, True]


def test_float32_stays_float32_with_python_and_numpy_scalars():
    x = sd.ones(3)
    for y in (x * 2.5, x + np.float64(1.0), 2.0 - x, x / 3, x ** 2, np.float64(2) * x):
        assert y.dtype == sd.float32


def test_broadcast_error_names_op_and_shapes():
    with pytest.raises(ValueError, match=r"add: shapes \(3,\) and \(4,\)"):
        sd.ones(3) + sd.ones(4)


def test_numpy_array_on_the_left_defers_to_tensor():
    out = np.ones(3) + sd.ones(3, requires_grad=True)
    assert isinstance(out, sd.Tensor) and out.requires_grad
