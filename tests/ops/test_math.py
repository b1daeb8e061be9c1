"""The elementwise math family (issue 10): forward against NumPy / Python's math module,
backward against finite differences and forward mode, and against PyTorch (check_op)."""
import math

import numpy as np
import pytest
from op_helper import check_op, has_oracle, torch

import shendu as sd
from shendu.ops import _special

rng = np.random.default_rng(10)
T = torch


def r(*shape, lo=-2.0, hi=2.0):
    return rng.uniform(lo, hi, shape)


def unit(*shape):
    return rng.uniform(-0.9, 0.9, shape)


def pos(*shape):
    return rng.uniform(0.5, 3.0, shape)


def above_one(*shape):
    return rng.uniform(1.2, 3.0, shape)


def away_from_int(*shape):
    return rng.integers(-3, 3, shape) + rng.uniform(0.1, 0.9, shape)


def vec(fn):
    """A Python math function applied elementwise: an independent reference."""
    return lambda x: np.vectorize(fn, otypes=[np.float64])(x)


def tfn(name):
    return None if T is None else getattr(T, name)


UNARY = [
    ("log2", sd.log2, np.log2, pos),
    ("log10", sd.log10, np.log10, pos),
    ("exp2", sd.exp2, np.exp2, r),
    ("expm1", sd.expm1, np.expm1, r),
    ("tan", sd.tan, np.tan, unit),
    ("asin", sd.asin, np.arcsin, unit),
    ("acos", sd.acos, np.arccos, unit),
    ("atan", sd.atan, np.arctan, r),
    ("sinh", sd.sinh, np.sinh, r),
    ("cosh", sd.cosh, np.cosh, r),
    ("asinh", sd.asinh, np.arcsinh, r),
    ("acosh", sd.acosh, np.arccosh, above_one),
    ("atanh", sd.atanh, np.arctanh, unit),
    ("erf", sd.erf, vec(math.erf), r),
    ("erfc", sd.erfc, vec(math.erfc), r),
    ("erfinv", sd.erfinv, None, unit),
    ("lgamma", sd.lgamma, vec(math.lgamma), pos),
    ("digamma", sd.digamma, None, pos),
    ("sinc", sd.sinc, np.sinc, r),
    ("reciprocal", sd.reciprocal, lambda x: 1 / x, pos),
    ("frac", sd.frac, lambda x: x - np.trunc(x), away_from_int),
    ("deg2rad", sd.deg2rad, np.deg2rad, r),
    ("rad2deg", sd.rad2deg, np.rad2deg, r),
    ("logit", sd.logit, lambda p: np.log(p / (1 - p)), lambda *s: rng.uniform(0.1, 0.9, s)),
    ("nan_to_num", sd.nan_to_num, np.nan_to_num, r),
]


@pytest.mark.parametrize("name,fn,np_fn,gen", UNARY, ids=[u[0] for u in UNARY])
@pytest.mark.parametrize("shape", [(3, 4), (), (0, 2)])
def test_unary(name, fn, np_fn, gen, shape):
    check_op(fn, [gen(*shape)], np_fn, tfn(name))


def test_unary_methods_and_in_place():
    x = sd.tensor([0.5, 0.25])
    np.testing.assert_allclose(x.log2().numpy(), [-1, -2])
    np.testing.assert_allclose(x.erfinv().numpy(), [0.4769362762, 0.2253120550], rtol=1e-6)
    y = x.clone()
    y.log2_()
    np.testing.assert_allclose(y.numpy(), [-1, -2])


def test_numpy_spellings_are_the_same_functions():
    for numpy_name, torch_name in [("arcsin", "asin"), ("arccos", "acos"), ("arctan", "atan"),
                                   ("arcsinh", "asinh"), ("arccosh", "acosh"),
                                   ("arctanh", "atanh"), ("arctan2", "atan2")]:
        assert getattr(sd, numpy_name) is getattr(sd, torch_name)
        assert getattr(sd.Tensor, numpy_name) is getattr(sd.Tensor, torch_name)
    np.testing.assert_allclose(sd.arccosh(sd.tensor([2.0])).numpy(), np.arccosh([2.0]))


