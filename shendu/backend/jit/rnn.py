"""Per-step gate arithmetic of the fused LSTM and GRU layers (``shendu/ops/rnn_ops.py``).

Each time step of those layers is one matrix product (by ``blas.matmul``) and then a
dozen NumPy passes over the step's gates and states, each reading and writing (N, H) or
(N, 4H) arrays. A kernel here does one step's passes in one: every (batch row, hidden
unit) reads its gate pre-activations and states once and writes what the step produces
(and, when a graph is recorded, what backpropagation will need) once. The arithmetic is
the NumPy code's, operation for operation and in its dtype, except for ``tanh``.

Why an own ``tanh``. numba compiles ``math.tanh`` to a scalar libm call, many times
slower than NumPy's vectorised tanh and slower than all of the NumPy passes together.
``_tanh`` uses only arithmetic that LLVM vectorises:
``tanh(a) = E / (E + 2)`` with ``E = expm1(2a)`` (range reduction by ln 2, Taylor series,
the power of two from an integer shift), and a polynomial (float32) or rational (float64)
near 0, where that quotient loses bits. Measured against long-double tanh on ~3 million
points: float32 within 1.5 ulp (NumPy's within 1.4), float64 within 1.5 ulp (NumPy 1.2);
±0, ±inf and NaN come out as from ``np.tanh``. It costs a few times NumPy's tanh per
element (both branches are computed, as vector selects), so the LSTM forward kernel's
five tanh per unit are most of its time; the kernels still beat the NumPy passes per step
(numbers: benchmarks/README.md, "Measurements behind the code").

With MKL, the LSTM's forward step is ``lstm_forward_step_vml`` instead, with MKL's vector
tanh (faster and more accurate than ``_tanh``), and on several threads the LSTM's time
loops run compiled end to end (``lstm_forward_loop``, ``lstm_backward_loop``, below).

Work is split in blocks of up to ``_COLUMNS`` hidden units of one batch row, so that a
batch of one still gives every thread work and the inner loops run over contiguous
columns (vectorised). All arrays are C-contiguous and of one float dtype.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange, types
from numba.extending import intrinsic, overload

from .elementwise import HELPER, kernel
from .mkl import N, T, gemm_at, gemm_packed_raw, gemm_raw, tanh_at
from .mkl import threads_here as _mkl_threads_here

_COLUMNS = 64  # hidden units per block: N*H/64 blocks (128 for N=32, H=256)

_f4 = np.float32


def _tanh(x):
    """``tanh`` of a float32/float64 scalar, for compiled code (see the module docstring)."""
    return np.tanh(x)


@overload(_tanh, jit_options={"forceinline": True})
def _tanh_compiled(x):
    if not isinstance(x, types.Float):
        return None
    if x.bitwidth == 32:
        def tanh32(x):
            a = abs(x)
            # tanh rounds to 1 beyond 9.1; the clamp keeps 2^n inside int32
            y = _f4(2) * a if a < _f4(10) else _f4(20)
            nf = np.floor(y * _f4(1.442695) + _f4(0.5))
            # y - n ln 2 in two parts: n * 0.693359375 is exact for n < 2^15
            r = (y - nf * _f4(0.693359375)) - nf * _f4(-2.12194440e-4)
            p = _f4(1 / 5040)  # expm1(r) to 2e-8 for |r| <= ln2/2
            p = p * r + _f4(1 / 720)
            p = p * r + _f4(1 / 120)
            p = p * r + _f4(1 / 24)
            p = p * r + _f4(1 / 6)
            p = p * r + _f4(0.5)
            p = p * r + _f4(1)
            s = _f4(np.int32(1) << np.int32(nf))
            e = s * (p * r) + (s - _f4(1))  # expm1(y) = 2^n expm1(r) + 2^n - 1
            big = e / (e + _f4(2))
            # below 0.4 the quotient is off by up to 3 ulp: the series, to x^13, is not
            z = x * x
            q = _f4(21844 / 6081075)
            q = q * z - _f4(1382 / 155925)
            q = q * z + _f4(62 / 2835)
            q = q * z - _f4(17 / 315)
            q = q * z + _f4(2 / 15)
            q = q * z - _f4(1 / 3)
            small = x + x * z * q
            if x == 0 or x != x:  # keeps -0.0 and NaN
                return x
            if a < _f4(0.4):
                return small
            return -big if x < 0 else big
        return tanh32

    def tanh64(x):
        a = abs(x)
        y = 2.0 * a if a < 20.0 else 40.0  # tanh rounds to 1 beyond 19.1
        nf = np.floor(y * 1.4426950408889634 + 0.5)
        r = (y - nf * 0.693145751953125) - nf * 1.4286068203094173e-06  # exact first part
        p = 1.6059043836821613e-10  # 1/13!: expm1(r) to 1e-17 for |r| <= ln2/2
        p = p * r + 2.08767569878681e-09
        p = p * r + 2.505210838544172e-08
        p = p * r + 2.755731922398589e-07
        p = p * r + 2.7557319223985893e-06
        p = p * r + 2.48015873015873e-05
        p = p * r + 0.0001984126984126984
        p = p * r + 0.001388888888888889
        p = p * r + 0.008333333333333333
        p = p * r + 0.041666666666666664
        p = p * r + 0.16666666666666666
        p = p * r + 0.5
        p = p * r + 1.0
        s = float(1 << int(nf))
        e = s * (p * r) + (s - 1.0)
        big = e / (e + 2.0)
        # below 0.625: Cephes' rational tanh (S. L. Moshier), error 2.5e-16
        z = x * x
        num = (-9.64399179425052238628e-1 * z - 9.92877231001918586564e1) * z \
            - 1.61468768441708447952e3
        den = ((z + 1.12811678491632931402e2) * z + 2.23548839060100448583e3) * z \
            + 4.84406305325125486048e3
        small = x + x * z * (num / den)
        if x == 0 or x != x:
            return x
        if a < 0.625:
            return small
        return -big if x < 0 else big
    return tanh64


@kernel
def tanh_array(x, out):
    """``out = tanh(x)`` with the kernels' ``_tanh`` (flat arrays; the tests check it)."""
    for i in prange(x.size):
        out[i] = _tanh(x[i])


