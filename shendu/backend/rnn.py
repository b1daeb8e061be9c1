"""The time loops of the fused LSTM and GRU layers (``shendu/ops/rnn_ops.py``): one
dispatch function per loop, which runs every step's gate arithmetic by the compiled step
kernel of ``jit/rnn.py`` (one pass per step) or by the NumPy reference written here (a
dozen NumPy passes per step), and reports which to ``runtime.trace_paths()`` as
``(name, 'numba' | 'numpy')``, ``name`` the kernel (``'lstm_forward_step'``,
``'lstm_backward_step'``, ``'gru_forward_step'``, ``'gru_backward_step'``).

Both paths read and write the same arrays (the layer allocates those BPTT keeps), so
either backward follows either forward. The kernels take NumPy arrays of one float dtype
while the kernels are on. Each step's recurrent product goes through ``cpu.matmul`` inside
``cpu.small_products`` on both paths; forward, through ``cpu.StepProducts`` (MKL's GEMM
on the recurrent weight packed once per loop). With MKL and the kernels on several
threads, the LSTM's loops run as one compiled call each (``jit.lstm_forward_loop``,
``jit.lstm_backward_loop``; see ``jit/rnn.py`` for why).

The loops run over ``order`` (the time steps in the direction of the layer); states are
indexed by time: with ``hs`` of shape (T+1, N, H), step t reads ``hs[t + p]`` and writes
``hs[t + 1 - p]`` (``p`` is 1 for a reversed layer, else 0).
"""
from __future__ import annotations

import numpy as np

from . import blas, jit, runtime
from .cpu import MKL_MIN_WORK, StepProducts, _note, _xp, matmul, small_products

__all__ = ["lstm_forward", "lstm_backward", "gru_forward", "gru_backward"]


def _compiled_loop(*arrays) -> bool:
    """Whether an LSTM loop runs as one compiled call (``jit.lstm_forward_loop`` /
    ``lstm_backward_loop``): with MKL loaded (its products and vector tanh), the kernels on
    several threads (the loops wake no sleeping threads between a step's product and its
    kernel, see ``jit/rnn.py``) and C-contiguous NumPy arrays of one float dtype.
    Otherwise each step is called from here."""
    return (runtime.mkl_loaded() and not runtime.kernels_serial and jit.on_all(*arrays)
            and all(x.flags.c_contiguous for x in arrays))


# ---------------------------------------------------------------------- LSTM
def lstm_forward(a, bias, hs, cs, tc, coef, k, w_hh, scale, shift, dscale, order, p) -> None:
    """The LSTM's steps. ``a`` (T, N, 4H) holds the input projections, to which ``bias``
    (4H, or None) and each step's recurrent product with ``w_hh`` (4H, H) are added, and is
    overwritten by the gate activations; ``hs``/``cs`` (T+1, N, H) the hidden and cell
    states, ``tc`` (T, N, H) ``tanh(c)``; ``coef`` (T, N, 4H) and ``k`` (T, N, H) what BPTT
    needs (None when no graph is recorded); ``scale``/``shift``/``dscale`` the
    sigmoid-by-tanh constants of each gate row: the pre-activations are multiplied by
    ``scale`` (1/2 or 1: exact) before the one tanh.

    The compiled step with MKL's tanh (``jit.lstm_forward_step_vml``) adds the bias and
    scales each step's gates while they are in the cache; the other paths scale ``a`` and
    ``w_hh`` first."""
    if jit.on_all(a, cs, w_hh, *(() if bias is None else (bias,))):
        _note("lstm_forward_step", "numba")
        _lstm_forward_numba(a, bias, hs, cs, tc, coef, k, w_hh, scale, shift, dscale, order, p)
        return
    _note("lstm_forward_step", "numpy")
    whh = _prescale(a, bias, w_hh, scale)
    _lstm_forward_numpy(_xp(a), a, hs, cs, tc, coef, k, whh, scale, shift, dscale, order, p)