def test_erfinv_inverts_erf():
    p = np.linspace(-0.999, 0.999, 101)
    np.testing.assert_allclose(sd.erf(sd.erfinv(sd.tensor(p))).numpy(), p, atol=1e-12)


def test_sinc_at_zero():
    x = sd.tensor([0.0, 1.0], dtype=sd.float64, requires_grad=True)
    y = sd.sinc(x)
    y.sum().backward()
    np.testing.assert_allclose(y.detach().numpy(), [1.0, 0.0], atol=1e-15)
    np.testing.assert_allclose(x.grad.numpy(), [0.0, -1.0], atol=1e-12)  # d sinc(1) = -1


def test_integer_inputs_become_float():
    out = sd.log2(sd.tensor([1, 4]))
    assert out.dtype == sd.float32 and out.tolist() == [0.0, 2.0]


def test_logit_eps_clamps_and_zeroes_gradient():
    x = sd.tensor([0.0, 0.5, 1.0], dtype=sd.float64, requires_grad=True)
    y = sd.logit(x, eps=0.1)
    y.sum().backward()
    np.testing.assert_allclose(y.detach().numpy(), [math.log(1 / 9), 0.0, math.log(9)])
    np.testing.assert_allclose(x.grad.numpy(), [0.0, 4.0, 0.0])
    if has_oracle(T):
        tx = T.tensor([0.0, 0.5, 1.0], dtype=T.float64, requires_grad=True)
        T.logit(tx, eps=0.1).sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy())


def test_nan_to_num_values_and_gradient():
    x = sd.tensor([np.nan, np.inf, -np.inf, 1.5], dtype=sd.float64, requires_grad=True)
    y = sd.nan_to_num(x, nan=0.5, posinf=9.0)
    y.sum().backward()
    lo = np.finfo(np.float64).min
    np.testing.assert_array_equal(y.detach().numpy(), [0.5, 9.0, lo, 1.5])
    np.testing.assert_array_equal(x.grad.numpy(), [0, 0, 0, 1])


# ---------------------------------------------------------------------- binary
BINARY = [
    ("atan2", sd.atan2, np.arctan2, r, r),
    ("hypot", sd.hypot, np.hypot, r, r),
    ("logaddexp", sd.logaddexp, np.logaddexp, r, r),
    ("logaddexp2", sd.logaddexp2, np.logaddexp2, r, r),
    ("xlogy", sd.xlogy, lambda x, y: x * np.log(y), r, pos),
    ("fmax", sd.fmax, np.fmax, r, r),
    ("fmin", sd.fmin, np.fmin, r, r),
    ("copysign", sd.copysign, np.copysign, r, r),
]


@pytest.mark.parametrize("name,fn,np_fn,ga,gb", BINARY, ids=[b[0] for b in BINARY])
@pytest.mark.parametrize("sa,sb", [((3, 4), (3, 4)), ((2, 1, 4), (3, 1)), ((), (2,))])
def test_binary(name, fn, np_fn, ga, gb, sa, sb):
    check_op(fn, [ga(*sa), gb(*sb)], np_fn, tfn(name))


def test_logaddexp_is_stable():
    out = sd.logaddexp(sd.tensor([1000.0, -1000.0]), sd.tensor([1000.0, -1000.0]))
    np.testing.assert_allclose(out.numpy(), [1000 + math.log(2), -1000 + math.log(2)])


