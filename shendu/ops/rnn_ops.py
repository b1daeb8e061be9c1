"""Recurrent layers as fused primitives, and the plain cells they are checked against.

A whole sequence through one RNN/LSTM/GRU layer (one direction) is ONE graph node:

* forward projects the inputs of all T steps with one GEMM (``x @ W_ih^T + b`` over
  (T*N, in)), then per step does one GEMM ``h @ W_hh^T`` and the gate arithmetic in place;
* backward (BPTT) runs the reverse time loop on raw arrays with one GEMM per step for the
  hidden-state gradient, then forms ``dW_hh``, ``dW_ih`` and ``dx`` with one GEMM each over
  all steps (the per-step gate gradients and previous states are stacked).

A composed graph would record ~15 nodes per step; this records one per layer, and every
GEMM but the recurrent one runs at full size. Gate layouts follow PyTorch (LSTM i, f, g, o;
GRU r, z, n with ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``), so its weights load.

Sigmoid gates use ``sigmoid(x) = (1 + tanh(x / 2)) / 2``: their pre-activations are halved
(the GRU's weight rows are pre-scaled; the LSTM's time loop scales each step's gates, an exact
product, see ``backend/rnn.py``), so ONE ``tanh`` over all gates (then one scale-and-shift)
gives every activation, with no overflow for large inputs. States are indexed by time: with
``hs`` of shape (T+1, N, H), step t reads ``hs[t]`` and writes ``hs[t+1]`` forward, reads
``hs[t+1]`` and writes ``hs[t]`` in reverse, so the output sequence is always a contiguous
slice of ``hs``. When a graph is
recorded, the LSTM forward loop also forms the gate-derivative coefficients that BPTT needs
while each step's arrays are still in cache, leaving the backward loop five small
elementwise ops and one GEMM per step.

Every product goes through ``backend.cpu.matmul`` (MKL when installed). The LSTM's and
GRU's time loops, forward and backward, are one call each to ``backend/rnn.py``, which
runs every step's gate arithmetic as one compiled pass (``backend/jit/rnn.py``) or as the
NumPy reference (a dozen NumPy passes); both keep the same arrays for BPTT.

``lstm_cell``/``gru_cell``/``rnn_cell`` compose one step from ordinary primitives: they
serve the ``*Cell`` modules and are the reference the fused path is tested against.
"""
from __future__ import annotations

from ..autograd.function import Function
from ..backend import cpu, rnn
from ._util import xp_of
from .nn_ops import Linear


def _recurrent_tangent(dgx_t, dh_prev, h_prev, w_hh, dw_hh, db_hh):
    """Tangent of one step's gate pre-activations: the input part (``dgx_t``) plus the
    recurrent product's, ``dh_prev @ w_hh.T + h_prev @ dw_hh.T + db_hh``."""
    pre = dgx_t + cpu.matmul(dh_prev, w_hh.T)
    if dw_hh is not None:
        cpu.matmul(h_prev, dw_hh.T, pre, accumulate=True)
    if db_hh is not None:
        pre += db_hh
    return pre


def _project(x, w, b):
    """(T, N, in) @ w.T (+ b) as one GEMM -> (T, N, rows of w)."""
    t, n, i = x.shape
    g = cpu.matmul(x.reshape(t * n, i), w.T)
    if b is not None:
        g += b
    return g.reshape(t, n, w.shape[0])


def _scaled(xp, w, h, n_sig):
    """``w`` with its first ``n_sig`` gate blocks (of ``h`` rows) halved (tanh trick)."""
    s = xp.ones(w.shape[0], w.dtype)
    s[:n_sig * h] = 0.5
    return w * (s if w.ndim == 1 else s[:, None])


