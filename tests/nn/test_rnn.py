"""Recurrent layers: PyTorch parity (values and every gradient), fused vs composed path,
finite-difference gradients, forward mode, and the errors users see."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

import shendu as sd
from shendu.nn.layers.rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell

T, N, I, H = 4, 3, 5, 6
MODES = {"lstm": (LSTM, {}), "gru": (GRU, {}), "rnn_tanh": (RNN, {}),
         "rnn_relu": (RNN, {"nonlinearity": "relu"})}


def _arr(t):
    return np.asarray(t.detach())


def _make(mode, **kw):
    cls, extra = MODES[mode]
    return cls(I, H, dtype=sd.float64, **extra, **kw)


def _inputs(mode, m, rng, batched=True, with_state=True):
    d = (2 if m.bidirectional else 1) * m.num_layers
    if batched:
        xs = (N, T, I) if m.batch_first else (T, N, I)
        hs = (d, N, H)
    else:
        xs, hs = (T, I), (d, H)
    x = rng.standard_normal(xs)
    states = [rng.standard_normal(hs) for _ in range(2 if mode == "lstm" else 1)]
    return x, (states if with_state else None)


def _run_sd(m, mode, x, states):
    xt = sd.tensor(x, requires_grad=True)
    st = None if states is None else [sd.tensor(s, requires_grad=True) for s in states]
    hx = None if st is None else (tuple(st) if mode == "lstm" else st[0])
    out, hn = m(xt, hx)
    finals = list(hn) if mode == "lstm" else [hn]
    return xt, st, out, finals


def _loss(outs, weights, lib):
    return sum((o * lib.tensor(w)).sum() for o, w in zip(outs, weights))


CASES = list(itertools.product(MODES, [1, 2], [False, True], [False, True], [False, True]))


@pytest.mark.parametrize("mode,layers,bidir,batch_first,with_state", CASES)
def test_matches_torch_values_and_all_gradients(mode, layers, bidir, batch_first, with_state):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(hash((mode, layers, bidir, batch_first)) % 2**32)
    kw = dict(num_layers=layers, bidirectional=bidir, batch_first=batch_first, dropout=0.3)
    with pytest.warns(UserWarning) if layers == 1 else _nullcontext():
        m = _make(mode, **kw)
    tcls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}.get(mode, torch.nn.RNN)
    textra = {"nonlinearity": "relu"} if mode == "rnn_relu" else {}
    with pytest.warns(UserWarning) if layers == 1 else _nullcontext():
        tm = tcls(I, H, **textra, **kw).double().eval()
    m.eval()
    assert list(m.state_dict()) == list(tm.state_dict())
    m.load_state_dict({k: v.numpy() for k, v in tm.state_dict().items()})

    x, states = _inputs(mode, m, rng, with_state=with_state)
    xt, st, out, finals = _run_sd(m, mode, x, states)
    tx = torch.tensor(x, requires_grad=True)
    tst = None if states is None else [torch.tensor(s, requires_grad=True) for s in states]
    thx = None if tst is None else (tuple(tst) if mode == "lstm" else tst[0])
    tout, thn = tm(tx, thx)
    tfinals = list(thn) if mode == "lstm" else [thn]

    for a, b in zip([out] + finals, [tout] + tfinals):
        np.testing.assert_allclose(_arr(a), b.detach().numpy(), rtol=1e-6, atol=1e-9)
    ws = [rng.standard_normal(o.shape) for o in [out] + finals]
    _loss([out] + finals, ws, sd).backward()
    _loss([tout] + tfinals, ws, torch).backward()
    np.testing.assert_allclose(_arr(xt.grad), tx.grad.numpy(), rtol=1e-6, atol=1e-9)
    for a, b in zip(st or [], tst or []):
        np.testing.assert_allclose(_arr(a.grad), b.grad.numpy(), rtol=1e-6, atol=1e-9)
    for (name, p), (tname, tp) in zip(m.named_parameters(), tm.named_parameters()):
        assert name == tname
        np.testing.assert_allclose(_arr(p.grad), tp.grad.numpy(), rtol=1e-6, atol=1e-9,
                                   err_msg=name)


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


@pytest.mark.parametrize("mode,batch_first", [(m, m == "gru") for m in MODES])
def test_unbatched_input_matches_torch(mode, batch_first):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    m = _make(mode, num_layers=2, bidirectional=True, batch_first=batch_first)
    tcls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}.get(mode, torch.nn.RNN)
    textra = {"nonlinearity": "relu"} if mode == "rnn_relu" else {}
    tm = tcls(I, H, num_layers=2, bidirectional=True, batch_first=batch_first,
              **textra).double()
    m.load_state_dict({k: v.numpy() for k, v in tm.state_dict().items()})
    x, states = _inputs(mode, m, rng, batched=False)
    xt, st, out, finals = _run_sd(m, mode, x, states)
    thx = [torch.tensor(s) for s in states]
    tout, thn = tm(torch.tensor(x), tuple(thx) if mode == "lstm" else thx[0])
    assert out.shape == tuple(tout.shape) and finals[0].shape == (4, H)
    np.testing.assert_allclose(_arr(out), tout.detach().numpy(), rtol=1e-6, atol=1e-9)
    for a, b in zip(finals, thn if mode == "lstm" else [thn]):
        np.testing.assert_allclose(_arr(a), b.detach().numpy(), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("cls,tname", [(RNNCell, "RNNCell"), (LSTMCell, "LSTMCell"),
                                       (GRUCell, "GRUCell")])
def test_cells_match_torch(cls, tname):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    m, tm = cls(I, H, dtype=sd.float64), getattr(torch.nn, tname)(I, H).double()
    assert list(m.state_dict()) == list(tm.state_dict())
    m.load_state_dict({k: v.numpy() for k, v in tm.state_dict().items()})
    x = rng.standard_normal((N, I))
    hs = [rng.standard_normal((N, H)) for _ in range(2 if cls is LSTMCell else 1)]
    xt, tx = sd.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out = m(xt, tuple(sd.tensor(h) for h in hs) if cls is LSTMCell else sd.tensor(hs[0]))
    tout = tm(tx, tuple(torch.tensor(h) for h in hs) if cls is LSTMCell else torch.tensor(hs[0]))
    out, tout = (out if isinstance(out, tuple) else (out,)), (
        tout if isinstance(tout, tuple) else (tout,))
    for a, b in zip(out, tout):
        np.testing.assert_allclose(_arr(a), b.detach().numpy(), rtol=1e-6, atol=1e-9)
    sum(o.sum() for o in out).backward()
    sum(o.sum() for o in tout).backward()
    np.testing.assert_allclose(_arr(xt.grad), tx.grad.numpy(), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(_arr(m.weight_hh.grad), tm.weight_hh.grad.numpy(), rtol=1e-6)
    # unbatched
    assert m(sd.tensor(x[0])).__class__ in (tuple, sd.Tensor)


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("bias", [True, False])
def test_fused_matches_composed_reference(mode, bias):
    rng = np.random.default_rng(3)
    m = _make(mode, num_layers=2, bidirectional=True, bias=bias)
    x, states = _inputs(mode, m, rng)
    results = []
    for fused in (True, False):
        m.fused = fused
        m.zero_grad()
        xt, st, out, finals = _run_sd(m, mode, x, states)
        _loss([out] + finals, [np.cos(np.arange(o.numel())).reshape(o.shape)
                               for o in [out] + finals], sd).backward()
        results.append([_arr(out)] + [_arr(f) for f in finals] + [_arr(xt.grad)]
                       + [_arr(s.grad) for s in st] + [_arr(p.grad) for p in m.parameters()])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_fused_lstm_float32_close_to_float64_reference():
    rng = np.random.default_rng(4)
    m64 = LSTM(I, H, num_layers=2, dtype=sd.float64)
    m32 = LSTM(I, H, num_layers=2)
    m32.load_state_dict(m64.state_dict())
    m64.fused = False
    x = rng.standard_normal((T, N, I))
    o64, _ = m64(sd.tensor(x))
    o32, _ = m32(sd.tensor(x.astype(np.float32)))
    assert o32.dtype == np.float32
    np.testing.assert_allclose(_arr(o32), _arr(o64), atol=2e-6)


@pytest.mark.parametrize("mode", list(MODES))
def test_gradcheck_layer(mode):
    rng = np.random.default_rng(5)
    cls, extra = MODES[mode]
    m = cls(2, 3, num_layers=2, bidirectional=True, dtype=sd.float64, **extra)
    x = sd.tensor(rng.standard_normal((3, 2, 2)), requires_grad=True)
    h0 = sd.tensor(rng.standard_normal((4, 2, 3)), requires_grad=True)
    c0 = sd.tensor(rng.standard_normal((4, 2, 3)), requires_grad=True)
    params = list(m.parameters())

    def f(x, *states):
        out, hn = m(x, tuple(states) if mode == "lstm" else states[0])
        return (out, *hn) if mode == "lstm" else (out, hn)

    states = (h0, c0) if mode == "lstm" else (h0,)
    assert sd.autograd.gradcheck(f, (x, *states), atol=1e-6)
    # the weights, through the layer primitive itself (one layer, both directions)
    layer = {"lstm": sd.ops.rnn_ops.LSTMLayer, "gru": sd.ops.rnn_ops.GRULayer}.get(
        mode, sd.ops.rnn_ops.RNNLayer)
    w = [sd.tensor(p._data.copy(), requires_grad=True) for p in params[:4]]
    kw = {"nonlinearity": mode[4:]} if mode.startswith("rnn") else {}
    states = tuple(s[0] for s in states)
    for reverse in (False, True):
        assert sd.autograd.gradcheck(
            lambda x, *a, r=reverse: layer.apply(x, *a, reverse=r, **kw), (x, *states, *w),
            atol=1e-6)


@pytest.mark.parametrize("mode", list(MODES))
def test_forward_mode_matches_finite_differences(mode):
    rng = np.random.default_rng(6)
    layer = {"lstm": sd.ops.rnn_ops.LSTMLayer, "gru": sd.ops.rnn_ops.GRULayer}.get(
        mode, sd.ops.rnn_ops.RNNLayer)
    g = {"lstm": 4, "gru": 3}.get(mode, 1)
    kw = {"nonlinearity": mode[4:]} if mode.startswith("rnn") else {}
    shapes = [(T, N, I), (N, H)] + [(N, H)] * (mode == "lstm") + [
        (g * H, I), (g * H, H), (g * H,), (g * H,)]
    prim = [rng.standard_normal(s) for s in shapes]
    tan = [rng.standard_normal(s) for s in shapes]
    for reverse in (False, True):
        def f(*a, r=reverse):
            return layer.apply(*a, reverse=r, **kw)
        _, jt = sd.autograd.jvp(f, [sd.tensor(a) for a in prim], [sd.tensor(a) for a in tan])
        eps = 1e-6
        fp = f(*[sd.tensor(a + eps * b) for a, b in zip(prim, tan)])
        fm = f(*[sd.tensor(a - eps * b) for a, b in zip(prim, tan)])
        for p, q, j in zip(fp, fm, jt):
            np.testing.assert_allclose((_arr(p) - _arr(q)) / (2 * eps), _arr(j), atol=1e-6)


@pytest.mark.parametrize("mode", list(MODES))
def test_no_grad_forward_matches_recorded_forward(mode):
    m = _make(mode, num_layers=2, bidirectional=True)
    x = sd.tensor(np.random.default_rng(12).standard_normal((T, N, I)))
    with sd.no_grad():
        a, _ = m(x)
    b, _ = m(x)
    assert a.grad_fn is None and b.grad_fn is not None
    np.testing.assert_array_equal(_arr(a), _arr(b))


def test_backward_twice_with_retain_graph_and_freed_graph_error():
    m = LSTM(I, H, dtype=sd.float64)
    x = sd.tensor(np.ones((T, N, I)), requires_grad=True)
    out, (h, c) = m(x)
    loss = out.sum() + h.sum() + c.sum()
    loss.backward(retain_graph=True)
    g1 = _arr(x.grad).copy()
    loss.backward()
    np.testing.assert_allclose(_arr(x.grad), 2 * g1)
    with pytest.raises(RuntimeError, match="second time"):
        loss.backward()


def test_dropout_between_layers_only_in_training():
    sd.manual_seed(0)
    m = LSTM(I, H, num_layers=2, dropout=0.5)
    x = sd.randn(T, N, I)
    a, _ = m(x)
    b, _ = m(x)
    assert not np.allclose(_arr(a), _arr(b))
    m.eval()
    np.testing.assert_array_equal(_arr(m(x)[0]), _arr(m(x)[0]))


def test_parameter_names_shapes_and_init_range():
    m = GRU(I, H, num_layers=2, bidirectional=True)
    shapes = {k: v.shape for k, v in m.state_dict().items()}
    assert shapes["weight_ih_l0"] == (3 * H, I)
    assert shapes["weight_ih_l1_reverse"] == (3 * H, 2 * H)
    assert shapes["bias_hh_l1_reverse"] == (3 * H,)
    bound = 1 / np.sqrt(H)
    assert all(np.abs(_arr(p)).max() <= bound for p in m.parameters())
    assert len(m.all_weights) == 4 and len(m.all_weights[0]) == 4
    assert "LSTM(5, 6, num_layers=2, bidirectional=True)" == repr(
        LSTM(I, H, num_layers=2, bidirectional=True))


def test_clear_errors():
    m = LSTM(I, H, num_layers=2)
    with pytest.raises(ValueError, match="input_size: expected 5, got input of shape"):
        m(sd.zeros(T, N, I + 1))
    with pytest.raises(ValueError, match=r"expected initial state of shape \(2, 3, 6\)"):
        m(sd.zeros(T, N, I), (sd.zeros(1, N, H), sd.zeros(1, N, H)))
    with pytest.raises(ValueError, match="expected 2 initial state"):
        m(sd.zeros(T, N, I), (sd.zeros(2, N, H),))
    with pytest.raises(ValueError, match="2-D .* or 3-D"):
        m(sd.zeros(1, T, N, I))
    with pytest.raises(TypeError, match="dtype"):
        m(sd.zeros(T, N, I, dtype=sd.float64))
    with pytest.raises(ValueError, match="nonlinearity"):
        RNN(I, H, nonlinearity="sigmoid")
    with pytest.raises(NotImplementedError, match="proj_size"):
        LSTM(I, H, proj_size=2)
    with pytest.raises(ValueError, match="hidden state 0 has shape"):
        GRUCell(I, H)(sd.zeros(N, I), sd.zeros(N + 1, H))
    with pytest.raises(ValueError, match="LSTMCell: input has 4 features"):
        LSTMCell(I, H)(sd.zeros(N, I - 1))
