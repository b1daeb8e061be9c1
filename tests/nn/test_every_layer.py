"""One table, every layer that the nn issue lists (and the two distance modules), four
checks per row:

1. the constructor takes PyTorch's argument names, order and defaults;
2. default initialisation draws from the same distributions as PyTorch's (KS test);
3. a PyTorch state dict loads unchanged, after which the outputs and the gradients of the
   inputs and of every parameter equal PyTorch's (float64, 1e-6), in eval mode and (but
   for layers that draw random masks there) in train mode;
4. float64 finite-difference gradcheck of the inputs and every parameter, in both modes
   (random layers reseeded before each evaluation, so the masks stay fixed).

RNN/LSTM/GRU take checks 1-2 here; their parity and gradchecks (every
num_layers/bidirectional/batch_first combination) live in tests/nn/test_rnn.py. More
configurations of the same layers (padding modes, groups, ceil_mode, ...) are compared
with torch in tests/nn/test_layers.py.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field

import numpy as np
import pytest

import shendu as sd
from shendu import nn


@dataclass
class Row:
    name: str
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    # inputs: a shape (standard-normal floats) or ("idx", shape, high) (integer indices)
    inputs: list = field(default_factory=list)
    init: tuple | None = None    # (args, kwargs) with enough weights for a KS test
    random: bool = False         # draws masks in train mode: torch can't be matched there
    parity: bool = True          # False: compared with torch in another test file
    torch_ref: str | None = None  # the torch layer a shendu-only layer must equal
    # kwargs for the gradcheck where a row's gradient is by design not the derivative
    # (Embedding's padding_idx row never learns); None: the row's own kwargs
    fd_kwargs: dict | None = None
    lstm_state: bool = False     # inputs are (x, h, c), called as layer(x, (h, c))


ROWS = [
    Row("Linear", (5, 3), {}, [(4, 5)], init=((300, 200), {})),
    Row("Conv1d", (4, 6, 3), {"stride": 2, "padding": 1, "groups": 2}, [(2, 4, 9)],
        init=((8, 64, 5), {})),
    Row("Conv2d", (3, 4, 3), {"padding": 1}, [(2, 3, 5, 5)], init=((16, 32, 3), {})),
    Row("ConvTranspose2d", (4, 2, 3), {"stride": 2, "padding": 1, "output_padding": 1},
        [(2, 4, 3, 3)], init=((16, 32, 3), {"groups": 4})),
    Row("MaxPool2d", (2,), {}, [(2, 3, 4, 4)]),
    Row("AvgPool2d", (3, 2, 1), {}, [(2, 3, 5, 4)]),
    Row("AdaptiveAvgPool2d", ((3, 2),), {}, [(2, 3, 5, 4)]),
    Row("BatchNorm1d", (3,), {"momentum": 0.2}, [(6, 3)], init=((300,), {})),
    Row("BatchNorm2d", (3,), {}, [(4, 3, 2, 3)], init=((300,), {})),
    Row("LayerNorm", ((3, 4),), {}, [(2, 5, 3, 4)], init=((300,), {})),
    Row("Dropout", (0.3,), {}, [(4, 6)], random=True),
    Row("DropConnect", (5, 3), {"p": 0.4}, [(4, 5)], init=((300, 200), {}), random=True,
        torch_ref="Linear"),
    Row("Maxout", (4, 3, 2), {}, [(5, 4)], init=((300, 100, 2), {}), torch_ref="Linear"),
    Row("Embedding", (7, 3), {"padding_idx": 2}, [("idx", (4, 5), 7)],
        init=((300, 200), {}), fd_kwargs={}),
    Row("MultiheadAttention", (4, 2), {"kdim": 3, "vdim": 5}, [(3, 2, 4), (4, 2, 3), (4, 2, 5)],
        init=((64, 4), {})),
    Row("TransformerEncoderLayer", (4, 2, 6), {"dropout": 0.2}, [(3, 2, 4)],
        init=((32, 4, 64), {}), random=True),
    Row("TransformerDecoderLayer", (4, 2, 6), {"dropout": 0.2, "norm_first": True},
        [(3, 2, 4), (2, 2, 4)], init=((32, 4, 64), {}), random=True),
    Row("CosineSimilarity", (), {"dim": -1}, [(4, 3, 5), (3, 5)]),
    Row("PairwiseDistance", (1.5,), {"keepdim": True}, [(4, 5), (4, 5)]),
    Row("ReLU", inputs=[(3, 4)]),
    Row("LeakyReLU", (0.2,), {}, [(3, 4)]),
    Row("ELU", (0.7,), {}, [(3, 4)]),
    Row("GELU", inputs=[(3, 4)]),
    Row("Sigmoid", inputs=[(3, 4)]),
    Row("Tanh", inputs=[(3, 4)]),
    Row("Softmax", (), {"dim": 1}, [(3, 4)]),
    Row("LogSoftmax", (), {"dim": -1}, [(2, 3, 4)]),
    Row("PReLU", (3,), {"init": 0.1}, [(2, 3, 4)]),
    Row("InstanceNorm1d", (3,), {"affine": True, "track_running_stats": True},
        [(2, 3, 5)]),
    Row("InstanceNorm2d", (3,), {"momentum": 0.3}, [(2, 3, 3, 4)]),
    Row("ReflectionPad2d", ((1, 2, 2, 0),), {}, [(2, 3, 3, 4)]),
    Row("ReplicationPad1d", (2,), {}, [(2, 3, 4)]),
    Row("ZeroPad2d", (1,), {}, [(2, 2, 3)]),
    Row("ConstantPad1d", ((2, 1), 0.5), {}, [(2, 3, 2)]),
    Row("PixelShuffle", (2,), {}, [(2, 8, 2, 3)]),
    Row("PixelUnshuffle", (2,), {}, [(2, 2, 4, 2)]),
    Row("Bilinear", (3, 4, 2), {}, [(5, 3), (5, 4)], init=((200, 4, 300), {})),
    Row("Unflatten", (1, (2, 3)), {}, [(4, 6)]),
    # parity and gradchecks: tests/nn/test_rnn.py
    *[Row(n, (3, 4), {}, init=((100, 64), {"num_layers": 2, "bidirectional": True}),
          parity=False) for n in ("RNN", "LSTM", "GRU")],
    # test_rnn.py compares the cells' outputs with torch's; here also the gradients of the
    # states and of every weight, and a gradcheck
    Row("RNNCell", (3, 4), {"nonlinearity": "relu"}, [(2, 3), (2, 4)], init=((100, 64), {})),
    Row("LSTMCell", (3, 4), {}, [(2, 3), (2, 4), (2, 4)], init=((100, 64), {}),
        lstm_state=True),
    Row("GRUCell", (3, 4), {"bias": False}, [(2, 3), (2, 4)], init=((100, 64), {})),
]
IDS = [r.name for r in ROWS]


def _np(t):
    return np.asarray(t.detach())


def _torch_class(torch, row):
    return getattr(torch.nn, row.torch_ref or row.name)


# ----------------------------------------------------------------------------- 1. signature
def _torch_signature(torch, row):
    """PyTorch's constructor parameters as (name, default) pairs, without ``self``."""
    cls = _torch_class(torch, row)
    if row.name in ("RNN", "LSTM", "GRU"):  # these take *args and hand them to RNNBase
        params = list(inspect.signature(torch.nn.RNNBase.__init__).parameters.values())[2:]
        names = [(p.name, p.default) for p in params]
        if row.name == "RNN":
            names.insert(3, ("nonlinearity", "tanh"))
        if row.name != "LSTM":
            names = [(n, d) for n, d in names if n != "proj_size"]
        return names
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    if [p.kind for p in params] == [inspect.Parameter.VAR_POSITIONAL,
                                    inspect.Parameter.VAR_KEYWORD]:
        return []  # Sigmoid, Tanh: no arguments of their own (Module.__init__'s signature)
    return [(p.name, p.default) for p in params]


