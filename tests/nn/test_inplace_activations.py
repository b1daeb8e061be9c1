"""``inplace=True`` on the activation functions and modules, and the in-place spellings
(``F.relu_``, ...): same values as out of place, the input overwritten and its version
bumped, and autograd's rules as in PyTorch (a leaf that requires grad refuses; a tensor an
op saved fails at backward; otherwise gradients flow through the in-place result)."""
import numpy as np
import pytest
from op_helper import check_op, has_oracle, torch

import shendu as sd
import shendu.nn.functional as F

T = torch
TF = T and T.nn.functional


def _np_elu(x, a=1.0):
    return np.where(x > 0, x, a * np.expm1(np.minimum(x, 0)))


CASES = [  # (name, call(F, x, inplace), NumPy reference)
    ("relu", lambda f, x, ip: f.relu(x, inplace=ip), lambda x: np.maximum(x, 0)),
    ("leaky_relu", lambda f, x, ip: f.leaky_relu(x, 0.2, inplace=ip),
     lambda x: np.where(x > 0, x, 0.2 * x)),
    ("elu", lambda f, x, ip: f.elu(x, 1.5, inplace=ip), lambda x: _np_elu(x, 1.5)),
    ("selu", lambda f, x, ip: f.selu(x, inplace=ip),
     lambda x: 1.0507009873554804934193349852946 * _np_elu(x, 1.6732632423543772848170429916717)),
    ("celu", lambda f, x, ip: f.celu(x, 0.5, inplace=ip),
     lambda x: np.maximum(x, 0) + np.minimum(0, 0.5 * np.expm1(x / 0.5))),
    ("relu6", lambda f, x, ip: f.relu6(x, inplace=ip), lambda x: np.clip(x, 0, 6)),
    ("hardtanh", lambda f, x, ip: f.hardtanh(x, -0.5, 0.7, inplace=ip),
     lambda x: np.clip(x, -0.5, 0.7)),
    ("threshold", lambda f, x, ip: f.threshold(x, 0.1, -2.0, inplace=ip),
     lambda x: np.where(x > 0.1, x, -2.0)),
    ("silu", lambda f, x, ip: f.silu(x, inplace=ip), lambda x: x / (1 + np.exp(-x))),
    ("mish", lambda f, x, ip: f.mish(x, inplace=ip),
     lambda x: x * np.tanh(np.log1p(np.exp(x)))),
]
IDS = [c[0] for c in CASES]


def _data(seed=0):
    """Values away from every kink (0, 0.1, -0.5, 0.7, 6), so finite differences hold."""
    x = np.random.default_rng(seed).uniform(-3, 8, (3, 5))
    for k in (0.0, 0.1, -0.5, 0.7, 6.0):
        x = np.where(np.abs(x - k) < 0.05, k + 0.2, x)
    return x


@pytest.mark.parametrize("name,call,ref", CASES, ids=IDS)
def test_out_of_place_against_numpy_finite_differences_and_pytorch(name, call, ref):
    check_op(lambda t: call(F, t, False), [_data()], ref,
             TF and (lambda t: call(TF, t, False)), check_f32=False)