def _prescale(a, bias, w_hh, scale):
    """``a = (a + bias) * scale`` in place; returns ``w_hh`` with its rows scaled."""
    if bias is not None:
        a += bias
    a *= scale
    return w_hh * scale[:, None]


# Rows of the batch per thread from which each of two threads multiplies its own rows in
# the LSTM's forward step kernel (measured at N=32: 16 rows a thread gained)
_IN_STEP_MIN_ROWS = 8


def _in_step_products() -> bool:
    """Whether the two threads' forward step kernel multiplies each thread's rows itself
    (else both threads make each step's product together, on W_hh^T packed once): where
    the CPU has AVX-512. On the Xeon (AVX-512) the forward loop took 2.6-2.8 ms so against
    2.9-3.0 ms; on the AMD EPYC (AVX2), where MKL ran a 16-row product on one thread at
    38 GFLOP/s (199 us at H=256), the forward of ``nn.LSTM(256, 256)`` on (35, 32, 256)
    took 12.2 ms with shared products, and 14.1 ms with each thread's own (first quartiles
    of 10 rounds), even with those in the transposed form MKL ran faster there (docs/speed.md,
    "Targets").
    Decided by the CPU, not by timing: a process never switches on a whim of the load."""
    global _IN_STEP
    if _IN_STEP is None:
        import llvmlite.binding as llvm  # (comes with numba, which the kernels need)
        _IN_STEP = bool(llvm.get_host_cpu_features().get("avx512f", False))
    return _IN_STEP


_IN_STEP = None   # decided at the first forward that could use it


def _lstm_forward_numba(a, bias, hs, cs, tc, coef, k, w_hh, scale, shift, dscale, order, p):
    n, h = hs.shape[1:]
    grad = coef is not None
    if not grad:  # the kernel writes them anyway: one step's worth to reuse
        coef_t, k_t = np.empty((n, 4 * h), a.dtype), np.empty((n, h), a.dtype)
    if not runtime.mkl_loaded():  # the kernels' own tanh, on scaled pre-activations
        weights, step = _prescale(a, bias, w_hh, scale), jit.lstm_forward_step
        before, after = (), ()
    else:
        # MKL's vector tanh, faster than the kernels' own; the step adds the bias and scales
        bias = np.empty(0, a.dtype) if bias is None else np.ascontiguousarray(bias)
        step, threads = jit.lstm_forward_step_vml, jit.parts()
        if _compiled_loop(a, bias, hs, cs, tc, w_hh, scale, shift, dscale):
            if not grad:
                coef, k = coef_t[None], k_t[None]
            empty = np.empty(0, a.dtype)
            if threads == 2 and n >= 2 * _IN_STEP_MIN_ROWS and _in_step_products():
                # a row block each: the step kernel multiplies (jit/rnn.py)
                whh_t = np.empty(w_hh.shape[::-1], a.dtype)
                jit.transpose_into(np.ascontiguousarray(w_hh), whh_t)
                jit.lstm_forward_loop(a, bias, hs, cs, tc, coef, k, w_hh, empty, scale,
                                      shift, dscale, threads, p == 1, whh_t)
                return
            packed = blas.pack(w_hh.T) if n * w_hh.size >= MKL_MIN_WORK else None
            buffer = empty if packed is None else packed.buffer
            jit.lstm_forward_loop(a, bias, hs, cs, tc, coef, k, w_hh, buffer, scale, shift,
                                  dscale, threads, p == 1, empty)
            return
        weights, before = w_hh, (bias,)
        after = (threads, hs[0], np.empty(0, a.dtype))  # (the product is made below)
    with small_products(np):
        product = StepProducts(weights.T, n)
        for t in order:
            gt = a[t]
            product(hs[t + p], gt, accumulate=True)  # into x's part
            if grad:
                coef_t, k_t = coef[t], k[t]
            step(gt, *before, cs[t + p], cs[t + 1 - p], tc[t], hs[t + 1 - p], coef_t, k_t,
                 scale, shift, dscale, *after)


