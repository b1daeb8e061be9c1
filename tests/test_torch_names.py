"""Everyday PyTorch names outside the op families (issue 10): constants, finfo/iinfo,
set_printoptions, inference_mode and bare @no_grad, legacy constructors, new_*/type_as,
Tensor.softmax/where/bmm, __format__ and the random fills. Each against an independent
reference: NumPy/Python values, and PyTorch where it is installed."""
import math

import numpy as np
import pytest
from op_helper import check_op, has_oracle, torch

import shendu as sd

T = torch
needs_torch = pytest.mark.skipif(T is None, reason="PyTorch (the oracle) is not installed")


def test_constants():
    assert (sd.pi, sd.e, sd.inf) == (math.pi, math.e, math.inf)
    assert math.isnan(sd.nan)


@pytest.mark.parametrize("dt,np_dt", [(sd.float32, np.float32), (sd.float64, np.float64),
                                      (sd.float16, np.float16)])
def test_finfo(dt, np_dt):
    f = sd.finfo(dt)
    ref = np.finfo(np_dt)
    assert (f.eps, f.max, f.min, f.tiny, f.bits) == (float(ref.eps), float(ref.max),
                                                    float(ref.min), float(ref.tiny), ref.bits)
    assert isinstance(f.eps, float) and f.dtype == str(np.dtype(np_dt))
    if has_oracle(T):
        tf = T.finfo(getattr(T, str(np.dtype(np_dt))))
        assert (f.eps, f.max, f.min, f.tiny, f.resolution) == (tf.eps, tf.max, tf.min, tf.tiny,
                                                               tf.resolution)
    assert sd.finfo().eps == float(np.finfo(np.float32).eps)  # the default dtype


@pytest.mark.parametrize("name", ["int8", "uint8", "int16", "int32", "int64"])
def test_iinfo(name):
    i = sd.iinfo(getattr(sd, name))
    ref = np.iinfo(name)
    assert (i.min, i.max, i.bits) == (int(ref.min), int(ref.max), ref.bits)
    if has_oracle(T):
        ti = T.iinfo(getattr(T, name))
        assert (i.min, i.max, i.bits) == (ti.min, ti.max, ti.bits)


def test_finfo_iinfo_errors():
    with pytest.raises(TypeError, match="finfo: expected a floating-point dtype, got int64"):
        sd.finfo(sd.int64)
    with pytest.raises(TypeError, match="iinfo: expected an integer dtype, got float32"):
        sd.iinfo(sd.float32)


@pytest.fixture
def reset_printing():
    yield
    sd.set_printoptions(profile="default")
    if has_oracle(T):
        T.set_printoptions(profile="default")


@needs_torch
@pytest.mark.parametrize("options", [dict(precision=2), dict(sci_mode=True),
                                     dict(sci_mode=False), dict(profile="short"),
                                     dict(precision=6)])
def test_set_printoptions_like_torch(options, reset_printing):
    data = [1.23456789, -2.5, 1e-5]
    sd.set_printoptions(**options)
    T.set_printoptions(**options)
    assert repr(sd.tensor(data)) == repr(T.tensor(data))


def test_set_printoptions_threshold_and_errors(reset_printing):
    sd.set_printoptions(threshold=5, edgeitems=2)
    assert repr(sd.arange(10.0)).replace(" ", "") == "tensor([0.,1.,...,8.,9.])"
    sd.set_printoptions(profile="full")
    assert "..." not in repr(sd.arange(2000.0))
    with pytest.raises(ValueError, match="set_printoptions: profile must be one of"):
        sd.set_printoptions(profile="long")


def test_no_grad_bare_and_called_decorators():
    x = sd.ones(2, requires_grad=True)

    @sd.no_grad
    def bare(t):
        return t * 2

    @sd.no_grad()
    def called(t):
        return t * 2

    assert not bare(x).requires_grad and not called(x).requires_grad
    assert bare.__name__ == "bare"
    assert sd.is_grad_enabled()
    assert (x * 2).requires_grad


def test_inference_mode():
    x = sd.ones(2, requires_grad=True)
    with sd.inference_mode():
        assert not (x * 2).requires_grad
    with sd.inference_mode(False):
        assert (x * 2).requires_grad

    @sd.inference_mode
    def bare(t):
        return t * 2

    @sd.inference_mode()
    def called(t):
        return t * 2

    assert not bare(x).requires_grad and not called(x).requires_grad
    assert sd.is_grad_enabled() and (x * 2).requires_grad