class _Recurrence(Function):
    """Shared driver: inputs ``x, h0, [c0], w_ih, w_hh, [b_ih, b_hh]``; outputs
    ``(out, h_n[, c_n])``. Subclasses implement ``_run`` and ``_bptt`` on raw arrays."""

    N_STATES = 1

    @classmethod
    def _split(cls, arrays, bias):
        k = cls.N_STATES
        states, w_ih, w_hh = arrays[1:1 + k], arrays[1 + k], arrays[2 + k]
        b = arrays[3 + k:5 + k] if bias else (None, None)
        return arrays[0], states, w_ih, w_hh, b

    @staticmethod
    def forward(ctx, *arrays, reverse=False, bias=True, **kw):
        cls = type(ctx)
        x, states, w_ih, w_hh, (b_ih, b_hh) = cls._split(arrays, bias)
        xp = xp_of(x)
        t_len = x.shape[0]
        ctx.reverse, ctx.bias, ctx.kw = reverse, bias, kw
        ctx.order = range(t_len - 1, -1, -1) if reverse else range(t_len)
        ctx.prev = 1 if reverse else 0  # hs[t + prev] is the state step t reads
        hs = xp.empty((t_len + 1,) + states[0].shape, x.dtype)
        hs[t_len if reverse else 0] = states[0]
        ctx.hs = hs
        finals = cls._run(ctx, xp, x, states, w_ih, w_hh, b_ih, b_hh)
        out = hs[:t_len] if reverse else hs[1:]
        ctx.save_for_backward(x, w_ih, w_hh, out)
        outs = (out, hs[0 if reverse else t_len].copy()) + finals
        ctx.out_meta = [(o.shape, o.dtype, xp) for o in outs]
        return outs

    @staticmethod
    def backward(ctx, dout, *dstates):
        x, w_ih, w_hh, _ = ctx.saved_tensors
        xp = xp_of(x)
        t_len, n, i = x.shape
        dgx, dgh, dstates = type(ctx)._bptt(ctx, xp, dout, [d.copy() for d in dstates], w_hh)
        h_prev = ctx.hs[1:] if ctx.reverse else ctx.hs[:t_len]
        g2 = dgx.reshape(t_len * n, -1)
        gh2 = g2 if dgh is None else dgh.reshape(t_len * n, -1)
        needs = ctx.needs_input_grad
        k = type(ctx).N_STATES
        dx = cpu.matmul(g2, w_ih).reshape(x.shape) if needs[0] else None
        dw_ih = cpu.matmul(g2.T, x.reshape(t_len * n, i)) if needs[1 + k] else None
        dw_hh = cpu.matmul(gh2.T, h_prev.reshape(t_len * n, -1)) if needs[2 + k] else None
        grads = (dx, *[d if nd else None for d, nd in zip(dstates, needs[1:1 + k])],
                 dw_ih, dw_hh)
        if ctx.bias:
            db_ih = g2.sum(axis=0) if needs[3 + k] or dgh is None else None
            db_hh = (db_ih if dgh is None else gh2.sum(axis=0)) if needs[4 + k] else None
            grads += (db_ih if needs[3 + k] else None, db_hh)
        return grads

    @staticmethod
    def jvp(ctx, *tangents):
        x, w_ih, w_hh, out = ctx.saved
        xp = xp_of(x)
        dx, dstates, dw_ih, dw_hh, (db_ih, db_hh) = type(ctx)._split(tangents, ctx.bias)
        t_len = x.shape[0]
        z = xp.zeros(x.shape[:2] + (w_ih.shape[0],), x.dtype)
        # Tangent of the input projection for all steps at once, then the recurrence.
        dgx = z + (0 if dx is None else _project(dx, w_ih, None)) \
            + (0 if dw_ih is None else _project(x, dw_ih, None)) \
            + (0 if db_ih is None else db_ih)
        states = [xp.zeros_like(out[0]) if d is None else d for d in dstates]
        dhs = xp.empty_like(ctx.hs)
        dhs[t_len if ctx.reverse else 0] = states[0]
        finals = type(ctx)._tangent(ctx, xp, dgx, dhs, states, w_hh, dw_hh, db_hh)
        dout = dhs[:t_len] if ctx.reverse else dhs[1:]
        return (dout, dhs[0 if ctx.reverse else t_len].copy()) + finals


class RNNLayer(_Recurrence):
    """Elman RNN layer: ``h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)``, act in
    {tanh, relu} (``nonlinearity=`` keyword)."""

    @staticmethod
    def _run(ctx, xp, x, states, w_ih, w_hh, b_ih, b_hh):
        hs, p = ctx.hs, ctx.prev
        g = _project(x, w_ih, None if b_ih is None else b_ih + b_hh)
        buf = xp.empty_like(hs[0])
        relu = ctx.kw["nonlinearity"] == "relu"
        with cpu.small_products(xp):
            for t in ctx.order:
                h = hs[t + 1 - p]
                cpu.matmul(hs[t + p], w_hh.T, buf)
                xp.add(g[t], buf, out=h)
                if relu:
                    xp.maximum(h, 0, out=h)
                else:
                    xp.tanh(h, out=h)
        return ()

    @staticmethod
    def _bptt(ctx, xp, dout, dstates, w_hh):
        out = ctx.saved[3]
        d = (out > 0).astype(out.dtype) if ctx.kw["nonlinearity"] == "relu" else 1 - out * out
        dh = dstates[0]
        dg = xp.empty_like(out)
        with cpu.small_products(xp):
            for t in reversed(ctx.order):
                dh += dout[t]
                xp.multiply(dh, d[t], out=dg[t])
                cpu.matmul(dg[t], w_hh, dh)
        return dg, None, [dh]

    @staticmethod
    def _tangent(ctx, xp, dgx, dhs, states, w_hh, dw_hh, db_hh):
        out, hs, p = ctx.saved[3], ctx.hs, ctx.prev
        d = (out > 0).astype(out.dtype) if ctx.kw["nonlinearity"] == "relu" else 1 - out * out
        for t in ctx.order:
            pre = _recurrent_tangent(dgx[t], dhs[t + p], hs[t + p], w_hh, dw_hh, db_hh)
            xp.multiply(pre, d[t], out=dhs[t + 1 - p])
        return ()