def _lstm_forward_numpy(xp, a, hs, cs, tc, coef, k, whh, scale, shift, dscale, order, p):
    n, h = hs.shape[1:]
    grad = coef is not None
    buf_t, bufh = xp.empty((4 * h, n), a.dtype), xp.empty((n, h), a.dtype)
    with small_products(xp):
        product = StepProducts(whh.T, n)
        for t in order:
            gt = a[t]
            if product.packed is not None:  # MKL, W^T packed once: added into the gates
                product(hs[t + p], gt, accumulate=True)
            else:
                # (W h^T)^T rather than h W^T: the same product, but this shape (many
                # rows, few columns) ran faster on OpenBLAS and unpacked MKL
                # (benchmarks/README.md).
                matmul(whh, hs[t + p].T, buf_t)
                gt += buf_t.T
            xp.tanh(gt, out=gt)
            if grad:
                d = coef[t]
                xp.multiply(gt, gt, out=d)
                d *= dscale
                d -= dscale
            gt *= scale
            gt += shift
            i, f, g, o = gt[:, :h], gt[:, h:2 * h], gt[:, 2 * h:3 * h], gt[:, 3 * h:]
            c, c_prev, h_new = cs[t + 1 - p], cs[t + p], hs[t + 1 - p]
            xp.multiply(f, c_prev, out=c)
            xp.multiply(i, g, out=bufh)
            c += bufh
            xp.tanh(c, out=tc[t])
            xp.multiply(o, tc[t], out=h_new)
            if grad:
                d[:, :h] *= g
                d[:, h:2 * h] *= c_prev
                d[:, 2 * h:3 * h] *= i
                d[:, 3 * h:] *= tc[t]
                xp.multiply(h_new, tc[t], out=k[t])
                xp.subtract(o, k[t], out=k[t])


def lstm_backward(dout, dh, dc, a, coef, k, w_hh, order):
    """BPTT through the LSTM's steps: the (T, N, 4H) gradients of the gate
    pre-activations, from the output gradient ``dout`` (T, N, H); ``dh`` and ``dc`` (the
    final states' gradients) are updated in place into the initial states'. ``a``,
    ``coef`` and ``k`` are the forward's."""
    dg = _xp(a).empty_like(coef)
    if jit.on_all(dout, dh, dc, a):
        _note("lstm_backward_step", "numba")
        dout = np.ascontiguousarray(dout)  # e.g. transposed back from batch_first
        step = jit.lstm_backward_step
        if _compiled_loop(dout, dh, dc, a, coef, k, w_hh):
            reverse = len(order) > 1 and order[0] > order[-1]
            jit.lstm_backward_loop(dout, dh, dc, a, coef, k, dg, w_hh, reverse)
            return dg
        with small_products(np):
            for t in reversed(order):
                step(dh, dc, dout[t], k[t], coef[t], a[t], dg[t])
                matmul(dg[t], w_hh, dh)
        return dg
    _note("lstm_backward_step", "numpy")
    xp = _xp(a)
    t_len, n, h4 = a.shape
    h = h4 // 4
    f = a[..., h:2 * h]
    coef4, dg4 = coef.reshape(t_len, n, 4, h), dg.reshape(t_len, n, 4, h)
    bufh = xp.empty_like(dh)
    with small_products(xp):
        for t in reversed(order):
            dh += dout[t]
            xp.multiply(dh, k[t], out=bufh)
            dc += bufh
            xp.multiply(coef4[t, :, :3], dc[:, None, :], out=dg4[t, :, :3])
            xp.multiply(coef4[t, :, 3], dh, out=dg4[t, :, 3])
            dc *= f[t]
            matmul(dg[t], w_hh, dh)
    return dg


# Steps per chunk of ``lstm_backward_overlapped``'s large products: about 128 rows (4 steps
# at N=32). Smaller chunks start the second thread sooner but run its products slower.
_CHUNK_ROWS = 128
# Polls the second thread waits for a chunk before leaving the rest to the caller (the
# first 20,000 spin, a few microseconds; each later one yields the core, a microsecond or
# more): far longer than a chunk takes, short against a stalled run
_PATIENCE = 300_000