def _same_default(ours, theirs):
    if callable(theirs) and isinstance(ours, str):  # activation=F.relu <-> "relu"
        return theirs.__name__ == ours
    return ours == theirs or (ours is theirs)


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_constructor_arguments_are_torchs(row):
    torch = pytest.importorskip("torch")
    ours = [(p.name, p.default)
            for p in list(inspect.signature(getattr(nn, row.name).__init__).parameters.values())
            [1:]]
    want = _torch_signature(torch, row)
    if row.name == "DropConnect":  # Linear's arguments plus the drop probability
        want.insert(2, ("p", 0.5))
    elif row.name == "Maxout":  # Linear's, plus the number of pieces per output unit
        want.insert(2, ("pool_size", inspect.Parameter.empty))
    assert [n for n, _ in ours] == [n for n, _ in want]
    for (name, a), (_, b) in zip(ours, want):
        assert _same_default(a, b), f"{row.name}({name}=...): default {a!r}, torch has {b!r}"


# ----------------------------------------------------------------------------- 2. init
INIT_ROWS = [r for r in ROWS if r.init is not None]


def _torch_twin(torch, row, args, kwargs, dtype=None):
    """The torch layer whose state dict ours must load (for Maxout: all its pieces)."""
    cls = _torch_class(torch, row)
    if row.name == "Maxout":
        n_in, n_out, pool = args
        layer = cls(n_in, n_out * pool, **kwargs)
    elif row.name == "DropConnect":
        layer = cls(*args, **{k: v for k, v in kwargs.items() if k != "p"})
    else:
        layer = cls(*args, **kwargs)
    return layer if dtype is None else layer.to(dtype)


