"""floor/ceil/round/trunc/sign: piecewise constant, so their gradient is zero, and PyTorch
returns those zeros (the output requires grad) instead of cutting the graph; frac's is one."""
import numpy as np
import pytest
from op_helper import check_op, has_oracle, torch

import shendu as sd

T = torch


def _away_from_jumps(shape, seed=0):
    """Values whose fractional part is in [0.2, 0.4]: no step of any of these ops is near."""
    rng = np.random.default_rng(seed)
    return rng.integers(-4, 4, shape) + rng.uniform(0.2, 0.4, shape) * rng.choice([-1, 1], shape)


STEPS = [
    ("floor", sd.floor, np.floor), ("ceil", sd.ceil, np.ceil), ("trunc", sd.trunc, np.trunc),
    ("round", sd.round, np.round), ("sign", sd.sign, np.sign), ("sgn", sd.sgn, np.sign),
]


@pytest.mark.parametrize("name,fn,np_fn", STEPS, ids=[s[0] for s in STEPS])
def test_zero_gradient_matches_finite_differences_and_pytorch(name, fn, np_fn):
    # torch.sgn's gradient is a ZeroTensor that .numpy() refuses; for real input it is sign
    check_op(fn, [_away_from_jumps((3, 4))], np_fn, T and getattr(T, name.replace("sgn", "sign")))


@pytest.mark.parametrize("name", ["floor", "ceil", "trunc", "round", "sign", "sgn", "frac"])
def test_output_requires_grad_and_backpropagates(name):
    x = sd.tensor([0.3, -1.7, 2.5, -0.5], dtype=sd.float64, requires_grad=True)
    y = getattr(sd, name)(x)
    assert y.requires_grad and y.grad_fn is not None
    (y * sd.arange(4.0, dtype=sd.float64)).sum().backward()
    want = np.ones(4) * np.arange(4.0) if name == "frac" else np.zeros(4)
    np.testing.assert_array_equal(x.grad.numpy(), want)
    assert not getattr(sd, name)(x.detach()).requires_grad
    if has_oracle(T):
        tx = T.tensor([0.3, -1.7, 2.5, -0.5], dtype=T.float64, requires_grad=True)
        ty = getattr(T, name)(tx)
        if name == "sgn":  # its gradient is a ZeroTensor: compare through a dense copy
            ty = ty + 0
        assert ty.requires_grad
        np.testing.assert_array_equal(y.detach().numpy(), ty.detach().numpy())
        (ty * T.arange(4.0, dtype=T.float64)).sum().backward()
        np.testing.assert_array_equal(x.grad.numpy(), tx.grad.to_dense().numpy(force=True))


def test_round_decimals_and_halves_to_even():
    a = np.array([0.5, 1.5, 2.5, -0.5, 1.2345, -7.891, 123.456])
    x = sd.tensor(a, requires_grad=True)
    for d in (0, 1, 2, -1):
        got = sd.round(x, decimals=d)
        np.testing.assert_allclose(got.detach().numpy(), np.round(a * 10.0 ** d) / 10.0 ** d,
                                   rtol=1e-15)
        assert got.requires_grad
        np.testing.assert_array_equal(x.round(decimals=d).detach().numpy(), got.detach().numpy())
        if has_oracle(T):
            np.testing.assert_allclose(got.detach().numpy(),
                                       T.round(T.tensor(a), decimals=d).numpy(), rtol=1e-15)


def test_integers_keep_their_dtype():
    i = sd.tensor([-3, 0, 2])
    for name in ("floor", "ceil", "trunc", "round", "sign"):
        out = getattr(sd, name)(i)
        assert out.dtype == sd.int64
        np.testing.assert_array_equal(out.numpy(), getattr(np, name)(np.array([-3, 0, 2])))
        if has_oracle(T):
            assert str(getattr(T, name)(T.tensor([-3, 0, 2])).dtype) == "torch.int64"


def test_in_place_and_second_order():
    x = sd.tensor([0.3, -1.7], dtype=sd.float64, requires_grad=True)
    y = x * 2
    y.floor_()
    assert y.requires_grad
    (g,) = sd.autograd.grad((y * x).sum(), x, create_graph=True)
    # d/dx (floor(2x) * x) = floor(2x) (the floor's own term is zero)
    np.testing.assert_array_equal(g.detach().numpy(), np.floor(2 * np.array([0.3, -1.7])))
    (gg,) = sd.autograd.grad(g.sum(), x, allow_unused=True)
    np.testing.assert_array_equal(gg.numpy(), [0.0, 0.0])