def lstm_backward_overlapped(dout, dh, dc, a, coef, k, w_hh, w_ih, x, h_prev, order,
                             need_dx, bias):
    """BPTT and the large products after it, on two threads at once
    (``jit.lstm_backward_overlapped``): ``(dx, dw_ih, dw_hh, db)`` (``dx`` None unless
    ``need_dx``, ``db`` None unless ``bias``), ``dh``/``dc`` updated as by
    ``lstm_backward``. ``x`` (T, N, I) is the layer's input, ``h_prev`` (T, N, H) the
    state each step read. None (nothing done) where it does not apply: it needs what the
    compiled loops need, exactly two kernel threads (on more, the loop's products are
    faster spread over all of them than on one) and at least three chunks of steps."""
    t_len, n, h4 = a.shape
    chunk = max(1, -(-_CHUNK_ROWS // n))
    n_chunks = -(-t_len // chunk)
    if n_chunks < 3 or jit.parts() != 2 or not isinstance(x, np.ndarray):
        return None
    dout, x = np.ascontiguousarray(dout), np.ascontiguousarray(x)
    if not _compiled_loop(dout, dh, dc, a, coef, k, w_hh, w_ih, x, h_prev):
        return None
    _note("lstm_backward_step", "numba")
    reverse = len(order) > 1 and order[0] > order[-1]
    n_in, hid = x.shape[2], h4 // 4
    dt = a.dtype
    dg = np.empty_like(coef)
    g2 = dg.reshape(t_len * n, h4)
    x2, h2 = x.reshape(t_len * n, n_in), h_prev.reshape(t_len * n, hid)
    dx = np.empty((t_len * n, n_in), dt) if need_dx else np.empty((0, n_in), dt)
    dw_ih, dw_ih_b = np.empty((h4, n_in), dt), np.empty((h4, n_in), dt)
    dw_hh, dw_hh_b = np.empty((h4, hid), dt), np.empty((h4, hid), dt)
    db, db_b = (np.empty(h4, dt), np.empty(h4, dt)) if bias else (np.empty(0, dt),) * 2
    progress = np.zeros(2, np.int64)
    split = _overlap_split(n_chunks, n_in, hid, need_dx)
    jit.lstm_backward_overlapped(dout, dh, dc, a, coef, k, dg, w_hh, w_ih, x2, h2, dx,
                                 dw_ih, dw_hh, db, dw_ih_b, dw_hh_b, db_b, progress,
                                 chunk, split, reverse, _PATIENCE)
    for c in range(int(progress[1]), split):  # the second thread gave up waiting
        jit.lstm_chunk_products(g2, x2, h2, w_ih, dx, dw_ih_b, dw_hh_b, db_b, c, chunk,
                                t_len, n, reverse, c == 0)
    if split > 0:
        dw_ih += dw_ih_b
        dw_hh += dw_hh_b
        if bias:
            db += db_b
    return (dx.reshape(x.shape) if need_dx else None, dw_ih, dw_hh, db if bias else None)


def _overlap_split(n_chunks, n_in, hid, need_dx):
    """How many chunks the second thread takes so that both threads end together: the
    first thread runs the loop (time ``rho`` times all chunks' products) and then the
    rest. The loop's products are ``hid / (2 n_in + hid)`` of the chunks' (``hid /
    (n_in + hid)`` without ``dx``) and run at about 80% of their rate (measured at N=32,
    H=256, one thread each: benchmarks/README.md)."""
    rho = 1.25 * hid / ((2 if need_dx else 1) * n_in + hid)
    return min(n_chunks - 1, max(1, round(n_chunks * (1 + rho) / 2)))


# ---------------------------------------------------------------------- GRU
def gru_forward(a, hg, hs, whh_t, b_hh, order, p) -> None:
    """The GRU's steps. ``a`` (T, N, 3H) holds the (scaled) input projections, both
    biases of r and z and the input bias of n, and is overwritten by the gate activations;
    ``hg`` (T, N, 3H) receives each step's recurrent product (plus ``b_hh``'s n part, None
    without biases), ``hs`` (T+1, N, H) the hidden states; ``whh_t`` the scaled recurrent
    weight, transposed."""
    if jit.on_all(a, hg, whh_t, *(() if b_hh is None else (b_hh,))):
        _note("gru_forward_step", "numba")
        h = hs.shape[2]
        b_hn = np.empty(0, a.dtype) if b_hh is None else np.ascontiguousarray(b_hh[2 * h:])
        step = jit.gru_forward_step
        with small_products(np):
            product = StepProducts(whh_t, hs.shape[1])
            for t in order:
                at, ht = a[t], hg[t]
                product(hs[t + p], ht)
                step(at, ht, hs[t + p], hs[t + 1 - p], b_hn)
        return
    _note("gru_forward_step", "numpy")
    xp = _xp(a)
    n, h = hs.shape[1:]
    bufh = xp.empty((n, h), a.dtype)
    with small_products(xp):
        product = StepProducts(whh_t, n)
        for t in order:
            at, ht = a[t], hg[t]
            product(hs[t + p], ht)
            if b_hh is not None:
                ht[:, 2 * h:] += b_hh[2 * h:]
            rz, nn = at[:, :2 * h], at[:, 2 * h:]
            rz += ht[:, :2 * h]
            xp.tanh(rz, out=rz)
            rz *= 0.5
            rz += 0.5
            xp.multiply(rz[:, :h], ht[:, 2 * h:], out=bufh)
            nn += bufh
            xp.tanh(nn, out=nn)
            xp.subtract(hs[t + p], nn, out=bufh)  # h' = n + z * (h - n)
            bufh *= rz[:, h:]
            xp.add(nn, bufh, out=hs[t + 1 - p])


def gru_backward(dout, dh, a, hg, h_prev, w_hh, order):
    """BPTT through the GRU's steps: ``(dgx, dgh)``, the (T, N, 3H) gradients of the input
    and recurrent pre-activations, from the output gradient ``dout``; ``dh`` (the final
    state's gradient) is updated in place into the initial state's. ``a`` and ``hg`` are
    the forward's, ``h_prev`` (T, N, H) the state each step read."""
    xp = _xp(a)
    dgx, dgh = xp.empty_like(a), xp.empty_like(a)
    if jit.on_all(dout, dh, a, hg):
        _note("gru_backward_step", "numba")
        dout = np.ascontiguousarray(dout)  # e.g. transposed back from batch_first
        step = jit.gru_backward_step
        with small_products(np):
            for t in reversed(order):
                step(dh, dout[t], a[t], hg[t], h_prev[t], dgx[t], dgh[t])
                matmul(dgh[t], w_hh, dh, accumulate=True)
        return dgx, dgh
    _note("gru_backward_step", "numpy")
    h = a.shape[2] // 3
    r, z, nn, hn = a[..., :h], a[..., h:2 * h], a[..., 2 * h:], hg[..., 2 * h:]
    pn = (1 - z) * (1 - nn * nn)   # d(pre_n)/dh'
    pz = (h_prev - nn) * z * (1 - z)  # d(pre_z)/dh'
    pr = hn * r * (1 - r)            # d(pre_r)/d(pre_n)
    with small_products(xp):
        for t in reversed(order):
            dh += dout[t]
            gx, gh = dgx[t], dgh[t]
            xp.multiply(dh, pn[t], out=gx[:, 2 * h:])
            xp.multiply(dh, pz[t], out=gx[:, h:2 * h])
            xp.multiply(gx[:, 2 * h:], pr[t], out=gx[:, :h])
            gh[:, :2 * h] = gx[:, :2 * h]
            xp.multiply(gx[:, 2 * h:], r[t], out=gh[:, 2 * h:])
            dh *= z[t]
            matmul(gh, w_hh, dh, accumulate=True)
    return dgx, dgh