class LSTMLayer(_Recurrence):
    """LSTM layer; inputs ``x, h0, c0, w_ih, w_hh[, b_ih, b_hh]``, outputs ``out, h_n, c_n``."""

    N_STATES = 2

    @staticmethod
    def _run(ctx, xp, x, states, w_ih, w_hh, b_ih, b_hh):
        hs, p = ctx.hs, ctx.prev
        n, h = states[0].shape
        t_len = x.shape[0]
        # i, f, o are sigmoids: their pre-activations are halved (by the time loop) so that
        # one tanh serves all four gates.
        scale = _gate_scale(xp, x.dtype, h)
        a = _project(x, w_ih, None)
        bias = None if b_ih is None else b_ih + b_hh  # added by the time loop
        shift = scale.copy()
        shift[2 * h:3 * h] = 0  # tanh gate: act = u; sigmoid gates: act = u/2 + 1/2
        dscale = -scale * scale  # d act / d pre = (1 - u^2) * scale^2
        cs = xp.empty_like(hs)
        cs[t_len if ctx.reverse else 0] = states[1]
        tc = xp.empty((t_len, n, h), x.dtype)
        # What backward needs, formed here while each step's arrays are still in cache:
        # coef = d(pre-activations)/d(c) for i, f, g and d(pre o)/dh; k = dc/dh via h.
        grad = hasattr(ctx, "needs_input_grad")
        coef = xp.empty_like(a) if grad else None
        k = xp.empty_like(tc) if grad else None
        rnn.lstm_forward(a, bias, hs, cs, tc, coef, k, w_hh, scale, shift, dscale, ctx.order,
                         p)
        ctx.acts, ctx.cs, ctx.tc, ctx.coef, ctx.k = a, cs, tc, coef, k
        return (cs[0 if ctx.reverse else t_len].copy(),)

    @staticmethod
    def backward(ctx, dout, *dstates):
        # On two threads BPTT and the large products can run at once (backend/rnn.py)
        x, w_ih, w_hh, _ = ctx.saved_tensors
        needs = ctx.needs_input_grad
        if needs[3] and needs[4] and (not ctx.bias or (needs[5] and needs[6])):
            dh, dc = (d.copy() for d in dstates)
            t_len = x.shape[0]
            h_prev = ctx.hs[1:] if ctx.reverse else ctx.hs[:t_len]
            done = rnn.lstm_backward_overlapped(dout, dh, dc, ctx.acts, ctx.coef, ctx.k,
                                                w_hh, w_ih, x, h_prev, ctx.order, needs[0],
                                                ctx.bias)
            if done is not None:
                dx, dw_ih, dw_hh, db = done
                grads = (dx, dh if needs[1] else None, dc if needs[2] else None, dw_ih,
                         dw_hh)
                return grads + ((db, db) if ctx.bias else ())
        return _Recurrence.backward(ctx, dout, *dstates)

    @staticmethod
    def _bptt(ctx, xp, dout, dstates, w_hh):
        dh, dc = dstates
        dg = rnn.lstm_backward(dout, dh, dc, ctx.acts, ctx.coef, ctx.k, w_hh, ctx.order)
        return dg, None, [dh, dc]

    @staticmethod
    def _tangent(ctx, xp, dgx, dhs, states, w_hh, dw_hh, db_hh):
        a, cs, tc, hs, p = ctx.acts, ctx.cs, ctx.tc, ctx.hs, ctx.prev
        h = a.shape[2] // 4
        dc = states[1]
        for t in ctx.order:
            dpre = _recurrent_tangent(dgx[t], dhs[t + p], hs[t + p], w_hh, dw_hh, db_hh)
            i, f, g, o = (a[t, :, k * h:(k + 1) * h] for k in range(4))
            di, df = dpre[:, :h] * i * (1 - i), dpre[:, h:2 * h] * f * (1 - f)
            dgg, do = dpre[:, 2 * h:3 * h] * (1 - g * g), dpre[:, 3 * h:] * o * (1 - o)
            dc = df * cs[t + p] + f * dc + di * g + i * dgg
            dhs[t + 1 - p] = do * tc[t] + o * (1 - tc[t] * tc[t]) * dc
        return (dc,)


