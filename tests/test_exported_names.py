"""Exported names that no other test named: each against an independent reference (NumPy,
a closed form, or PyTorch's documented behaviour), and the aliases against PyTorch's
meaning of the name (``fmod`` is not ``remainder``, ``tile`` is not ``repeat``,
``take_along_dim`` is not ``gather``, ``&`` is bitwise)."""
import numpy as np
import pytest
from op_helper import Arg, check_op, oracle_missing, torch

import shendu as sd
import shendu.nn as nn
import shendu.nn.functional as F

T = torch
TF = torch and torch.nn.functional
rng = np.random.default_rng(4)


def r(*shape):
    return rng.standard_normal(shape)


# ---------------------------------------------------------------------- aliases
def test_fmod_takes_the_sign_of_the_dividend_remainder_of_the_divisor():
    a = np.array([-7.5, -3.0, -1.0, 0.0, 2.5, 7.0])
    for b in (2.0, -2.0):
        np.testing.assert_array_equal(sd.fmod(sd.tensor(a), b).numpy(), np.fmod(a, b))
        np.testing.assert_array_equal(sd.remainder(sd.tensor(a), b).numpy(), np.mod(a, b))
        # the definitions: fmod truncates the quotient, remainder floors it
        np.testing.assert_allclose(sd.fmod(sd.tensor(a), b).numpy(), a - np.trunc(a / b) * b)
        np.testing.assert_allclose(sd.remainder(sd.tensor(a), b).numpy(),
                                   a - np.floor(a / b) * b)
    assert sd.fmod(sd.tensor([-3.0]), 2.0).item() == -1.0  # PyTorch: -1, not 1
    assert (sd.tensor([-3.0]) % 2.0).item() == 1.0          # % is remainder
    ia = np.array([-7, -3, 4, 7])
    np.testing.assert_array_equal(sd.fmod(sd.tensor(ia), sd.tensor([2, 2, -3, -3])).numpy(),
                                  [-1, -1, 1, 1])
    if T is None:
        oracle_missing("the PyTorch comparison of fmod/remainder")
    else:
        for fn in ("fmod", "remainder", "floor_divide"):
            for b in (2.0, -2.0):
                np.testing.assert_array_equal(getattr(sd, fn)(sd.tensor(a), b).numpy(),
                                              getattr(T, fn)(T.tensor(a), b).numpy(), fn)


