"""Recurrent layers: ``RNN``, ``LSTM``, ``GRU`` (stacked, bidirectional) and their cells.

Parameter names, shapes, gate orders and default initialisation follow PyTorch
(``weight_ih_l0``, ``weight_hh_l0``, ``bias_ih_l0``, ``bias_hh_l0``, ``..._reverse``; LSTM
gates i, f, g, o; GRU gates r, z, n), so a PyTorch ``state_dict`` loads unchanged.

Each layer and direction runs as one fused graph node (``shendu.ops.rnn_ops``): the input
projection of the whole sequence is one GEMM, and backpropagation through time runs in one
backward call. Setting ``module.fused = False`` runs the same maths as a chain of composed
cells instead (slower; kept as the reference the fused path is tested against).
A ``PackedSequence`` input (``shendu.nn.utils.rnn``) runs the composed cells step by step
over a batch that shrinks as sequences end, so each sequence's final state is taken at its
own last step; the output is packed the same way. LSTM ``proj_size`` is not supported.
"""
from __future__ import annotations

import math
import numbers
import warnings

import numpy as np

from ... import creation
from ...ops import rnn_ops
from ...ops.movement import cat, stack
from ...tensor import Tensor
from .. import functional as F
from .. import init
from ..module import Module
from ..parameter import Parameter
from ..utils.rnn import PackedSequence, _packed_positions, _take

__all__ = ["RNNCellBase", "RNNCell", "LSTMCell", "GRUCell", "RNNBase", "RNN", "LSTM", "GRU"]

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def _uniform_all(module: Module, hidden_size: int) -> None:
    # PyTorch's default for every recurrent weight and bias: U(-1/sqrt(H), 1/sqrt(H)).
    bound = 1.0 / math.sqrt(hidden_size) if hidden_size > 0 else 0.0
    for p in module.parameters():
        init.uniform_(p, -bound, bound)


def _param(*shape: int, device=None, dtype=None) -> Parameter:
    return Parameter(creation.empty(*shape, device=device, dtype=dtype))


def _check_sizes(name: str, input_size, hidden_size) -> None:
    for what, v in (("input_size", input_size), ("hidden_size", hidden_size)):
        if not isinstance(v, numbers.Integral) or isinstance(v, bool) or v <= 0:
            raise ValueError(f"{name}: {what} must be a positive integer, got {v!r}")


# ---------------------------------------------------------------------- cells
class RNNCellBase(Module):
    """Shared parameters of the single-step cells: ``weight_ih`` (gates*H, input_size),
    ``weight_hh`` (gates*H, H), ``bias_ih`` and ``bias_hh`` (gates*H,)."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool, num_chunks: int,
                 device=None, dtype=None) -> None:
        super().__init__()
        _check_sizes(type(self).__name__, input_size, hidden_size)
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        g = num_chunks * hidden_size
        self.weight_ih = _param(g, input_size, device=device, dtype=dtype)
        self.weight_hh = _param(g, hidden_size, device=device, dtype=dtype)
        if bias:
            self.bias_ih = _param(g, device=device, dtype=dtype)
            self.bias_hh = _param(g, device=device, dtype=dtype)
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw every weight and bias from U(-1/sqrt(hidden_size), 1/sqrt(hidden_size))."""
        _uniform_all(self, self.hidden_size)

    def _prepare(self, input: Tensor, hx, n_states: int):
        """Batch an unbatched input, check sizes, and supply zero states."""
        name = type(self).__name__
        if input.ndim not in (1, 2):
            raise ValueError(f"{name}: expected input to be 1-D or 2-D, got {input.ndim}-D "
                             f"tensor of shape {input.shape}")
        if input.shape[-1] != self.input_size:
            raise ValueError(f"{name}: input has {input.shape[-1]} features (shape "
                             f"{input.shape}) but input_size is {self.input_size}")
        unbatched = input.ndim == 1
        x = input.unsqueeze(0) if unbatched else input
        expected = (x.shape[0], self.hidden_size)
        states = []
        for k in range(n_states):
            h = None if hx is None else (hx[k] if n_states > 1 else hx)
            if h is None:
                h = creation.zeros(*expected, dtype=x.dtype, device=x.device)
            else:
                h = h.unsqueeze(0) if unbatched else h
                if h.shape != expected:
                    raise ValueError(f"{name}: hidden state {k} has shape {h.shape} but "
                                     f"input of shape {input.shape} needs "
                                     f"{expected[1:] if unbatched else expected}")
            states.append(h)
        return x, states, unbatched

    def _w(self):
        return self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            s += ", bias=False"
        nl = getattr(self, "nonlinearity", "tanh")
        return s + (f", nonlinearity={nl}" if nl != "tanh" else "")