@pytest.mark.parametrize("name,call,ref", CASES, ids=IDS)
def test_inplace_overwrites_and_bumps_the_version(name, call, ref):
    a = _data(1)
    x = sd.tensor(a)
    v = x._version[0]
    out = call(F, x, True)
    assert out is x and x._version[0] == v + 1
    np.testing.assert_allclose(x.numpy(), ref(a), rtol=1e-12, atol=1e-12)
    if has_oracle(T):
        tx = T.tensor(a)
        assert call(TF, tx, True) is tx
        np.testing.assert_allclose(x.numpy(), tx.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name,call,ref", CASES, ids=IDS)
def test_inplace_gradients_and_autograd_rules(name, call, ref):
    a = _data(2)
    leaf = sd.tensor(a, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf"):
        call(F, leaf, True)
    # on a non-leaf, the gradient is the out-of-place op's (checked above by gradcheck)
    y = leaf * 2.0
    out = call(F, y, True)
    assert out is y and y.requires_grad
    (out * sd.tensor(a)).sum().backward()
    g_in = leaf.grad.numpy().copy()
    leaf.grad = None
    (call(F, leaf * 2.0, False) * sd.tensor(a)).sum().backward()
    np.testing.assert_allclose(g_in, leaf.grad.numpy(), rtol=1e-12)
    assert sd.autograd.gradcheck(lambda t: call(F, t * 1.0, True), [sd.tensor(a[:1, :3],
                                                                      requires_grad=True)])
    # overwriting a tensor that exp saved for its backward: backward refuses
    e = sd.exp(sd.tensor(a, requires_grad=True) * 0.1)
    call(F, e, True)
    with pytest.raises(RuntimeError, match="modified in place"):
        e.sum().backward()
    if has_oracle(T):
        tl = T.tensor(a, requires_grad=True)
        with pytest.raises(RuntimeError):
            call(TF, tl, True)
        ty = tl * 2.0
        (call(TF, ty, True) * T.tensor(a)).sum().backward()
        np.testing.assert_allclose(g_in, tl.grad.numpy(), rtol=1e-12)
        te = T.exp(T.tensor(a, requires_grad=True) * 0.1)
        call(TF, te, True)
        with pytest.raises(RuntimeError):
            te.sum().backward()


def test_underscore_spellings():
    a = _data(3)
    for name, fn, ref in [("relu_", lambda x: F.relu_(x), np.maximum(a, 0)),
                          ("leaky_relu_", lambda x: F.leaky_relu_(x, 0.3),
                           np.where(a > 0, a, 0.3 * a)),
                          ("elu_", lambda x: F.elu_(x), _np_elu(a)),
                          ("hardtanh_", lambda x: F.hardtanh_(x, -1.0, 2.0), np.clip(a, -1, 2)),
                          ("threshold_", lambda x: F.threshold_(x, 0.1, 9.0),
                           np.where(a > 0.1, a, 9.0))]:
        x = sd.tensor(a)
        assert fn(x) is x, name
        np.testing.assert_allclose(x.numpy(), ref, rtol=1e-12, err_msg=name)
        if has_oracle(T):
            tx = T.tensor(a)
            getattr(TF, name)(tx, *{"leaky_relu_": (0.3,), "hardtanh_": (-1.0, 2.0),
                                    "threshold_": (0.1, 9.0)}.get(name, ()))
            np.testing.assert_allclose(x.numpy(), tx.numpy(), rtol=1e-12, err_msg=name)


def test_dropout_inplace():
    sd.manual_seed(0)
    x = sd.ones(4000, dtype=sd.float64)
    v = x._version[0]
    assert F.dropout(x, 0.25, training=True, inplace=True) is x and x._version[0] == v + 1
    kept = x.numpy() != 0
    np.testing.assert_allclose(x.numpy()[kept], 1 / 0.75)
    # the kept share is binomial(4000, 0.75): 5 standard deviations is about 0.034
    assert abs(kept.mean() - 0.75) < 0.035
    img = sd.ones(8, 6, 3, 3)
    F.dropout2d(img, 0.5, training=True, inplace=True)
    per_channel = img.numpy().reshape(8, 6, 9)
    assert (per_channel.min(-1) == per_channel.max(-1)).all()  # whole channels dropped
    same = sd.ones(3)
    assert F.dropout(same, 0.5, training=False, inplace=True) is same
    np.testing.assert_array_equal(same.numpy(), 1.0)
    with pytest.raises(RuntimeError, match="leaf"):
        F.dropout(sd.ones(3, requires_grad=True), 0.5, inplace=True)
    y = sd.ones(50, requires_grad=True) * 1.0
    out = sd.nn.Dropout(0.5, inplace=True)(y)
    out.sum().backward()  # gradients flow through the in-place dropout: 0 or 1 / (1 - p)


@pytest.mark.parametrize("module,ref", [
    (lambda: sd.nn.ReLU(inplace=True), lambda x: np.maximum(x, 0)),
    (lambda: sd.nn.LeakyReLU(0.1, inplace=True), lambda x: np.where(x > 0, x, 0.1 * x)),
    (lambda: sd.nn.ELU(inplace=True), _np_elu),
    (lambda: sd.nn.CELU(2.0, inplace=True),
     lambda x: np.maximum(x, 0) + np.minimum(0, 2.0 * np.expm1(x / 2.0))),
    (lambda: sd.nn.Threshold(0.1, 20.0, inplace=True), lambda x: np.where(x > 0.1, x, 20.0)),
    (lambda: sd.nn.ReLU6(inplace=True), lambda x: np.clip(x, 0, 6)),
    (lambda: sd.nn.Hardtanh(inplace=True), lambda x: np.clip(x, -1, 1)),
])
def test_modules_inplace(module, ref):
    a = _data(4)
    x = sd.tensor(a)
    m = module()
    assert m(x) is x and "inplace=True" in repr(m)
    np.testing.assert_allclose(x.numpy(), ref(a), rtol=1e-12)
    if has_oracle(T):
        name = type(m).__name__
        args = {"LeakyReLU": (0.1,), "CELU": (2.0,), "Threshold": (0.1, 20.0)}.get(name, ())
        tx = T.tensor(a)
        getattr(T.nn, name)(*args, inplace=True)(tx)
        np.testing.assert_allclose(x.numpy(), tx.numpy(), rtol=1e-12)