@pytest.mark.parametrize("name,dtype", [("FloatTensor", "float32"), ("DoubleTensor", "float64"),
                                        ("LongTensor", "int64"), ("IntTensor", "int32"),
                                        ("BoolTensor", "bool"), ("ByteTensor", "uint8"),
                                        ("CharTensor", "int8"), ("ShortTensor", "int16"),
                                        ("HalfTensor", "float16")])
def test_legacy_constructors(name, dtype):
    cls = getattr(sd, name)
    t = cls([1, 0, 2])
    assert t.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(t.numpy(), np.array([1, 0, 2]).astype(dtype))
    assert cls(2, 3).shape == (2, 3) and cls(2, 3).dtype == np.dtype(dtype)
    assert cls().shape == (0,)
    assert isinstance(t, cls) and isinstance(t, sd.Tensor)
    other = "LongTensor" if name != "LongTensor" else "FloatTensor"
    assert not isinstance(t, getattr(sd, other))
    if has_oracle(T):
        ref = getattr(T, name)([1, 0, 2])
        np.testing.assert_array_equal(t.numpy(), ref.numpy())
        assert getattr(T, name)(2, 3).shape == cls(2, 3).shape


def test_legacy_truncates_like_torch():
    assert sd.LongTensor([1.7, -1.7]).tolist() == [1, -1]
    with pytest.raises(TypeError, match="FloatTensor: expected data"):
        sd.FloatTensor([1.0], [2.0])


def test_new_constructors_and_type_as():
    x = sd.tensor([1.0, 2.0], dtype=sd.float64)
    z = x.new_zeros(2, 3)
    assert z.shape == (2, 3) and z.dtype == sd.float64 and z.numpy().sum() == 0
    o = x.new_ones((2,), dtype=sd.int32)
    assert o.dtype == sd.int32 and o.tolist() == [1, 1]
    f = x.new_full((2, 2), 7.0, requires_grad=True)
    assert f.requires_grad and f.dtype == sd.float64 and f.tolist() == [[7, 7], [7, 7]]
    assert x.new_empty(4).shape == (4,) and x.new_empty(4).dtype == sd.float64
    src = sd.tensor([3.0, 4.0])
    n = x.new_tensor(src)
    assert n.dtype == sd.float64 and n.tolist() == [3.0, 4.0]
    n[0] = 9.0
    assert src.tolist() == [3.0, 4.0]  # a copy
    assert sd.tensor([1, 2]).type_as(x).dtype == sd.float64
    if has_oracle(T):
        tx = T.tensor([1.0, 2.0], dtype=T.float64)
        assert str(tx.new_zeros(2, 3).dtype) == "torch.float64"
        assert str(tx.new_tensor([3, 4]).dtype) == "torch.float64"


def test_tensor_softmax_log_softmax_and_sd_softmax():
    x = np.random.default_rng(3).standard_normal((3, 4))
    e = np.exp(x - x.max(1, keepdims=True))
    ref = e / e.sum(1, keepdims=True)
    check_op(lambda a: a.softmax(1), [x], lambda a: ref, T and (lambda a: a.softmax(1)))
    check_op(lambda a: a.log_softmax(-1), [x], lambda a: np.log(ref),
             T and (lambda a: a.log_softmax(-1)))
    np.testing.assert_allclose(sd.softmax(sd.tensor(x), dim=1).numpy(), ref)
    np.testing.assert_allclose(sd.log_softmax(sd.tensor(x), 1).numpy(), np.log(ref))


def test_tensor_where_and_bmm_methods():
    cond = np.array([[True, False, True]])
    check_op(lambda a, b: a.where(sd.tensor(cond), b), [np.ones((2, 3)), np.zeros(3)],
             lambda a, b: np.where(cond, a, b),
             T and (lambda a, b: a.where(T.from_numpy(cond), b)))
    rng = np.random.default_rng(4)
    check_op(lambda a, b: a.bmm(b), [rng.standard_normal((2, 3, 4)),
                                     rng.standard_normal((2, 4, 2))],
             lambda a, b: a @ b, T and (lambda a, b: a.bmm(b)))