class RNNCell(RNNCellBase):
    """One Elman step ``h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh)``, act tanh or relu.

    Args:
        input_size, hidden_size: feature sizes of the input and hidden state.
        bias: learn ``bias_ih`` and ``bias_hh`` (default True).
        nonlinearity: ``'tanh'`` (default) or ``'relu'``.

    ``forward(input, hx=None)``: input (N, input_size) or (input_size,); hx like the output
    (zeros when omitted). Returns h' of shape (N, hidden_size).

    >>> import shendu as sd
    >>> from shendu.nn.layers.rnn import RNNCell
    >>> RNNCell(3, 5)(sd.ones(2, 3)).shape
    (2, 5)
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh", device=None, dtype=None) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell: unknown nonlinearity {nonlinearity!r}; expected "
                             "'tanh' or 'relu'")
        super().__init__(input_size, hidden_size, bias, 1, device, dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        x, (h,), unbatched = self._prepare(input, hx, 1)
        h = rnn_ops.rnn_cell(x, h, *self._w(), nonlinearity=self.nonlinearity)
        return h.squeeze(0) if unbatched else h


class LSTMCell(RNNCellBase):
    """One LSTM step; ``forward(input, (h, c)=None)`` returns ``(h', c')``.

    ``c' = f * c + i * g`` and ``h' = o * tanh(c')``, with gates i, f, o = sigmoid and
    g = tanh of ``x W_ih^T + b_ih + h W_hh^T + b_hh`` split in the order i, f, g, o.

    >>> import shendu as sd
    >>> from shendu.nn.layers.rnn import LSTMCell
    >>> h, c = LSTMCell(3, 5)(sd.ones(2, 3))
    >>> h.shape, c.shape
    ((2, 5), (2, 5))
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 device=None, dtype=None) -> None:
        super().__init__(input_size, hidden_size, bias, 4, device, dtype)

    def forward(self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None):
        x, (h, c), unbatched = self._prepare(input, hx, 2)
        h, c = rnn_ops.lstm_cell(x, h, c, *self._w())
        return (h.squeeze(0), c.squeeze(0)) if unbatched else (h, c)


