"""RNN, GRU and LSTM, one time step at a time with shendu ops (so they train).

ONNX's gate orders differ from PyTorch's: LSTM stacks its weights as i, o, f, c (PyTorch:
i, f, g, o) and GRU as z, r, h (PyTorch: r, z, n). GRU's ``linear_before_reset=0`` (the
default) applies the reset gate before the recurrent product; PyTorch always behaves as 1.
"""
from __future__ import annotations

import numpy as np

from ... import ops as O
from ...creation import zeros
from ...nn import functional as F
from ._registry import arr, const, register


def _activation(name, alpha, beta):
    name = name.lower()
    if name == "sigmoid":
        return O.sigmoid
    if name == "tanh":
        return O.tanh
    if name == "relu":
        return F.relu
    if name == "leakyrelu":
        return lambda x: F.leaky_relu(x, alpha if alpha is not None else 0.01)
    if name == "hardsigmoid":
        a, b = (0.2 if alpha is None else alpha), (0.5 if beta is None else beta)
        return lambda x: O.clamp(O.add(O.mul(x, a), b), 0.0, 1.0)
    if name == "elu":
        return lambda x: F.elu(x, 1.0 if alpha is None else alpha)
    if name == "softsign":
        return F.softsign
    if name == "softplus":
        return F.softplus
    if name == "affine":
        return lambda x: O.add(O.mul(x, alpha), beta)
    if name == "scaledtanh":
        return lambda x: O.mul(O.tanh(O.mul(x, beta)), alpha)
    raise ValueError(f"ONNX recurrent op: activation {name!r} is not supported")


def _activations(node, defaults, n_dirs):
    names = list(node.get("activations") or defaults * n_dirs)
    alphas = list(node.get("activation_alpha") or [])
    betas = list(node.get("activation_beta") or [])
    fns = []
    for i, name in enumerate(names):
        fns.append(_activation(name, alphas[i] if i < len(alphas) else None,
                               betas[i] if i < len(betas) else None))
    k = len(defaults)
    return [fns[d * k:(d + 1) * k] for d in range(n_dirs)]


def _run(node, kind, x, w, r, b, seq_lens, h0, c0=None, p=None):
    n_gates, defaults = {"RNN": (1, ["Tanh"]), "GRU": (3, ["Sigmoid", "Tanh"]),
                         "LSTM": (4, ["Sigmoid", "Tanh", "Tanh"])}[kind]
    layout = node.get("layout", 0)
    if layout:  # batch-first in and out
        x = O.transpose(x, 0, 1)
        h0 = None if h0 is None else O.transpose(h0, 0, 1)
        c0 = None if c0 is None else O.transpose(c0, 0, 1)
    steps, batch = x.shape[0], x.shape[1]
    hidden = node.get("hidden_size") or r.shape[-1]
    direction = node.get("direction", "forward")
    dirs = ["forward", "reverse"] if direction == "bidirectional" else [direction]
    acts = _activations(node, defaults, len(dirs))
    clip = node.get("clip")
    lens = None if seq_lens is None else arr(seq_lens).astype(np.int64)
    if lens is not None and (lens >= steps).all():
        lens = None
    ys, hs, cs = [], [], []
    for d, name in enumerate(dirs):
        gh = n_gates * hidden
        xw = O.matmul(x, O.transpose(w[d], 0, 1))  # (T, B, G*H): all input products at once
        rb = None
        if b is not None:
            xw = O.add(xw, b[d][:gh])
            rb = b[d][gh:]
        rt = O.transpose(r[d], 0, 1)
        h = zeros(batch, hidden, dtype=x.dtype) if h0 is None else h0[d]
        c = None
        if kind == "LSTM":
            c = zeros(batch, hidden, dtype=x.dtype) if c0 is None else c0[d]
        pd = None if p is None else p[d]
        out = [None] * steps
        order = range(steps) if name == "forward" else range(steps - 1, -1, -1)
        for t in order:
            if kind == "GRU":
                h_new = _gru_step(node, xw[t], h, rt, rb, hidden, acts[d], clip)
                c_new = None
            elif kind == "LSTM":
                h_new, c_new = _lstm_step(node, xw[t], h, c, rt, rb, pd, hidden, acts[d], clip)
            else:
                g = O.add(xw[t], O.matmul(h, rt))
                g = g if rb is None else O.add(g, rb)
                h_new, c_new = acts[d][0](_clip(g, clip)), None
            if lens is not None:  # past a sequence's end its state holds and Y is 0
                live = const((t < lens)[:, None])
                h_new = O.where(live, h_new, h)
                if c_new is not None:
                    c_new = O.where(live, c_new, c)
                out[t] = O.mul(h_new, const((t < lens)[:, None].astype(np.dtype(x.dtype))))
            else:
                out[t] = h_new
            h, c = h_new, c_new
        ys.append(O.stack(out, dim=0))
        hs.append(h)
        cs.append(c)
    y = O.stack(ys, dim=1)  # (T, dirs, B, H)
    y_h = O.stack(hs, dim=0)
    y_c = O.stack(cs, dim=0) if kind == "LSTM" else None
    if layout:
        y = O.permute(y, 2, 0, 1, 3)
        y_h = O.transpose(y_h, 0, 1)
        y_c = None if y_c is None else O.transpose(y_c, 0, 1)
    outs = (y, y_h) if kind != "LSTM" else (y, y_h, y_c)
    return outs[:max(node.n_outputs, 1)] if node.n_outputs > 1 else outs[0]