@njit(**HELPER)
def _block(blk, hid):
    """Work block ``blk`` of rows with ``hid`` units: its batch row and its units j0:j1.

    They come back unsigned, and the kernels index with unsigned integers only (``hid`` as
    ``np.uint64`` too): numba wraps an index that may be negative (i < 0: i + size), and
    that select on every access kept LLVM from vectorising the loops (an LSTM step's
    kernels took 5-6x longer). For the same reason the kernels index the 2-D arrays
    directly: row views made inside the prange loop would count as aliases, and numba then
    leaves out the ``noalias`` that lets LLVM vectorise."""
    per_row = (hid + _COLUMNS - 1) // _COLUMNS
    j0 = (blk % per_row) * _COLUMNS
    return np.uint64(blk // per_row), np.uint64(j0), np.uint64(min(j0 + _COLUMNS, hid))


@njit(**HELPER)
def _n_blocks(rows, hid):
    """How many work blocks ``rows`` rows of ``hid`` units make (see ``_block``)."""
    return rows * ((hid + _COLUMNS - 1) // _COLUMNS)


# ---------------------------------------------------------------------------- LSTM
@kernel(serial=False)  # its serial build is not vectorised (see Kernel)
def lstm_forward_step(gates, c_prev, c, tc, h, coef, k, scale, shift, dscale):
    """One LSTM step after its product. ``gates`` (N, 4H): the pre-activations i, f, g, o
    (sigmoid rows pre-halved), replaced by the activations ``tanh(pre) * scale + shift``;
    writes ``c = f c_prev + i g``, ``tc = tanh(c)``, ``h = o tc``, and BPTT's coefficients:
    ``coef`` (N, 4H) = d(pre i, f, g)/dc and d(pre o)/dh, ``k = o - h tc`` (N, H; dc/dh
    through h). Without a graph the caller passes scratch for them: skipping them behind a
    branch made the loop slower than writing them."""
    n, hid = c.shape
    u = np.uint64(hid)
    for blk in prange(_n_blocks(n, hid)):
        row, j0, j1 = _block(blk, hid)
        for j in range(j0, j1):
            ci, cf, cg, co = j, u + j, u + u + j, u + u + u + j
            ui, uf = _tanh(gates[row, ci]), _tanh(gates[row, cf])
            ug, uo = _tanh(gates[row, cg]), _tanh(gates[row, co])
            i = ui * scale[ci] + shift[ci]
            f = uf * scale[cf] + shift[cf]
            gg = ug * scale[cg] + shift[cg]
            o = uo * scale[co] + shift[co]
            gates[row, ci], gates[row, cf], gates[row, cg], gates[row, co] = i, f, gg, o
            cp = c_prev[row, j]
            cv = f * cp + i * gg
            t = _tanh(cv)
            hv = o * t
            c[row, j], tc[row, j], h[row, j] = cv, t, hv
            # d act / d pre = (1 - u^2) scale^2, as u*u*dscale - dscale (dscale = -scale^2)
            coef[row, ci] = (ui * ui * dscale[ci] - dscale[ci]) * gg
            coef[row, cf] = (uf * uf * dscale[cf] - dscale[cf]) * cp
            coef[row, cg] = (ug * ug * dscale[cg] - dscale[cg]) * i
            coef[row, co] = (uo * uo * dscale[co] - dscale[co]) * t
            k[row, j] = o - hv * t


@kernel(serial=False)  # its serial build is not vectorised (see Kernel)
def lstm_forward_step_vml(gates, bias, c_prev, c, tc, h, coef, k, scale, shift, dscale,
                          threads, h_prev, whh_t):
    """``lstm_forward_step`` with MKL's vector tanh (VML), on ``threads``: the same
    arguments, results and arithmetic but for ``tanh``, which VML computes to within an ulp
    (0.56 ulp measured in float32, NumPy's 1.4) several times faster than ``_tanh`` (at
    N=32, H=256: 23 us a step on one thread, against 70; benchmarks/README.md), and for
    the pre-activations in ``gates``: here not yet biased nor scaled; the kernel adds
    ``bias`` (4H; empty for none) and multiplies by ``scale`` (1/2 or 1, exact) itself,
    in the cache, rather than the layer in passes over all steps' projections and over
    the weights. Needs MKL.

    VML's cost per call is that of ~500 values, so the work is split in whole rows (one
    call over a row's 4H gates, one over its H cells) and only split a row into column
    chunks when there are fewer rows than threads (four gate calls per chunk then).

    With ``whh_t`` (W_hh^T, C-contiguous (H, 4H); empty: none) and at least as many rows
    as threads, each thread first adds the recurrent product of its own rows of
    ``h_prev`` (N, H) into its rows of ``gates``, on one MKL thread: one parallel region
    per step instead of two, and products the threads run apart (a 16-row product on each
    of two threads took ~45 us, the 32-row product on both 55-65 at N=32, H=256;
    benchmarks/README.md). Unpacked: on one thread packing W_hh^T (from W_hh) took longer
    than transposing it and saved nothing per product."""
    n, hid = c.shape
    per_row = max(1, -(-threads // n))  # column chunks per row
    items = n * per_row
    u = np.uint64(hid)
    with_bias = bias.size > 0
    product = whh_t.size > 0 and per_row == 1
    for w in prange(threads):
        before = _mkl_threads_here(1)
        if product:  # rows first..last of this thread (items are rows here)
            first, last = w * items // threads, (w + 1) * items // threads
            if last > first:
                gemm_at(h_prev, first * hid, last - first, whh_t, hid, 4 * hid, gates,
                        first * 4 * hid, 1.0)
        for item in range(w * items // threads, (w + 1) * items // threads):
            row, q = np.uint64(item // per_row), item % per_row
            j0, j1 = np.uint64(q * hid // per_row), np.uint64((q + 1) * hid // per_row)
            g0 = row * u * np.uint64(4)  # flat offset of the row's gates
            if per_row == 1:
                if with_bias:
                    for j in range(u * np.uint64(4)):
                        gates[row, j] = (gates[row, j] + bias[j]) * scale[j]
                else:
                    for j in range(u * np.uint64(4)):
                        gates[row, j] *= scale[j]
                tanh_at(gates, g0, 4 * hid, gates, g0)  # u = tanh(pre), in place
            else:
                for gate in range(4):
                    off = np.uint64(gate) * u
                    if with_bias:
                        for j in range(off + j0, off + j1):
                            gates[row, j] = (gates[row, j] + bias[j]) * scale[j]
                    else:
                        for j in range(off + j0, off + j1):
                            gates[row, j] *= scale[j]
                    tanh_at(gates, g0 + off + j0, j1 - j0, gates, g0 + off + j0)
            for j in range(j0, j1):
                ci, cf, cg, co = j, u + j, u + u + j, u + u + u + j
                ui, uf = gates[row, ci], gates[row, cf]
                ug, uo = gates[row, cg], gates[row, co]
                i = ui * scale[ci] + shift[ci]
                f = uf * scale[cf] + shift[cf]
                gg = ug * scale[cg] + shift[cg]
                o = uo * scale[co] + shift[co]
                gates[row, ci], gates[row, cf], gates[row, cg], gates[row, co] = i, f, gg, o
                cp = c_prev[row, j]
                c[row, j] = f * cp + i * gg
                coef[row, ci] = (ui * ui * dscale[ci] - dscale[ci]) * gg
                coef[row, cf] = (uf * uf * dscale[cf] - dscale[cf]) * cp
                coef[row, cg] = (ug * ug * dscale[cg] - dscale[cg]) * i
                coef[row, co] = uo * uo * dscale[co] - dscale[co]  # times tanh(c) below
            tanh_at(c, row * u + j0, j1 - j0, tc, row * u + j0)
            for j in range(j0, j1):
                co = u + u + u + j
                t, o = tc[row, j], gates[row, co]
                hv = o * t
                h[row, j] = hv
                coef[row, co] *= t
                k[row, j] = o - hv * t
        _mkl_threads_here(before)


@kernel(serial=False)  # its serial build is not vectorised (see Kernel)
def lstm_backward_step(dh, dc, dout, k, coef, gates, dgates):
    """One reverse LSTM step before its product. With ``dh`` (N, H) the gradient reaching
    h from the later step and ``dh + dout`` its total: ``dc += (dh + dout) k`` and
    ``dgates`` (N, 4H) = ``coef`` times dc (i, f, g) and times dh + dout (o); then ``dc *= f``
    (f from the activations ``gates``) for the earlier step. ``dh`` is left for the product
    ``dgates @ W_hh`` to overwrite."""
    n, hid = dh.shape
    u = np.uint64(hid)
    for blk in prange(_n_blocks(n, hid)):
        row, j0, j1 = _block(blk, hid)
        for j in range(j0, j1):
            ci, cf, cg, co = j, u + j, u + u + j, u + u + u + j
            dhv = dh[row, j] + dout[row, j]
            dcv = dc[row, j] + dhv * k[row, j]
            dgates[row, ci] = coef[row, ci] * dcv
            dgates[row, cf] = coef[row, cf] * dcv
            dgates[row, cg] = coef[row, cg] * dcv
            dgates[row, co] = coef[row, co] * dhv
            dc[row, j] = dcv * gates[row, cf]


# ------------------------------------------------------------- LSTM time loops (MKL)
# Each step of the loops in ``backend/rnn.py`` is an MKL product and a kernel, both
# parallel regions of the one GNU OpenMP pool. Between them, the Python loop's few
# microseconds were long enough for the pool's threads to go to sleep (shendu lets them
# spin only briefly: ``runtime.openmp_wait_policy``), and waking them took tens of
# microseconds per region (a 1x1 step kernel took 30 us so, 2.5 us with the threads
# spinning). These loops issue every step's product and step kernel from compiled code,
# back to back, with no Python in between. They call the kernels' parallel versions, so
# they serve only while the kernels have several threads.
_lstm_forward_step_parallel = lstm_forward_step_vml.parallel
_lstm_backward_step_parallel = lstm_backward_step.parallel


@njit(nogil=True, cache=True)
def lstm_forward_loop(a, bias, hs, cs, tc, coef, k, w_hh, whh_t_packed, scale, shift,
                      dscale, threads, reverse, whh_t):
    """All steps of ``backend.rnn.lstm_forward`` (states indexed by time, as there; ``bias``
    added and ``scale`` applied at each step, ``bias`` empty for none): ``whh_t_packed`` is
    the buffer of ``blas.pack(W_hh^T)`` (H, 4H), unscaled, or empty to multiply by ``w_hh``
    (4H, H) unpacked, or, given ``whh_t`` (W_hh^T, C-contiguous; else empty), the step
    kernel multiplies, each thread its rows; ``coef`` and ``k`` are
    (T, ...) when a graph is recorded, else one step's scratch (1, ...). All arrays
    C-contiguous, of one dtype."""
    t_len = a.shape[0]
    hid = hs.shape[2]
    grad = coef.shape[0] == t_len
    p = 1 if reverse else 0
    for s in range(t_len):
        t = t_len - 1 - s if reverse else s
        gates = a[t]
        if whh_t.size > 0:
            pass  # the step kernel multiplies, each thread its rows
        elif whh_t_packed.size > 0:
            gemm_packed_raw(hs[t + p], whh_t_packed, hid, 4 * hid, gates, 1.0)
        else:
            gemm_raw(N, T, hs.shape[1], 4 * hid, hid, hs[t + p], hid, w_hh, hid, 1.0, gates,
                     4 * hid)
        j = t if grad else 0
        _lstm_forward_step_parallel(gates, bias, cs[t + p], cs[t + 1 - p], tc[t],
                                    hs[t + 1 - p], coef[j], k[j], scale, shift, dscale,
                                    threads, hs[t + p], whh_t)


@njit(nogil=True, cache=True)
def lstm_backward_loop(dout, dh, dc, a, coef, k, dg, w_hh, reverse):
    """All steps of ``backend.rnn.lstm_backward`` (its arguments), from the last step
    back; C-contiguous arrays of one dtype. ``dg[t] @ w_hh`` is multiplied unpacked: packing
    ``w_hh`` (4H, H) made this loop slower, pack included or not (benchmarks/README.md)."""
    t_len, n, h4 = a.shape
    hid = h4 // 4
    for s in range(t_len):
        t = s if reverse else t_len - 1 - s
        _lstm_backward_step_parallel(dh, dc, dout[t], k[t], coef[t], a[t], dg[t])
        gemm_raw(N, N, n, hid, h4, dg[t], h4, w_hh, hid, 0.0, dh, hid)


# ------------------------------------------------- LSTM backward, two threads at once
# On two threads the backward loop above runs each step's product on both (32 x 1024 @
# 1024 x 256 at N=32, H=256: 60-70 us, three quarters of the rate the layer's large
# products reach), and the three large products of the weight and input gradients wait
# for the loop's end. ``lstm_backward_overlapped`` gives the loop one thread and the
# large products, cut into chunks of steps, the other, from the first chunk the loop
# finishes: both threads stay busy on work that runs at its full one-thread rate.
# Each thread owns a fixed set of chunks and its own sums (``split`` decides, not timing),
# so the results do not depend on which thread is faster.


# The second thread polls this many times (a few microseconds) before yielding its core
# between polls: on a busy machine the loop's thread may be waiting for that core.
_SPIN_POLLS = 20_000
_sched_yield = types.ExternalFunction("sched_yield", types.int32())


@intrinsic
def _load_acquire(typingctx, arr, i):
    """``arr[i]`` (an int64 array) read as an atomic acquire load: a loop polling it sees
    another thread's release store, and the reads after it see what that thread wrote
    before (a plain load may be hoisted out of the loop: numba marks a parallel loop's
    arrays as aliasing nothing)."""
    sig = types.int64(arr, i)

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        ptr = builder.gep(ary.data, [args[1]])
        return builder.load_atomic(ptr, "acquire", 8)
    return sig, codegen


@intrinsic
def _store_release(typingctx, arr, i, value):
    """``arr[i] = value`` (int64) as an atomic release store: what this thread wrote
    before is seen by a thread that reads ``value`` by ``_load_acquire``."""
    sig = types.void(arr, i, value)

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        ptr = builder.gep(ary.data, [args[1]])
        builder.store_atomic(args[2], ptr, "release", 8)
        return context.get_dummy_value()
    return sig, codegen


@njit(**HELPER)
def _chunk_rows(c, chunk, t_len, n, reverse):
    """The rows (of the flattened (T*N, ...) arrays) of chunk ``c``: its ``chunk`` steps
    in the loop's order (last step first unless ``reverse``)."""
    s0, s1 = c * chunk, min((c + 1) * chunk, t_len)
    if reverse:
        return s0 * n, s1 * n
    return (t_len - s1) * n, (t_len - s0) * n


@njit(**HELPER)
def _chunk_products(g2, x, h_prev, w_ih, dx, dw_ih, dw_hh, db, r0, r1, first):
    """One chunk's share of the large products: ``dx[r0:r1] = g2[r0:r1] @ w_ih`` (unless
    ``dx`` is empty), and ``g2[r0:r1]^T @ x[r0:r1]``, ``... @ h_prev[r0:r1]`` and the column
    sums of ``g2[r0:r1]`` written (``first``) or added into ``dw_ih``, ``dw_hh`` and ``db``
    (unless empty)."""
    rows, h4 = r1 - r0, g2.shape[1]
    n_in, hid = x.shape[1], h_prev.shape[1]
    beta = 0.0 if first else 1.0
    g = g2[r0:]
    if dx.size > 0:
        gemm_raw(N, N, rows, n_in, h4, g, h4, w_ih, n_in, 0.0, dx[r0:], n_in)
    gemm_raw(T, N, h4, n_in, rows, g, h4, x[r0:], n_in, beta, dw_ih, n_in)
    gemm_raw(T, N, h4, hid, rows, g, h4, h_prev[r0:], hid, beta, dw_hh, hid)
    if db.size > 0:
        if first:
            db[:] = 0
        for r in range(r0, r1):
            for j in range(h4):
                db[j] += g2[r, j]


@njit(nogil=True, cache=True)
def lstm_chunk_products(g2, x, h_prev, w_ih, dx, dw_ih, dw_hh, db, c, chunk, t_len, n,
                        reverse, first):
    """Chunk ``c``'s products, as ``lstm_backward_overlapped`` makes them (its arguments;
    ``t_len`` steps of ``n`` rows): for the chunks its second thread left to the caller."""
    r0, r1 = _chunk_rows(c, chunk, t_len, n, reverse)
    _chunk_products(g2, x, h_prev, w_ih, dx, dw_ih, dw_hh, db, r0, r1, first)


@kernel(serial=False)  # the step's loop vectorises only in the parallel build
def lstm_backward_overlapped(dout, dh, dc, a, coef, k, dg, w_hh, w_ih, x, h_prev, dx,
                             dw_ih, dw_hh, db, dw_ih_b, dw_hh_b, db_b, progress, chunk,
                             split, reverse, patience):
    """``lstm_backward_loop`` and the products after it, on two threads at once (see
    above). Thread 0 runs the loop (``dout``, ``dh``, ``dc``, ``a``, ``coef``, ``k``,
    ``dg``, ``w_hh``, ``reverse`` as there), then chunks ``split..``; thread 1 runs chunks
    ``0..split-1`` as the loop finishes them. Chunk ``c`` is ``chunk`` steps in the loop's
    order; its products (``_chunk_products``) take ``dg``'s rows as ``g2`` (T*N, 4H), ``x``
    (T*N, I), ``h_prev`` (T*N, H, the state each step read) and ``w_ih`` (4H, I), write
    ``dx`` (T*N, I; empty: not needed) and sum into ``dw_ih``, ``dw_hh``, ``db`` (4H; empty:
    no bias) on thread 0 and ``dw_ih_b``, ``dw_hh_b``, ``db_b`` on thread 1; the caller
    adds the two. ``progress`` (int64, 2): steps the loop has finished, chunks thread 1
    has finished (it spins, then yields its core between polls, and stops waiting after
    ``patience`` polls without news, e.g. when the runtime gave the loop no thread of its
    own, leaving its other chunks to the caller). One MKL thread each."""
    t_len, n, h4 = a.shape
    hid = h4 // 4
    u = np.uint64(hid)
    g2 = dg.reshape(t_len * n, h4)
    n_chunks = (t_len + chunk - 1) // chunk
    for w in prange(2):
        before = _mkl_threads_here(1)
        if w == 0:
            for s in range(t_len):
                t = np.uint64(s if reverse else t_len - 1 - s)
                for row in range(np.uint64(n)):
                    for j in range(u):
                        ci, cf, cg, co = j, u + j, u + u + j, u + u + u + j
                        dhv = dh[row, j] + dout[t, row, j]
                        dcv = dc[row, j] + dhv * k[t, row, j]
                        dg[t, row, ci] = coef[t, row, ci] * dcv
                        dg[t, row, cf] = coef[t, row, cf] * dcv
                        dg[t, row, cg] = coef[t, row, cg] * dcv
                        dg[t, row, co] = coef[t, row, co] * dhv
                        dc[row, j] = dcv * a[t, row, cf]
                gemm_raw(N, N, n, hid, h4, dg[t], h4, w_hh, hid, 0.0, dh, hid)
                _store_release(progress, 0, s + 1)
            for c in range(split, n_chunks):
                r0, r1 = _chunk_rows(c, chunk, t_len, n, reverse)
                _chunk_products(g2, x, h_prev, w_ih, dx, dw_ih, dw_hh, db, r0, r1,
                                c == split)
        else:
            for c in range(split):
                need = min((c + 1) * chunk, t_len)
                polls = 0
                while _load_acquire(progress, 0) < need and polls < patience:
                    polls += 1
                    if polls > _SPIN_POLLS:  # a core of its own is not certain: share it
                        _sched_yield()
                if _load_acquire(progress, 0) < need:
                    break
                r0, r1 = _chunk_rows(c, chunk, t_len, n, reverse)
                _chunk_products(g2, x, h_prev, w_ih, dx, dw_ih_b, dw_hh_b, db_b, r0, r1,
                                c == 0)
                _store_release(progress, 1, c + 1)
        _mkl_threads_here(before)


# ---------------------------------------------------------------------------- GRU
@kernel
def gru_forward_step(gates, hg, h_prev, h, b_hn):
    """One GRU step after its product ``hg = h_prev @ W_hh^T`` (N, 3H; r and z rows
    pre-halved). ``gates`` (N, 3H): the input parts r, z, n, replaced by the activations;
    ``hg``'s n part gets ``b_hn`` added (unless empty) and is kept for BPTT; writes
    ``h = n + z (h_prev - n)`` with ``n = tanh(x_n + r (hg_n + b_hn))``."""
    n, hid = h.shape
    half = gates.dtype.type(0.5)
    bias = b_hn.size > 0
    u = np.uint64(hid)
    for blk in prange(_n_blocks(n, hid)):
        row, j0, j1 = _block(blk, hid)
        for j in range(j0, j1):
            cr, cz, cn = j, u + j, u + u + j
            hn = hg[row, cn] + b_hn[j] if bias else hg[row, cn]
            r = _tanh(gates[row, cr] + hg[row, cr]) * half + half
            z = _tanh(gates[row, cz] + hg[row, cz]) * half + half
            nn = _tanh(gates[row, cn] + r * hn)
            gates[row, cr], gates[row, cz], gates[row, cn], hg[row, cn] = r, z, nn, hn
            h[row, j] = nn + (h_prev[row, j] - nn) * z


@kernel(serial=False)  # its serial build is not vectorised (see Kernel)
def gru_backward_step(dh, dout, gates, hg, h_prev, dgx, dgh):
    """One reverse GRU step before its product. With ``d = dh + dout`` the gradient of the
    step's output: ``dgx`` (N, 3H) = the gradients of the input parts' pre-activations,
    ``dgh`` those of the hidden parts (the same for r, z; r times it for n), and
    ``dh = d z``, to which the caller adds ``dgh @ W_hh``. ``gates``: the activations r, z,
    n; ``hg``: the hidden products (n part with its bias)."""
    n, hid = dh.shape
    one = dh.dtype.type(1)
    u = np.uint64(hid)
    for blk in prange(_n_blocks(n, hid)):
        row, j0, j1 = _block(blk, hid)
        for j in range(j0, j1):
            cr, cz, cn = j, u + j, u + u + j
            r, z, nn = gates[row, cr], gates[row, cz], gates[row, cn]
            d = dh[row, j] + dout[row, j]
            dn = d * ((one - z) * (one - nn * nn))
            dz = d * ((h_prev[row, j] - nn) * z * (one - z))
            dr = dn * (hg[row, cn] * r * (one - r))
            dgx[row, cr], dgx[row, cz], dgx[row, cn] = dr, dz, dn
            dgh[row, cr], dgh[row, cz], dgh[row, cn] = dr, dz, dn * r
            dh[row, j] = d * z