class GRUCell(RNNCellBase):
    """One GRU step: r, z = sigmoid(...), ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``,
    ``h' = (1 - z) * n + z * h``.

    >>> import shendu as sd
    >>> from shendu.nn.layers.rnn import GRUCell
    >>> GRUCell(3, 5)(sd.ones(3)).shape
    (5,)
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 device=None, dtype=None) -> None:
        super().__init__(input_size, hidden_size, bias, 3, device, dtype)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        x, (h,), unbatched = self._prepare(input, hx, 1)
        h = rnn_ops.gru_cell(x, h, *self._w())
        return h.squeeze(0) if unbatched else h


# ---------------------------------------------------------------------- sequence layers
class RNNBase(Module):
    """Stacked, optionally bidirectional recurrent layer over a whole sequence.

    Subclasses (``RNN``, ``LSTM``, ``GRU``) fix ``mode``. Input is (T, N, input_size), or
    (N, T, input_size) with ``batch_first``, or unbatched (T, input_size). Returns
    ``(output, h_n)`` (LSTM: ``(output, (h_n, c_n))``): output (T, N, D*hidden_size) with the
    last layer's states for every step (directions concatenated), h_n (D*num_layers, N,
    hidden_size) ordered layer by layer, forward direction first.
    """

    fused: bool = True  # False: run composed cells (the reference path) instead

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, proj_size: int = 0, device=None,
                 dtype=None) -> None:
        super().__init__()
        name = {"RNN_TANH": "RNN", "RNN_RELU": "RNN"}.get(mode, mode)
        _check_sizes(name, input_size, hidden_size)
        if not isinstance(num_layers, numbers.Integral) or num_layers < 1:
            raise ValueError(f"{name}: num_layers must be a positive integer, got {num_layers!r}")
        if isinstance(dropout, bool) or not 0 <= dropout <= 1:
            raise ValueError(f"{name}: dropout must be a number in [0, 1], got {dropout!r}")
        if proj_size:
            raise NotImplementedError(f"{name}: proj_size is not supported (got {proj_size})")
        if dropout > 0 and num_layers == 1:
            warnings.warn(f"{name}: dropout={dropout} has no effect with num_layers=1 (it "
                          "is applied between stacked layers)", stacklevel=2)
        self.mode, self.input_size, self.hidden_size = mode, input_size, hidden_size
        self.num_layers, self.bias, self.batch_first = num_layers, bias, batch_first
        self.dropout, self.bidirectional, self.proj_size = float(dropout), bidirectional, 0
        g = _GATES[mode] * hidden_size
        self._flat_weights_names = []
        for layer in range(num_layers):
            in_size = input_size if layer == 0 else hidden_size * self._dirs
            for suffix in ("", "_reverse")[:self._dirs]:
                shapes = {"weight_ih": (g, in_size), "weight_hh": (g, hidden_size)}
                if bias:
                    shapes.update(bias_ih=(g,), bias_hh=(g,))
                for kind, shape in shapes.items():
                    pname = f"{kind}_l{layer}{suffix}"
                    setattr(self, pname, _param(*shape, device=device, dtype=dtype))
                    self._flat_weights_names.append(pname)
        self.reset_parameters()

    @property
    def _dirs(self) -> int:
        return 2 if self.bidirectional else 1

    def reset_parameters(self) -> None:
        """Draw every weight and bias from U(-1/sqrt(hidden_size), 1/sqrt(hidden_size))."""
        _uniform_all(self, self.hidden_size)

    def flatten_parameters(self) -> None:
        """No-op, for code written for PyTorch's cuDNN weight packing."""

    @property
    def all_weights(self) -> list[list[Parameter]]:
        """Parameters grouped per layer and direction: [w_ih, w_hh(, b_ih, b_hh)]."""
        n = 4 if self.bias else 2
        ws = [getattr(self, k) for k in self._flat_weights_names]
        return [ws[i:i + n] for i in range(0, len(ws), n)]

    def _n_states(self) -> int:
        return 2 if self.mode == "LSTM" else 1

    def _check_input(self, input: Tensor, hx, time_major: bool = False):
        name = type(self).__name__
        if not isinstance(input, Tensor):
            raise TypeError(f"{name}: expected a Tensor input, got {type(input).__name__}")
        if input.ndim not in (2, 3):
            raise ValueError(f"{name}: expected input to be 2-D (T, input_size) or 3-D, got "
                             f"{input.ndim}-D tensor of shape {input.shape}")
        if input.shape[-1] != self.input_size:
            raise ValueError(f"{name}: input.size(-1) must be equal to input_size: expected "
                             f"{self.input_size}, got input of shape {input.shape}")
        w = self.weight_ih_l0
        if input.dtype != w.dtype:
            raise TypeError(f"{name}: input dtype {input.dtype} does not match the parameters' "
                            f"dtype {w.dtype}")
        unbatched = input.ndim == 2
        x = input.unsqueeze(1) if unbatched else (
            input.transpose(0, 1) if self.batch_first and not time_major else input)
        if x.shape[0] == 0:
            raise ValueError(f"{name}: the input sequence is empty (shape {input.shape})")
        expected = (self.num_layers * self._dirs, x.shape[1], self.hidden_size)
        states = hx if isinstance(hx, (tuple, list)) else (hx,)
        if hx is not None and len(states) != self._n_states():
            raise ValueError(f"{name}: expected {self._n_states()} initial state tensor(s), "
                             f"got {len(states)}")
        out = []
        for k in range(self._n_states()):
            h = None if hx is None else states[k]
            if h is None:
                h = creation.zeros(*expected, dtype=x.dtype, device=x.device)
            else:
                if h.ndim != (2 if unbatched else 3):
                    raise ValueError(f"{name}: for {input.ndim}-D input the initial state "
                                     f"must be {input.ndim}-D, got shape {h.shape}")
                h = h.unsqueeze(1) if unbatched else h
                if h.dtype != x.dtype:
                    raise TypeError(f"{name}: initial state dtype {h.dtype} does not match "
                                    f"the input dtype {x.dtype}")
                if h.shape != expected:
                    shown = expected[::2] if unbatched else expected
                    raise ValueError(f"{name}: expected initial state of shape {shown}, got "
                                     f"{tuple(states[k].shape)}")
            out.append(h)
        return x, out, unbatched

    def _layer(self, x: Tensor, states: list, weights: list, reverse: bool):
        """One layer, one direction, over the whole sequence -> (out, [h_n(, c_n)])."""
        kw = {"nonlinearity": self.mode[4:].lower()} if self.mode.startswith("RNN") else {}
        if self.fused:
            cls = {"LSTM": rnn_ops.LSTMLayer, "GRU": rnn_ops.GRULayer}.get(self.mode,
                                                                          rnn_ops.RNNLayer)
            res = cls.apply(x, *states, *weights, reverse=reverse, bias=self.bias, **kw)
            return res[0], list(res[1:])
        w = list(weights) + [None, None] * (not self.bias)
        steps = range(x.shape[0] - 1, -1, -1) if reverse else range(x.shape[0])
        outs = [None] * x.shape[0]
        for t in steps:
            if self.mode == "LSTM":
                states = list(rnn_ops.lstm_cell(x[t], *states, *w))
            elif self.mode == "GRU":
                states = [rnn_ops.gru_cell(x[t], states[0], *w)]
            else:
                states = [rnn_ops.rnn_cell(x[t], states[0], *w, **kw)]
            outs[t] = states[0]
        return stack(outs), states

    def _step(self, x: Tensor, states: list, w: list) -> list:
        """One composed cell step for the whole (sub)batch -> new states."""
        w = list(w) + [None, None] * (not self.bias)
        if self.mode == "LSTM":
            return list(rnn_ops.lstm_cell(x, *states, *w))
        if self.mode == "GRU":
            return [rnn_ops.gru_cell(x, states[0], *w)]
        return [rnn_ops.rnn_cell(x, states[0], *w, nonlinearity=self.mode[4:].lower())]

    def _packed_layer(self, x: Tensor, states: list, weights: list, reverse: bool, bs):
        """One layer and direction over a padded, length-sorted (T, N, F) batch where
        only the first ``bs[t]`` rows are live at step t -> (padded out, finals)."""
        T, N = x.shape[0], x.shape[1]
        outs = [None] * T
        if not reverse:
            # rows that have ended keep their state: it is their final state
            cur = states
            for t in range(T):
                b = int(bs[t])
                new = self._step(x[t][:b], [s[:b] for s in cur], weights)
                outs[t] = new[0]
                cur = new if b == N else [cat([n, s[b:]], 0) for n, s in zip(new, cur)]
        else:
            # walking backwards, a sequence joins at its own last step with its initial state
            cur = [s[:int(bs[T - 1])] for s in states]
            for t in range(T - 1, -1, -1):
                b, have = int(bs[t]), cur[0].shape[0]
                if have < b:
                    cur = [cat([c, s[have:b]], 0) for c, s in zip(cur, states)]
                cur = self._step(x[t][:b], cur, weights)
                outs[t] = cur[0]
        H = outs[0].shape[1]
        padded = [o if o.shape[0] == N else
                  cat([o, creation.zeros(N - o.shape[0], H, dtype=o.dtype, device=o.device)], 0)
                  for o in outs]
        return stack(padded), cur

    def _forward_packed(self, packed: PackedSequence, hx):
        name = type(self).__name__
        data, bs = packed.data, packed.batch_sizes.numpy()
        if data.ndim != 2 or data.shape[-1] != self.input_size:
            raise ValueError(f"{name}: packed data must have shape (sum of lengths, "
                             f"{self.input_size}), got {data.shape}")
        if data.dtype != self.weight_ih_l0.dtype:
            raise TypeError(f"{name}: input dtype {data.dtype} does not match the parameters' "
                            f"dtype {self.weight_ih_l0.dtype}")
        T, N = len(bs), int(bs[0])
        pos = _packed_positions(bs, N)
        # time-major padded batch in sorted order (padding rows read a zero row)
        pos_pad = np.where(pos >= 0, pos, data.shape[0]).reshape(-1)
        zero = creation.zeros(1, data.shape[1], dtype=data.dtype, device=data.device)
        x = _take(cat([data, zero], 0), 0, pos_pad).reshape(T, N, data.shape[1])
        # initial states come in the caller's order; the packed batch is sorted
        _, states, _ = self._check_input(x, hx, time_major=True)
        if packed.sorted_indices is not None and hx is not None:
            states = [_take(s, 1, packed.sorted_indices.numpy()) for s in states]
        finals = [[] for _ in states]
        weights = self.all_weights
        for layer in range(self.num_layers):
            outs = []
            for d in range(self._dirs):
                idx = layer * self._dirs + d
                out, fin = self._packed_layer(x, [s[idx] for s in states], weights[idx],
                                              d == 1, bs)
                outs.append(out)
                for acc, f in zip(finals, fin):
                    acc.append(f)
            x = outs[0] if len(outs) == 1 else cat(outs, -1)
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, True)
        # row-major (t, b) order of the live cells is exactly the packed data order
        flat = (np.arange(T)[:, None] * N + np.arange(N)[None, :])[pos >= 0]
        out = packed._replace(data=_take(x.reshape(T * N, x.shape[2]), 0, flat))
        h_n = [stack(f) for f in finals]
        if packed.unsorted_indices is not None:
            h_n = [_take(h, 1, packed.unsorted_indices.numpy()) for h in h_n]
        return out, (tuple(h_n) if self.mode == "LSTM" else h_n[0])

    def forward(self, input: Tensor, hx=None):
        if isinstance(input, PackedSequence):
            return self._forward_packed(input, hx)
        x, states, unbatched = self._check_input(input, hx)
        finals = [[] for _ in states]
        weights = self.all_weights
        for layer in range(self.num_layers):
            outs = []
            for d in range(self._dirs):
                idx = layer * self._dirs + d
                out, fin = self._layer(x, [s[idx] for s in states], weights[idx], d == 1)
                outs.append(out)
                for acc, f in zip(finals, fin):
                    acc.append(f)
            x = outs[0] if len(outs) == 1 else cat(outs, -1)
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, True)
        h_n = [stack(f) for f in finals]
        if unbatched:
            x, h_n = x.squeeze(1), [h.squeeze(1) for h in h_n]
        elif self.batch_first:
            x = x.transpose(0, 1)
        return x, (tuple(h_n) if self.mode == "LSTM" else h_n[0])

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.mode == "RNN_RELU":
            s += ", nonlinearity='relu'"
        for k, default in (("num_layers", 1), ("bias", True), ("batch_first", False),
                           ("dropout", 0.0), ("bidirectional", False)):
            if getattr(self, k) != default:
                s += f", {k}={getattr(self, k)}"
        return s