@pytest.mark.parametrize("row", INIT_ROWS, ids=[r.name for r in INIT_ROWS])
def test_default_init_distribution_matches_torch(row):
    torch = pytest.importorskip("torch")
    stats = pytest.importorskip("scipy.stats")
    args, kwargs = row.init
    torch.manual_seed(0)
    sd.manual_seed(0)
    ours = getattr(nn, row.name)(*args, **kwargs).state_dict()
    theirs = _torch_twin(torch, row, args, kwargs).state_dict()
    assert list(ours) == list(theirs)
    for key, v in ours.items():
        a, b = v.numpy(), theirs[key].numpy()
        assert a.shape == b.shape and a.dtype == b.dtype, key
        if np.all(b == b.flat[0]):  # constants: ones, zeros, counters
            assert np.array_equal(a, b), key
            continue
        assert stats.ks_2samp(a.ravel(), b.ravel()).pvalue > 1e-3, key
        if a.size >= 5000:  # bounded draws share their bounds (both nearly reach them)
            assert np.abs(a).max() <= np.abs(b).max() * 1.02, key


# ----------------------------------------------------------------------------- 3. parity
PARITY_ROWS = [r for r in ROWS if r.parity]


def _inputs(row, rng):
    out = []
    for spec in row.inputs:
        if spec[0] == "idx":
            out.append(rng.integers(0, spec[2], spec[1]))
        else:
            out.append(rng.standard_normal(spec) * 1.5 + 0.3)
    return out


def _outputs(out):
    return list(out) if isinstance(out, tuple) else [out]


class _TorchMaxout:
    """The reference for Maxout: torch's Linear, then the max over each unit's pieces."""

    def __init__(self, linear, pool):
        self.linear, self.pool = linear, pool

    def __call__(self, x):
        z = self.linear(x)
        return z.view(*z.shape[:-1], -1, self.pool).max(-1).values


def _call(row, layer, ts):
    return layer(ts[0], tuple(ts[1:])) if row.lstm_state else layer(*ts)