def _gate_scale(xp, dtype, h):
    """1/2 for the LSTM's sigmoid gates (i, f, o), 1 for the tanh gate g."""
    s = xp.full(4 * h, 0.5, dtype)
    s[2 * h:3 * h] = 1
    return s


class GRULayer(_Recurrence):
    """GRU layer (PyTorch's r, z, n gates); outputs ``out, h_n``."""

    @staticmethod
    def _run(ctx, xp, x, states, w_ih, w_hh, b_ih, b_hh):
        hs, p = ctx.hs, ctx.prev
        n, h = states[0].shape
        t_len = x.shape[0]
        # r and z see both biases at once; n's hidden bias sits inside r * (...).
        b = None
        if b_ih is not None:
            b = b_ih.copy()
            b[:2 * h] += b_hh[:2 * h]
            b = _scaled(xp, b, h, 2)
        a = _project(x, _scaled(xp, w_ih, h, 2), b)
        whh_t = _scaled(xp, w_hh, h, 2).T
        hg = xp.empty((t_len, n, 3 * h), x.dtype)
        rnn.gru_forward(a, hg, hs, whh_t, b_hh, ctx.order, p)
        ctx.acts, ctx.hg = a, hg
        return ()

    @staticmethod
    def _bptt(ctx, xp, dout, dstates, w_hh):
        hs, t_len = ctx.hs, ctx.acts.shape[0]
        h_prev = hs[1:] if ctx.reverse else hs[:t_len]
        dh = dstates[0]
        dgx, dgh = rnn.gru_backward(dout, dh, ctx.acts, ctx.hg, h_prev, w_hh, ctx.order)
        return dgx, dgh, [dh]

    @staticmethod
    def _tangent(ctx, xp, dgx, dhs, states, w_hh, dw_hh, db_hh):
        a, hs, p = ctx.acts, ctx.hs, ctx.prev
        h = a.shape[2] // 3
        hn = ctx.hg[..., 2 * h:]
        for t in ctx.order:
            dhg = cpu.matmul(dhs[t + p], w_hh.T)
            if dw_hh is not None:
                cpu.matmul(hs[t + p], dw_hh.T, dhg, accumulate=True)
            if db_hh is not None:
                dhg += db_hh
            r, z, nn = a[t, :, :h], a[t, :, h:2 * h], a[t, :, 2 * h:]
            dr = (dgx[t, :, :h] + dhg[:, :h]) * r * (1 - r)
            dz = (dgx[t, :, h:2 * h] + dhg[:, h:2 * h]) * z * (1 - z)
            dn = (dgx[t, :, 2 * h:] + dr * hn[t] + r * dhg[:, 2 * h:]) * (1 - nn * nn)
            dhs[t + 1 - p] = dn + dz * (hs[t + p] - nn) + z * (dhs[t + p] - dn)
        return ()


# ---------------------------------------------------------------------- composed cells
def rnn_cell(x, h, w_ih, w_hh, b_ih=None, b_hh=None, nonlinearity: str = "tanh"):
    """One Elman step from primitives: ``act(x W_ih^T + b_ih + h W_hh^T + b_hh)``."""
    pre = _lin(x, w_ih, b_ih) + _lin(h, w_hh, b_hh)
    return pre.relu() if nonlinearity == "relu" else pre.tanh()


def lstm_cell(x, h, c, w_ih, w_hh, b_ih=None, b_hh=None):
    """One LSTM step from primitives; returns ``(h', c')``. Gate order i, f, g, o."""
    i, f, g, o = (_lin(x, w_ih, b_ih) + _lin(h, w_hh, b_hh)).chunk(4, -1)
    c = f.sigmoid() * c + i.sigmoid() * g.tanh()
    return o.sigmoid() * c.tanh(), c


def gru_cell(x, h, w_ih, w_hh, b_ih=None, b_hh=None):
    """One GRU step from primitives: r, z, n gates as in PyTorch."""
    xr, xz, xn = _lin(x, w_ih, b_ih).chunk(3, -1)
    hr, hz, hn = _lin(h, w_hh, b_hh).chunk(3, -1)
    r, z = (xr + hr).sigmoid(), (xz + hz).sigmoid()
    n = (xn + r * hn).tanh()
    return n + z * (h - n)


def _lin(x, w, b):
    return Linear.apply(x, w) if b is None else Linear.apply(x, w, b)