def _clip(g, clip):
    return g if clip is None else O.clamp(g, -clip, clip)


def _gru_step(node, xw, h, rt, rb, hidden, acts, clip):
    f, g = acts
    hr = O.matmul(h, rt[:, :2 * hidden])
    if rb is not None:
        hr = O.add(hr, rb[:2 * hidden])
    zr = f(_clip(O.add(xw[:, :2 * hidden], hr), clip))
    z, r = zr[:, :hidden], zr[:, hidden:]
    rh_t = rt[:, 2 * hidden:]
    rbh = None if rb is None else rb[2 * hidden:]
    if node.get("linear_before_reset", 0):
        rec = O.matmul(h, rh_t)
        rec = rec if rbh is None else O.add(rec, rbh)
        pre = O.add(xw[:, 2 * hidden:], O.mul(r, rec))
    else:
        rec = O.matmul(O.mul(r, h), rh_t)
        rec = rec if rbh is None else O.add(rec, rbh)
        pre = O.add(xw[:, 2 * hidden:], rec)
    hh = g(_clip(pre, clip))
    return O.add(O.mul(O.sub(1.0, z), hh), O.mul(z, h))


def _lstm_step(node, xw, h, c, rt, rb, p, hidden, acts, clip):
    f, g, hact = acts
    gates = O.add(xw, O.matmul(h, rt))
    if rb is not None:
        gates = O.add(gates, rb)
    gates = _clip(gates, clip)
    i, o, fg, cc = (gates[:, k * hidden:(k + 1) * hidden] for k in range(4))
    if p is not None:  # peepholes P = (p_i, p_o, p_f)
        i = O.add(i, O.mul(p[:hidden], c))
        fg = O.add(fg, O.mul(p[2 * hidden:], c))
    i = f(i)
    fg = O.sub(1.0, i) if node.get("input_forget", 0) else f(fg)
    c_new = O.add(O.mul(fg, c), O.mul(i, g(cc)))
    if p is not None:
        o = O.add(o, O.mul(p[hidden:2 * hidden], c_new))
    h_new = O.mul(f(o), hact(c_new))
    return h_new, c_new


def _opt(xs, i):
    return xs[i] if i < len(xs) else None


@register("RNN")
def rnn(node, x, w, r, *rest):
    return _run(node, "RNN", x, w, r, _opt(rest, 0), _opt(rest, 1), _opt(rest, 2))


@register("GRU")
def gru(node, x, w, r, *rest):
    return _run(node, "GRU", x, w, r, _opt(rest, 0), _opt(rest, 1), _opt(rest, 2))


@register("LSTM")
def lstm(node, x, w, r, *rest):
    return _run(node, "LSTM", x, w, r, _opt(rest, 0), _opt(rest, 1), _opt(rest, 2),
                _opt(rest, 3), _opt(rest, 4))