def _run(row, layer, xs, grads, lib, rng=None):
    """Forward, then backward of sum(output_i * grads_i); returns outputs and input grads.
    With ``rng``, ``grads`` (empty) is first filled with random output cotangents."""
    ts = [lib.tensor(x, requires_grad=x.dtype.kind == "f") for x in xs]
    outs = _outputs(_call(row, layer, ts))
    if rng is not None:
        grads.extend(rng.standard_normal(o.shape) for o in outs)
    total = sum((o * lib.tensor(g)).sum() for o, g in zip(outs, grads))
    total.backward()
    return [_np(o) for o in outs], [None if t.grad is None else _np(t.grad) for t in ts]


@pytest.mark.parametrize("row", PARITY_ROWS, ids=[r.name for r in PARITY_ROWS])
def test_torch_weights_give_torchs_outputs_and_gradients(row):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    twin = _torch_twin(torch, row, row.args, row.kwargs, torch.float64)
    ours = getattr(nn, row.name)(*row.args, **row.kwargs).double()
    ours.load_state_dict(twin.state_dict())  # torch's tensors as they are; strict: the
    # same names and shapes (keep_vars=True: parameters that require grad, loaded too)
    ours.load_state_dict(twin.state_dict(keep_vars=True))
    theirs = _TorchMaxout(twin, row.args[2]) if row.name == "Maxout" else twin
    if row.torch_ref is None and "MultiheadAttention" not in repr(twin):
        # (torch prints its attention's out_proj as NonDynamicallyQuantizableLinear)
        assert repr(ours) == repr(twin)
    modes = [False] if row.random else [True, True, False]  # BatchNorm stats accumulate
    for training in modes:
        ours.train(training)
        twin.train(training)
        xs = _inputs(row, rng)
        grads = []
        got, got_dx = _run(row, ours, xs, grads, sd, rng)
        want, want_dx = _run(row, theirs, xs, grads, torch)
        for i, (a, b) in enumerate(zip(got, want)):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6, err_msg=f"output {i}")
        for i, (a, b) in enumerate(zip(got_dx, want_dx)):
            if b is not None:
                np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6,
                                           err_msg=f"gradient of input {i}")
        tparams = dict(twin.named_parameters())
        for name, p in ours.named_parameters():
            np.testing.assert_allclose(_np(p.grad), _np(tparams[name].grad), rtol=1e-6,
                                       atol=1e-6, err_msg=f"gradient of {name}")
            p.grad, tparams[name].grad = None, None
        tstate = twin.state_dict()
        for name, v in ours.state_dict().items():  # running statistics, batch counters
            np.testing.assert_allclose(_np(v), _np(tstate[name]), rtol=1e-6, atol=1e-6,
                                       err_msg=f"state {name}")


# ----------------------------------------------------------------------------- 4. gradcheck
@pytest.mark.parametrize("row", PARITY_ROWS, ids=[r.name for r in PARITY_ROWS])
def test_gradcheck_float64_inputs_and_parameters(row):
    rng = np.random.default_rng(1)
    kwargs = row.kwargs if row.fd_kwargs is None else row.fd_kwargs
    layer = getattr(nn, row.name)(*row.args, **kwargs).double()
    xs = [sd.tensor(x, requires_grad=x.dtype.kind == "f") for x in _inputs(row, rng)]
    params = list(layer.parameters())  # perturbed in place, so the layer sees the change
    inputs = xs + params

    def fn(*args):
        if row.random:  # the same dropout masks on every evaluation: a fixed function
            sd.manual_seed(123)
        return _call(row, layer, args[:len(xs)])

    for training in (True, False):
        layer.train(training)
        if sum(t.numel() for t in inputs if t.requires_grad) <= 60:
            assert sd.autograd.gradcheck(fn, inputs, atol=1e-6)
        for seed in range(2):
            assert sd.autograd.gradcheck_random(fn, inputs, seed=seed, atol=1e-6)


def test_reseeding_fixes_the_dropout_mask():
    """What the gradcheck above relies on: the same seed draws the same masks."""
    layer = nn.Dropout(0.5)
    x = sd.ones(50, 40)
    sd.manual_seed(123)
    a = _np(layer(x))
    sd.manual_seed(123)
    assert np.array_equal(a, _np(layer(x))) and 0 < (a == 0).mean() < 1