def test_floor_divide_rounds_down():
    a, b = np.array([-7, -6, 7, 6]), np.array([2, -4, -4, 4])
    np.testing.assert_array_equal(sd.floor_divide(sd.tensor(a), sd.tensor(b)).numpy(),
                                  np.floor(a / b).astype(np.int64))
    np.testing.assert_array_equal((sd.tensor(a) // sd.tensor(b)).numpy(), [-4, 1, -2, 1])
    x = np.array([-7.5, 7.5])
    np.testing.assert_array_equal(sd.floor_divide(sd.tensor(x), 2.0).numpy(), [-4.0, 3.0])


def test_tile_pads_counts_on_the_left_unlike_repeat():
    x = np.arange(6).reshape(2, 3)
    np.testing.assert_array_equal(sd.tile(sd.tensor(x), (2,)).numpy(), np.tile(x, (2,)))
    np.testing.assert_array_equal(sd.tile(sd.tensor(x), (2, 1, 2)).numpy(),
                                  np.tile(x, (2, 1, 2)))
    np.testing.assert_array_equal(sd.tensor(x).tile(2, 2).numpy(), np.tile(x, (2, 2)))
    with pytest.raises(ValueError, match="repeat"):
        sd.tensor(x).repeat(2)  # repeat needs a count per dimension (as PyTorch)
    check_op(lambda a: sd.tile(a, (3,)), [r(2, 2)], lambda a: np.tile(a, (3,)),
             T and (lambda a: T.tile(a, (3,))))


def test_take_along_dim_broadcasts_and_flattens_unlike_gather():
    x = r(3, 4)
    idx = np.array([[0, 3], [1, 1], [2, 0]])
    check_op(lambda a: sd.take_along_dim(a, sd.tensor(idx), 1), [x],
             lambda a: np.take_along_axis(a, idx, 1),
             T and (lambda a: T.take_along_dim(a, T.from_numpy(idx), 1)))
    row = np.array([[3, 0]])  # broadcast over the rows
    check_op(lambda a: sd.take_along_dim(a, sd.tensor(row), dim=1), [x],
             lambda a: np.take_along_axis(a, np.broadcast_to(row, (3, 2)), 1),
             T and (lambda a: T.take_along_dim(a, T.from_numpy(row), dim=1)))
    flat = np.array([11, 0, 5])
    check_op(lambda a: sd.take_along_dim(a, sd.tensor(flat)), [x],
             lambda a: a.reshape(-1)[flat],
             T and (lambda a: T.take_along_dim(a, T.from_numpy(flat))))
    top = sd.take_along_dim(sd.tensor(x), sd.argsort(sd.tensor(x), dim=1), dim=1)
    np.testing.assert_array_equal(top.numpy(), np.sort(x, 1))
    with pytest.raises(ValueError, match="take_along_dim"):
        sd.take_along_dim(sd.tensor(x), sd.tensor(np.array([0, 1])), 1)


def test_bitwise_operators_on_integers_logical_functions_on_anything():
    a, b = np.array([3, 0, 12, -1]), np.array([5, 1, 10, 7])
    ta, tb = sd.tensor(a), sd.tensor(b)
    np.testing.assert_array_equal((ta & tb).numpy(), a & b)
    np.testing.assert_array_equal((ta | tb).numpy(), a | b)
    np.testing.assert_array_equal((ta ^ tb).numpy(), a ^ b)
    np.testing.assert_array_equal((~ta).numpy(), ~a)
    np.testing.assert_array_equal((6 & ta).numpy(), 6 & a)
    m, n = np.array([True, True, False, False]), np.array([True, False, True, False])
    tm, tn = sd.tensor(m), sd.tensor(n)
    np.testing.assert_array_equal((tm & tn).numpy(), m & n)
    np.testing.assert_array_equal((~tm).numpy(), ~m)
    # the logical_* functions read any dtype as truth values and return bool
    x, y = np.array([0.0, 2.0, -1.0, 0.0]), np.array([0, 0, 3, 1])
    for name in ("logical_and", "logical_or", "logical_xor"):
        got = getattr(sd, name)(sd.tensor(x), sd.tensor(y)).numpy()
        assert got.dtype == np.bool_
        np.testing.assert_array_equal(got, getattr(np, name)(x != 0, y != 0), name)
    np.testing.assert_array_equal(sd.logical_not(sd.tensor(x)).numpy(), x == 0)
    with pytest.raises(TypeError, match="bitwise_and"):
        sd.tensor([1.0]) & sd.tensor([1.0])
    with pytest.raises(TypeError, match="bitwise_not"):
        ~sd.tensor([1.0])


def test_comparisons():
    a, b = np.array([1.0, 2.0, 3.0, np.nan]), np.array([2.0, 2.0, 1.0, np.nan])
    for name, ref in (("eq", np.equal), ("ne", np.not_equal), ("lt", np.less),
                      ("le", np.less_equal), ("gt", np.greater), ("ge", np.greater_equal)):
        np.testing.assert_array_equal(getattr(sd, name)(sd.tensor(a), sd.tensor(b)).numpy(),
                                      ref(a, b), name)


def test_name_aliases_of_the_same_op():
    x = r(2, 3, 4)
    t = sd.tensor(x)
    np.testing.assert_array_equal(sd.movedim(t, 0, -1).numpy(), np.moveaxis(x, 0, -1))
    np.testing.assert_array_equal(sd.moveaxis(t, (0, 1), (2, 0)).numpy(),
                                  np.moveaxis(x, (0, 1), (2, 0)))
    np.testing.assert_array_equal(sd.swapdims(t, 0, 2).numpy(), np.swapaxes(x, 0, 2))
    np.testing.assert_array_equal(sd.expand_dims(t, 1).numpy(), np.expand_dims(x, 1))
    np.testing.assert_array_equal(sd.concat([t, t], 1).numpy(), np.concatenate([x, x], 1))
    v, w = r(3), r(4)
    np.testing.assert_allclose(sd.ger(sd.tensor(v), sd.tensor(w)).numpy(), np.outer(v, w))
    check_op(lambda a: sd.movedim(a, 1, 0), [r(2, 3)], lambda a: np.moveaxis(a, 1, 0),
             T and (lambda a: T.movedim(a, 1, 0)))


# ---------------------------------------------------------------------- movement
def test_narrow_unflatten_vstack_and_shape_likes():
    x = r(4, 6)
    check_op(lambda a: sd.narrow(a, 1, 2, 3), [x], lambda a: a[:, 2:5],
             T and (lambda a: T.narrow(a, 1, 2, 3)))
    check_op(lambda a: sd.narrow(a, 0, -2, 2), [x], lambda a: a[-2:],
             T and (lambda a: T.narrow(a, 0, -2, 2)))
    with pytest.raises(IndexError, match="narrow"):
        sd.narrow(sd.tensor(x), 1, 4, 3)  # past the end: an error, not a shorter slice
    check_op(lambda a: sd.unflatten(a, 1, (2, 3)), [x], lambda a: a.reshape(4, 2, 3),
             T and (lambda a: T.unflatten(a, 1, (2, 3))))
    check_op(lambda a, b: sd.vstack([a, b]), [r(3), r(2, 3)],
             lambda a, b: np.vstack([a, b]), T and (lambda a, b: T.vstack([a, b])))
    y = sd.tensor(r(2, 12))
    assert sd.reshape_as(sd.tensor(x), y).shape == (2, 12)
    assert sd.view_as(sd.tensor(x), y).shape == (2, 12)
    np.testing.assert_array_equal(sd.reshape_as(sd.tensor(x), y).numpy(), x.reshape(2, 12))
    np.testing.assert_array_equal(sd.expand_as(sd.tensor(r(1, 6)), sd.tensor(x)).shape, (4, 6))
    one = r(1, 6)
    a, b = sd.broadcast_tensors(sd.tensor(one), sd.tensor(r(4, 1)))
    assert a.shape == b.shape == (4, 6)
    np.testing.assert_array_equal(a.numpy(), np.broadcast_to(one, (4, 6)))
    np.testing.assert_array_equal(sd.fliplr(sd.tensor(x)).numpy(), np.fliplr(x))
    np.testing.assert_array_equal(sd.flipud(sd.tensor(x)).numpy(), np.flipud(x))


def test_tensor_split_sections_and_indices():
    x = np.arange(7)
    for spec in (3, [1, 5], [2, 2, 9], [-2]):
        got = [t.numpy() for t in sd.tensor_split(sd.tensor(x), spec)]
        want = np.array_split(x, spec)
        assert len(got) == len(want)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)
    x2 = r(3, 5)
    check_op(lambda a: sd.tensor_split(a, 2, dim=1), [x2],
             lambda a: tuple(np.array_split(a, 2, axis=1)),
             T and (lambda a: T.tensor_split(a, 2, dim=1)))


def test_masked_select_nonzero_and_index_put():
    x = r(3, 4)
    mask = x > 0.2
    check_op(lambda a: sd.masked_select(a, sd.tensor(mask)), [x], lambda a: a[mask],
             T and (lambda a: T.masked_select(a, T.from_numpy(mask))))
    m = np.array([[0, 1, 0], [2, 0, 3]])
    np.testing.assert_array_equal(sd.nonzero(sd.tensor(m)).numpy(), np.argwhere(m))
    for got, want in zip(sd.nonzero(sd.tensor(m), as_tuple=True), np.nonzero(m)):
        np.testing.assert_array_equal(got.numpy(), want)
    rows, cols = np.array([0, 2]), np.array([3, 1])

    def put_ref(a, v):
        out = a.copy()
        out[rows, cols] = v
        return out
    check_op(lambda a, v: sd.index_put(a, (sd.tensor(rows), sd.tensor(cols)), v),
             [x, r(2)], put_ref,
             T and (lambda a, v: T.index_put(a, (T.from_numpy(rows), T.from_numpy(cols)), v)))


def test_ceil_mv_and_is_tensor():
    x = np.array([-1.5, -0.5, 0.0, 0.2, 2.0])
    np.testing.assert_array_equal(sd.ceil(sd.tensor(x)).numpy(), np.ceil(x))
    a, v = r(3, 4), r(4)
    check_op(sd.mv, [a, v], lambda a, v: a @ v, T and T.mv)
    assert sd.is_tensor(sd.ones(2)) is True
    assert sd.is_tensor(np.ones(2)) is False and sd.is_tensor(3.0) is False


# ---------------------------------------------------------------------- creation, random
def test_logspace_is_base_to_a_linspace():
    np.testing.assert_allclose(sd.logspace(0, 2, 3).numpy(), [1.0, 10.0, 100.0], rtol=1e-6)
    got = sd.logspace(-1, 1, 7, base=2.0, dtype=sd.float64).numpy()
    np.testing.assert_allclose(got, 2.0 ** np.linspace(-1, 1, 7), rtol=1e-15)
    assert sd.logspace(0, 1, 4).dtype == sd.float32


def test_set_default_dtype_changes_new_float_tensors():
    before = sd.get_default_dtype()
    try:
        sd.set_default_dtype(sd.float64)
        assert sd.tensor([1.5]).dtype == sd.float64 and sd.zeros(2).dtype == sd.float64
        assert sd.tensor([1]).dtype == sd.int64  # integers keep their dtype
    finally:
        sd.set_default_dtype(before)
    assert sd.tensor([1.5]).dtype == before


def test_device_names():
    assert str(sd.Device("cpu")) == "cpu" and str(sd.Device("cuda", 1)) == "cuda:1"
    assert sd.ones(2).device == sd.Device("cpu")


def test_type_converts_like_tensor_type():
    x = sd.tensor([1.7, -2.2])
    assert x.type(sd.float64).dtype == sd.float64
    np.testing.assert_array_equal(x.type(sd.int64).numpy(), np.array([1.7, -2.2]).astype(
        np.int64))


def test_bernoulli_frequencies_and_edges():
    p = np.array([0.0, 0.1, 0.5, 0.9, 1.0])
    n = 20000
    draws = sd.bernoulli(sd.tensor(np.tile(p, (n, 1)))).numpy()
    assert set(np.unique(draws)) <= {0.0, 1.0}
    freq = draws.mean(0)
    assert freq[0] == 0 and freq[-1] == 1
    # within 5 binomial standard deviations of p
    assert (np.abs(freq - p) <= 5 * np.sqrt(p * (1 - p) / n) + 1e-12).all(), freq
    g1, g2 = sd.Generator().manual_seed(3), sd.Generator().manual_seed(3)
    np.testing.assert_array_equal(sd.bernoulli(sd.full((50,), 0.5), generator=g1).numpy(),
                                  sd.bernoulli(sd.full((50,), 0.5), generator=g2).numpy())


def test_multinomial_frequencies_and_without_replacement():
    w = np.array([0.0, 1.0, 3.0, 6.0])
    n = 20000
    draws = sd.multinomial(sd.tensor(w), n, replacement=True).numpy()
    assert draws.dtype == np.int64
    freq = np.bincount(draws, minlength=4) / n
    p = w / w.sum()
    assert freq[0] == 0
    assert (np.abs(freq - p) <= 5 * np.sqrt(p * (1 - p) / n) + 1e-12).all(), freq
    rows = sd.multinomial(sd.tensor(np.tile(w, (50, 1))), 3).numpy()  # without replacement
    assert rows.shape == (50, 3)
    assert all(len(set(row)) == 3 and 0 not in row for row in rows)


# ---------------------------------------------------------------------- nn.functional
def _glu_ref(a, dim=-1):
    x, g = np.split(a, 2, axis=dim)
    return x / (1 + np.exp(-g))


def test_activation_functions_against_closed_forms():
    x = r(3, 4) * 3
    check_op(F.glu, [x], _glu_ref, TF and TF.glu)
    check_op(lambda a: F.glu(a, 0), [r(4, 3)], lambda a: _glu_ref(a, 0),
             TF and (lambda a: TF.glu(a, 0)))
    check_op(F.mish, [x], lambda a: a * np.tanh(np.log1p(np.exp(a))), TF and TF.mish)
    check_op(F.softsign, [x], lambda a: a / (1 + np.abs(a)), TF and TF.softsign)
    check_op(lambda a: F.softmin(a, 1), [x],
             lambda a: np.exp(-a) / np.exp(-a).sum(1, keepdims=True),
             TF and (lambda a: TF.softmin(a, 1)))
    # relu6 and hardtanh: kinks away from the sample points (finite differences)
    y = np.array([-7.1, -3.3, -0.6, 0.4, 2.2, 5.7, 6.8, 0.9])
    check_op(F.relu6, [y], lambda a: np.clip(a, 0, 6), TF and TF.relu6)
    check_op(lambda a: F.hardtanh(a, -2.0, 3.0), [y], lambda a: np.clip(a, -2, 3),
             TF and (lambda a: TF.hardtanh(a, -2.0, 3.0)))


def _conv_transpose1d_ref(x, w, b, stride, padding):
    n, c, length = x.shape
    _, o, k = w.shape
    full = np.zeros((n, o, (length - 1) * stride + k))
    for i in range(length):
        full[:, :, i * stride:i * stride + k] += np.einsum("nc,cok->nok", x[:, :, i], w)
    out = full[:, :, padding:full.shape[2] - padding]
    return out + b[None, :, None]


def test_conv_transpose1d_against_a_loop():
    x, w, b = r(2, 3, 5), r(3, 4, 3), r(4)
    check_op(lambda a, c, d: F.conv_transpose1d(a, c, d, stride=2, padding=1), [x, w, b],
             lambda a, c, d: _conv_transpose1d_ref(a, c, d, 2, 1),
             TF and (lambda a, c, d: TF.conv_transpose1d(a, c, d, stride=2, padding=1)))


def _instance_norm_ref(x, w, b, eps=1e-5):
    axes = tuple(range(2, x.ndim))
    mu = x.mean(axes, keepdims=True)
    var = x.var(axes, keepdims=True)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return (x - mu) / np.sqrt(var + eps) * w.reshape(shape) + b.reshape(shape)


def test_instance_norm_against_the_definition():
    check_op(lambda x, w, b: F.instance_norm(x, weight=w, bias=b), [r(2, 3, 4, 5), r(3), r(3)],
             _instance_norm_ref,
             TF and (lambda x, w, b: TF.instance_norm(x, weight=w, bias=b)))


@pytest.mark.parametrize("fn,shape", [(F.dropout1d, (40, 30, 7)), (F.dropout2d, (40, 30, 3, 4))])
def test_channel_dropout_zeroes_whole_channels(fn, shape):
    x = sd.ones(*shape)
    y = fn(x, p=0.25, training=True).numpy()
    per_channel = y.reshape(shape[0], shape[1], -1)
    # each channel is all zeros or all 1 / (1 - p): whole channels are dropped
    assert np.all((per_channel == 0).all(-1) | np.isclose(per_channel, 1 / 0.75).all(-1))
    dropped = (per_channel == 0).all(-1).mean()
    n = shape[0] * shape[1]
    assert abs(dropped - 0.25) <= 5 * np.sqrt(0.25 * 0.75 / n)
    np.testing.assert_array_equal(fn(x, p=0.25, training=False).numpy(), x.numpy())


# ---------------------------------------------------------------------- nn modules
def test_batchnorm3d_normalises_over_batch_and_volume():
    x = r(4, 3, 2, 3, 2)
    m = nn.BatchNorm3d(3).double()
    y = m(sd.tensor(x)).detach().numpy()
    mu = x.mean((0, 2, 3, 4), keepdims=True)
    var = x.var((0, 2, 3, 4), keepdims=True)
    np.testing.assert_allclose(y, (x - mu) / np.sqrt(var + 1e-5), atol=1e-12)
    n = x.size // 3
    np.testing.assert_allclose(m.running_mean.numpy(), 0.1 * mu.ravel(), atol=1e-12)
    np.testing.assert_allclose(m.running_var.numpy(), 0.9 + 0.1 * var.ravel() * n / (n - 1),
                               atol=1e-12)
    with pytest.raises(ValueError):
        m(sd.tensor(r(4, 3, 2)))


def test_upsampling_modules_against_numpy():
    x = r(1, 2, 3, 3)
    near = nn.UpsamplingNearest2d(scale_factor=2)(sd.tensor(x)).numpy()
    np.testing.assert_array_equal(near, x.repeat(2, 2).repeat(2, 3))
    lin = nn.UpsamplingBilinear2d(size=(5, 5))(sd.tensor(x)).numpy()
    # align_corners=True: output pixel i samples input position i * (3 - 1) / (5 - 1)
    pos = np.arange(5) * 2 / 4
    lo = np.minimum(np.floor(pos).astype(int), 1)
    f = pos - lo
    rows = x[:, :, lo] * (1 - f)[:, None] + x[:, :, lo + 1] * f[:, None]
    want = rows[..., lo] * (1 - f) + rows[..., lo + 1] * f
    np.testing.assert_allclose(lin, want, atol=1e-12)


def test_rnn_cell_base_is_the_cells_common_parent():
    for cell, chunks in ((nn.RNNCell, 1), (nn.LSTMCell, 4), (nn.GRUCell, 3)):
        m = cell(3, 5)
        assert isinstance(m, nn.RNNCellBase)
        assert m.weight_ih.shape == (chunks * 5, 3) and m.weight_hh.shape == (chunks * 5, 5)
    # as in PyTorch, every weight starts uniform in +-1/sqrt(hidden_size)
    base = nn.RNNCellBase(3, 16, True, 2)
    for p in base.parameters():
        assert np.abs(p.detach().numpy()).max() <= 1 / 4


def test_take_along_dim_along_the_first_dim():
    check_op(lambda a, i: sd.take_along_dim(a, i, 0), [r(3, 2), Arg(np.array([[2, 0]]))],
             lambda a, i: np.take_along_axis(a, i, 0))


# ---------------------------------------------------------------------- predicates, misc
def test_closeness_and_special_value_predicates():
    a = np.array([1.0, np.nan, np.inf, -np.inf, 0.0, 1e-9])
    b = np.array([1.0 + 1e-7, np.nan, np.inf, np.inf, 1e-9, 0.0])
    for equal_nan in (False, True):
        np.testing.assert_array_equal(
            sd.isclose(sd.tensor(a), sd.tensor(b), equal_nan=equal_nan).numpy(),
            np.isclose(a, b, equal_nan=equal_nan))
    assert sd.allclose(sd.tensor(a[[0, 4]]), sd.tensor(b[[0, 4]])) is True
    assert sd.allclose(sd.tensor(a), sd.tensor(b)) is False
    assert sd.allclose(sd.tensor(a[:3]), sd.tensor(b[:3]), equal_nan=True) is True
    for name in ("isnan", "isinf", "isfinite"):
        np.testing.assert_array_equal(getattr(sd, name)(sd.tensor(a)).numpy(),
                                      getattr(np, name)(a), name)
    assert sd.equal(sd.tensor([1, 2]), sd.tensor([1, 2])) is True
    assert sd.equal(sd.tensor([1, 2]), sd.tensor([1, 3])) is False
    assert sd.equal(sd.tensor([1, 2]), sd.tensor([[1, 2]])) is False  # shapes differ


def test_round_sign_clip():
    x = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 0.49, -3.7])
    np.testing.assert_array_equal(sd.round(sd.tensor(x)).numpy(), np.round(x))  # half to even
    np.testing.assert_array_equal(sd.sign(sd.tensor(x)).numpy(), np.sign(x))
    check_op(lambda a: sd.clip(a, -1.0, 2.0), [np.array([-3.1, -0.5, 0.7, 2.9])],
             lambda a: np.clip(a, -1.0, 2.0), T and (lambda a: T.clip(a, -1.0, 2.0)))


def test_hstack_concatenate_getitem_contiguous_int16():
    a, b = r(2, 3), r(2, 2)
    check_op(lambda p, q: sd.hstack([p, q]), [a, b], lambda p, q: np.hstack([p, q]),
             T and (lambda p, q: T.hstack([p, q])))
    check_op(lambda p, q: sd.concatenate([p, q], axis=1), [a, b],
             lambda p, q: np.concatenate([p, q], axis=1))
    v = r(5)
    np.testing.assert_array_equal(sd.hstack([sd.tensor(v), sd.tensor(v)]).numpy(),
                                  np.hstack([v, v]))
    x = r(3, 4)
    check_op(lambda p: p[:, [0, 2]], [x], lambda p: p[:, [0, 2]])
    t = sd.tensor(x).t()
    c = sd.contiguous(t)
    assert c.numpy().flags.c_contiguous and not t.numpy().flags.c_contiguous
    np.testing.assert_array_equal(c.numpy(), x.T)
    i16 = sd.tensor([1, -2, 30000], dtype=sd.int16)
    assert i16.dtype == sd.int16 == np.int16 and i16.numpy().dtype == np.int16