def test_xlogy_at_zero():
    x = sd.tensor([0.0, 0.0, 2.0], dtype=sd.float64, requires_grad=True)
    y = sd.tensor([0.0, np.nan, 3.0], dtype=sd.float64)
    out = sd.xlogy(x, y)
    # log(3) from NumPy, libm and PyTorch may differ in the last bit (SIMD vs scalar code)
    np.testing.assert_allclose(out.detach().numpy()[[0, 2]], [0.0, 2 * math.log(3)],
                               rtol=4 * np.finfo(np.float64).eps, atol=0)
    assert np.isnan(out.detach().numpy()[1])
    if has_oracle(T):
        ref = T.xlogy(T.tensor([0.0, 0.0, 2.0], dtype=T.float64),
                      T.tensor([0.0, np.nan, 3.0], dtype=T.float64))
        np.testing.assert_allclose(out.detach().numpy(), ref.numpy(),
                                   rtol=4 * np.finfo(np.float64).eps, atol=0)


def test_fmax_ignores_nan():
    a = sd.tensor([np.nan, 1.0, np.nan])
    b = sd.tensor([2.0, np.nan, np.nan])
    out = sd.fmax(a, b).numpy()
    assert out[0] == 2.0 and out[1] == 1.0 and np.isnan(out[2])


COMPOSITES = [
    ("lerp", lambda a, b, w: sd.lerp(a, b, w), lambda a, b, w: a + w * (b - a), "lerp"),
    ("addcmul", lambda a, b, c: sd.addcmul(a, b, c, value=0.5),
     lambda a, b, c: a + 0.5 * b * c, lambda a, b, c: T.addcmul(a, b, c, value=0.5)),
    ("addcdiv", lambda a, b, c: sd.addcdiv(a, b, c, value=-2.0),
     lambda a, b, c: a - 2.0 * b / c, lambda a, b, c: T.addcdiv(a, b, c, value=-2.0)),
]


@pytest.mark.parametrize("name,fn,np_fn,t_fn", COMPOSITES, ids=[c[0] for c in COMPOSITES])
def test_composites(name, fn, np_fn, t_fn):
    if T is not None and isinstance(t_fn, str):
        t_fn = getattr(T, t_fn)
    check_op(fn, [r(3, 4), r(3, 4), pos(3, 4)], np_fn, t_fn if T is not None else None)


def test_clamp_min_max():
    check_op(lambda x: sd.clamp_min(x, 0.2), [r(3, 4)], lambda x: np.maximum(x, 0.2),
             T and (lambda x: T.clamp_min(x, 0.2)))
    check_op(lambda x: x.clamp_max(-0.1), [r(3, 4)], lambda x: np.minimum(x, -0.1),
             T and (lambda x: T.clamp_max(x, -0.1)))
    y = sd.tensor([-1.0, 0.5, 2.0])
    y.clamp_min_(0.0).clamp_max_(1.0)
    assert y.tolist() == [0.0, 0.5, 1.0]


def test_small_elementwise_helpers():
    x = sd.tensor([-1.5, 0.0, 2.0])
    assert sd.sgn(x).tolist() == [-1.0, 0.0, 1.0]
    assert sd.signbit(sd.tensor([-0.0, 1.0])).tolist() == [True, False]
    assert sd.heaviside(x, sd.tensor(0.5)).tolist() == [0.0, 0.5, 1.0]
    fp = sd.float_power(sd.tensor([2.0, 3.0]), 3)
    assert fp.dtype == sd.float64 and fp.tolist() == [8.0, 27.0]
    assert sd.positive(x) is x
    y = sd.tensor([1.0, 2.0])
    y.lerp_(sd.tensor([3.0, 6.0]), 0.5)
    assert y.tolist() == [2.0, 4.0]


def test_in_place_lerp_records_the_graph():
    x = sd.tensor([1.0, 2.0], dtype=sd.float64, requires_grad=True)
    y = x * 1
    y.addcmul_(x, x, value=2.0)  # y = x + 2 x^2
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 1 + 4 * np.array([1.0, 2.0]))