class RNN(RNNBase):
    """Elman RNN over a sequence: ``h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)``.

    Args (PyTorch's order): input_size, hidden_size, num_layers=1, nonlinearity='tanh'
    ('tanh' or 'relu'), bias=True, batch_first=False, dropout=0.0 (between stacked layers,
    training only), bidirectional=False. ``forward(input, h0=None)`` -> ``(output, h_n)``.

    >>> import shendu as sd
    >>> from shendu.nn.layers.rnn import RNN
    >>> out, h = RNN(4, 8, num_layers=2)(sd.ones(5, 3, 4))
    >>> out.shape, h.shape
    ((5, 3, 8), (2, 3, 8))
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, device=None,
                 dtype=None) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: unknown nonlinearity {nonlinearity!r}; expected 'tanh' "
                             "or 'relu'")
        super().__init__("RNN_" + nonlinearity.upper(), input_size, hidden_size, num_layers,
                         bias, batch_first, dropout, bidirectional, 0, device, dtype)
        self.nonlinearity = nonlinearity


class LSTM(RNNBase):
    """Long short-term memory over a sequence (gates i, f, g, o as in PyTorch).

    Args (PyTorch's order): input_size, hidden_size, num_layers=1, bias=True,
    batch_first=False, dropout=0.0, bidirectional=False, proj_size=0 (only 0 supported).
    ``forward(input, (h0, c0)=None)`` -> ``(output, (h_n, c_n))``.

    >>> import shendu as sd
    >>> from shendu.nn.layers.rnn import LSTM
    >>> lstm = LSTM(4, 8, batch_first=True, bidirectional=True)
    >>> out, (h, c) = lstm(sd.ones(3, 5, 4))
    >>> out.shape, h.shape, c.shape
    ((3, 5, 16), (2, 3, 8), (2, 3, 8))
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, proj_size: int = 0, device=None,
                 dtype=None) -> None:
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, proj_size, device, dtype)


class GRU(RNNBase):
    """Gated recurrent unit over a sequence (gates r, z, n as in PyTorch).

    Args (PyTorch's order): input_size, hidden_size, num_layers=1, bias=True,
    batch_first=False, dropout=0.0, bidirectional=False. ``forward(input, h0=None)`` ->
    ``(output, h_n)``.

    >>> import shendu as sd
    >>> from shendu.nn.layers.rnn import GRU
    >>> out, h = GRU(4, 8)(sd.ones(5, 4))  # unbatched (T, input_size)
    >>> out.shape, h.shape
    ((5, 8), (1, 8))
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, device=None, dtype=None) -> None:
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, 0, device, dtype)