def test_format():
    loss = sd.tensor(0.123456)
    assert f"{loss:.4f}" == "0.1235" == f"{0.123456:.4f}"
    assert f"{sd.tensor(3):>4d}" == "   3"
    assert f"{sd.tensor([1.0, 2.0])}" == str(sd.tensor([1.0, 2.0]))
    with pytest.raises(TypeError, match=r"only 0-d tensors take a format spec"):
        f"{sd.tensor([1.0, 2.0]):.2f}"
    if has_oracle(T):
        assert f"{T.tensor(0.123456):.4f}" == f"{loss:.4f}"
        with pytest.raises(TypeError):
            f"{T.tensor([1.0, 2.0]):.2f}"


def test_random_fills():
    sd.manual_seed(0)
    x = sd.zeros(2000)
    x.random_(3, 7)
    assert set(np.unique(x.numpy())) == {3, 4, 5, 6}
    x.random_(5)
    assert set(np.unique(x.numpy())) == {0, 1, 2, 3, 4}
    y = sd.zeros(1000, dtype=sd.int8)
    y.random_()
    assert y.numpy().min() >= 0 and y.numpy().max() > 100
    f = sd.zeros(1000)
    f.random_()
    assert (f.numpy() == np.round(f.numpy())).all() and f.numpy().max() <= 2 ** 24
    e = sd.zeros(20000).exponential_(2.0)
    assert abs(e.numpy().mean() - 0.5) < 0.03 and e.numpy().min() >= 0
    g = sd.zeros(20000).geometric_(0.25)
    assert abs(g.numpy().mean() - 4.0) < 0.2 and g.numpy().min() >= 1
    ln = sd.zeros(20000).log_normal_(0.0, 0.5)
    assert abs(np.log(ln.numpy()).std() - 0.5) < 0.02
    c = sd.zeros(20001).cauchy_(1.0, 2.0)
    assert abs(np.median(c.numpy()) - 1.0) < 0.1
    u = sd.zeros(100).uniform_(-1, 1).normal_(0, 1).fill_(2.0)
    assert u.numpy().tolist() == [2.0] * 100 and u.zero_().numpy().sum() == 0
    with pytest.raises(ValueError, match="random_: expected from < to"):
        sd.zeros(2).random_(5, 2)


def test_random_fill_is_seeded():
    sd.manual_seed(7)
    a = sd.zeros(5).random_(0, 100)
    sd.manual_seed(7)
    b = sd.zeros(5).random_(0, 100)
    assert a.tolist() == b.tolist()


UNARY_IN_PLACE = """abs acos acosh asin asinh atan atanh ceil cos cosh deg2rad digamma erf erfc
erfinv exp2 expm1 floor frac lgamma log log10 log1p log2 logit nan_to_num rad2deg reciprocal
round rsqrt sgn sign sin sinc sinh square tan trunc""".split()


@pytest.mark.parametrize("name", UNARY_IN_PLACE)
def test_in_place_unary_methods_write_the_op_result(name):
    # values inside every function's domain (acosh needs >= 1, so it gets its own)
    x = np.array([[0.2, 0.45], [0.7, 0.9]]) + (1.0 if name == "acosh" else 0.0)
    t = sd.tensor(x)
    out = getattr(t, name + "_")()
    assert out is t
    np.testing.assert_allclose(t.numpy(), getattr(sd, name)(sd.tensor(x)).numpy(), rtol=1e-6)
    if has_oracle(T):
        np.testing.assert_allclose(t.numpy(), getattr(T.tensor(x), name + "_")().numpy(),
                                   rtol=1e-5)


@pytest.mark.parametrize("name,args", [("clamp_min", (0.5,)), ("clamp_max", (0.5,)),
                                       ("cumprod", (1,)), ("cumsum", (0,)), ("tril", (0,)),
                                       ("triu", (1,))])
def test_in_place_methods_with_arguments(name, args):
    x = np.array([[0.2, 0.45, 0.3], [0.7, 0.9, 0.1]])
    t = sd.tensor(x)
    getattr(t, name + "_")(*args)
    np.testing.assert_allclose(t.numpy(), getattr(sd, name)(sd.tensor(x), *args).numpy())
    if has_oracle(T):
        np.testing.assert_allclose(t.numpy(), getattr(T.tensor(x), name + "_")(*args).numpy(),
                                   rtol=1e-6)


def test_in_place_method_on_a_leaf_that_requires_grad_refuses():
    x = sd.tensor([0.5], requires_grad=True)
    with pytest.raises(RuntimeError, match="in-place op on a leaf tensor"):
        x.log2_()