# ---------------------------------------------------------------------- the NumPy fallbacks
def test_numpy_special_functions_without_scipy():
    """The versions used when SciPy is missing, against Python's math module and PyTorch."""
    x = np.concatenate([np.linspace(-4.7, 9.3, 57), [1e-3, 0.5, 30.0, 250.0]])
    np.testing.assert_allclose(_special.np_erf(x), vec(math.erf)(x), rtol=1e-15)
    np.testing.assert_allclose(_special.np_erfc(x), vec(math.erfc)(x), rtol=1e-15)
    np.testing.assert_allclose(_special.np_lgamma(x), vec(math.lgamma)(x), rtol=1e-14)
    assert np.isinf(_special.np_lgamma(np.array([0.0, -2.0]))).all()
    # digamma: the difference quotient of lgamma, and PyTorch
    h = 1e-5
    p = x[x > 0.2]
    fd = (vec(math.lgamma)(p + h) - vec(math.lgamma)(p - h)) / (2 * h)
    np.testing.assert_allclose(_special.np_polygamma(0, p), fd, rtol=1e-7, atol=1e-7)
    p = np.linspace(0.05, 0.999, 20)
    assert np.max(np.abs(_special.np_erfinv(p) - np.asarray(
        [_bisect_erfinv(v) for v in p]))) < 1e-12
    assert np.isinf(_special.np_erfinv(np.array([1.0, -1.0]))).all()
    assert np.isnan(_special.np_erfinv(np.array([1.5]))).all()
    if has_oracle(T):
        tx = T.from_numpy(x)
        np.testing.assert_allclose(_special.np_polygamma(0, x), T.digamma(tx).numpy(),
                                   rtol=1e-11, atol=1e-11)
        # (PyTorch's trigamma stops its series early: agreement to about 1e-9)
        np.testing.assert_allclose(_special.np_polygamma(1, x), T.polygamma(1, tx).numpy(),
                                   rtol=1e-8, atol=1e-8)
        q = np.array([-0.999999, -0.3, 0.0, 0.7, 1 - 1e-12])
        np.testing.assert_allclose(_special.np_erfinv(q), T.erfinv(T.from_numpy(q)).numpy(),
                                   rtol=1e-12)


def _bisect_erfinv(v):
    lo, hi = -10.0, 10.0
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if math.erf(mid) < v else (lo, mid)
    return (lo + hi) / 2


def test_special_namespace():
    x = np.linspace(-2, 2, 9)
    p = np.linspace(0.05, 0.95, 7)
    np.testing.assert_allclose(sd.special.expit(sd.tensor(x)).numpy(), 1 / (1 + np.exp(-x)))
    ndtr = 0.5 * (1 + vec(math.erf)(x / math.sqrt(2)))
    np.testing.assert_allclose(sd.special.ndtr(sd.tensor(x)).numpy(), ndtr, rtol=1e-12)
    np.testing.assert_allclose(sd.special.ndtr(sd.special.ndtri(sd.tensor(p))).numpy(), p,
                               rtol=1e-12)
    np.testing.assert_allclose(sd.special.erfcx(sd.tensor(x)).numpy(),
                               np.exp(x * x) * vec(math.erfc)(x), rtol=1e-12)
    np.testing.assert_allclose(sd.special.gammaln(sd.tensor(p)).numpy(),
                               vec(math.lgamma)(p), rtol=1e-12)
    assert sd.special.psi is sd.digamma and sd.special.xlogy is sd.xlogy
    if has_oracle(T):
        for name in ("ndtr", "ndtri", "erfcx", "expit", "psi", "gammaln"):
            arg = p if name == "ndtri" or name in ("psi", "gammaln") else x
            np.testing.assert_allclose(getattr(sd.special, name)(sd.tensor(arg)).numpy(),
                                       getattr(T.special, name)(T.from_numpy(arg)).numpy(),
                                       rtol=1e-10, atol=1e-12)
    check_op(sd.special.ndtri, [rng.uniform(0.1, 0.9, (3,))], None,
             T and T.special.ndtri)
