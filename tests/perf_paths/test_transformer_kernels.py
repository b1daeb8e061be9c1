"""The compiled kernels of a Transformer step (GELU, LayerNorm, scaled dot-product
attention) against their NumPy references, in float32 and float64: the dispatch records
which path ran, and the two paths agree to rounding.

"To rounding" is a bound derived for each result from its arithmetic, not a tolerance
tuned on one machine: each path's error is at most a count of roundings (``eps`` each)
times the magnitudes that flow into the result (sums of absolute terms, the way
``tolerance.py`` bounds a product), so the two paths differ by at most twice that. The
bounds are computed in float64 from the inputs and hold for any summation order, thread
count or vector width (an Intel Xeon's AVX-512 and an AMD EPYC's AVX2 alike)."""
import numpy as np
import pytest
from op_helper import torch
from tolerance import assert_sums_close, matmul_scale

import shendu as sd
import shendu.nn.functional as F
from shendu.backend import runtime

kernels = pytest.mark.skipif(not (runtime.kernels_on() and runtime.mkl_loaded()),
                             reason="needs numba and MKL (and SHENDU_JIT, SHENDU_MKL not 0)")
rng = np.random.default_rng(3)


def _run(fn, arrays, up, kernels_on):
    """fn's output and input gradients (for the upstream gradient ``up``), and the paths."""
    with runtime.use(kernels=kernels_on), sd.backend.trace_paths() as log:
        ts = [sd.tensor(a, requires_grad=True) for a in arrays]
        out = fn(*ts)
        out.backward(sd.tensor(up))
    return [out.detach().numpy()] + [t.grad.numpy() for t in ts], {op for op, _ in log}, \
        {path for _, path in log}


def _compare(fn, arrays, dtype, ops, bounds):
    """Both paths of ``fn``: the output and each input's gradient agree within
    ``bounds(up)`` (a list, one ``(n_roundings, scale)`` per result, as
    ``assert_sums_close`` takes them: the paths differ by at most
    ``(n_roundings + 2) * eps * scale``)."""
    out = fn(*[sd.tensor(a) for a in arrays])
    up = rng.standard_normal(out.shape).astype(dtype)
    fast, fast_ops, fast_paths = _run(fn, arrays, up, True)
    ref, ref_ops, ref_paths = _run(fn, arrays, up, False)
    assert set(ops) <= fast_ops and set(ops) <= ref_ops
    assert "numba" in fast_paths and ref_paths == {"numpy"}
    for i, (a, b, (n, scale)) in enumerate(zip(fast, ref, bounds(up), strict=True)):
        assert a.dtype == dtype
        assert_sums_close(a, b, n, scale, err_msg=f"result {i} (0: output, then gradients)")
    return fast


def _f64(*arrays):
    return [np.asarray(a, np.float64) for a in arrays]


def gelu_bounds(x, up):
    """GELU ``x * Phi(x)`` and ``up * (Phi(x) + x phi(x))``. Each path rounds a few times
    (the argument of erf, erf or erfc itself to an ulp or two, 1 + erf, the products):
    under ``6 eps |x|`` forward. The derivative's ``phi = exp(-x^2 / 2)`` inherits the
    relative error of ``x^2`` times ``x^2 / 2``: ``(6 + x^2) eps |x| phi`` more."""
    x, up = _f64(x, up)
    xphi = np.abs(x) * np.exp(-x * x / 2) / np.sqrt(2 * np.pi)
    return [(10, np.abs(x)), (10, np.abs(up) * (1 + (1 + x * x / 10) * xphi))]


def layer_norm_bounds(x, w, b, n_axes, up):
    """LayerNorm over the last ``n_axes`` dims (``d`` values a row), two-pass as both
    paths do: the mean is a ``d``-term sum (its error, relative to the row's ``mean|x|``,
    shifts every ``xhat`` by ``mean|x| / std`` of it), the variance another (a relative
    error of ``invstd``, so of ``xhat``). The backward's two row means ``s1 = mean(g w)``
    and ``s2 = mean(g w xhat)`` are ``d``-term sums too, and carry ``xhat``'s error; the
    weight's and bias's gradients are sums over the rows."""
    x, up = _f64(x, up)
    axes = tuple(range(-n_axes, 0))
    w = np.ones(x.shape[-n_axes:]) if w is None else np.asarray(w, np.float64)
    b = np.zeros(x.shape[-n_axes:]) if b is None else np.asarray(b, np.float64)
    d = int(np.prod(x.shape[-n_axes:]))
    mean = x.mean(axes, keepdims=True)
    r = 1 / np.sqrt(((x - mean) ** 2).mean(axes, keepdims=True) + 1e-5)
    xhat = (x - mean) * r
    shift = np.abs(x).mean(axes, keepdims=True) * r + np.abs(xhat)  # xhat's error / (d eps)
    gh = up * w
    s2 = np.abs(gh * xhat).mean(axes, keepdims=True)
    dx_scale = r * (np.abs(gh) + np.abs(gh).mean(axes, keepdims=True) + (np.abs(xhat) + 1) * s2
                    + (s2 + np.abs(xhat) * np.abs(gh).mean(axes, keepdims=True)) * shift)
    rows = tuple(range(x.ndim - n_axes))
    n_rows = int(np.prod(x.shape[:x.ndim - n_axes]))
    return [(d, 2 * (shift * np.abs(w) + np.abs(b))), (d, 2 * dx_scale),
            (n_rows + d, 2 * (np.abs(up) * shift).sum(rows)),
            (n_rows, 2 * np.abs(up).sum(rows))]


def attention_bounds(q, k, v, mask, causal, up):
    """Scaled dot-product attention and its backward, as both paths compute it: scores
    ``s = q k^T / sqrt(d) + mask`` (``d``-term sums), ``p = softmax(s)`` (a relative
    error of twice the worst score error in its row, plus the ``lk``-term denominator),
    ``o = p v``; backward ``dv = p^T up``, ``dp = up v^T``, ``ds = p (dp - rowsum(p dp))``,
    ``dq = ds k / sqrt(d)``, ``dk = ds^T q / sqrt(d)``: each a sum whose error is its term
    count times its absolute terms, plus the error it inherits from ``p`` and ``ds``."""
    q, k, v, up = _f64(q, k, v, up)
    lq, d = q.shape[-2:]
    lk, dv = v.shape[-2:]
    sf = 1 / np.sqrt(d)
    s = q @ np.swapaxes(k, -1, -2) * sf
    s_abs = matmul_scale(q, np.swapaxes(k, -1, -2)) * sf
    hidden = np.zeros(s.shape, bool)
    if mask is not None:
        m = np.broadcast_to(np.asarray(mask, np.float64), s.shape)
        hidden |= np.isinf(m)
        finite = np.where(hidden, 0, m)
        s, s_abs = s + finite, s_abs + np.abs(finite)
    if causal:
        hidden |= np.triu(np.ones((lq, lk), bool), 1)
    s = np.where(hidden, -np.inf, s)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    # relative error of p, over eps: the row's worst score error twice, the denominator
    rel_p = 2 * (d + 2) * np.where(hidden, 0, s_abs).max(-1, keepdims=True) + lk + 4
    t = lambda a: np.swapaxes(a, -1, -2)  # noqa: E731
    o_scale = (lk + 2 + rel_p) * (p @ np.abs(v))
    dp = up @ t(v)
    dp_abs = matmul_scale(up, t(v))
    rowdot = (p * dp).sum(-1, keepdims=True)
    rd_abs = (p * dp_abs).sum(-1, keepdims=True)
    ds = p * (dp - rowdot)
    ds_err = (p * ((dv + 2) * dp_abs + (lk + dv + 4 + rel_p) * rd_abs
                   + 2 * (np.abs(dp) + np.abs(rowdot))) + np.abs(ds) * rel_p)
    dq_scale = ((lk + 2) * matmul_scale(ds, k) + ds_err @ np.abs(k)) * sf
    dk_scale = ((lq + 2) * matmul_scale(t(ds), q) + t(ds_err) @ np.abs(q)) * sf
    dv_scale = (lq + 2 + rel_p.max()) * matmul_scale(t(p), up)
    # the scales already hold the rounding counts: n_roundings 0 adds the final rounding
    return [(0, 2 * o_scale), (0, 2 * dq_scale), (0, 2 * dk_scale), (0, 2 * dv_scale)]


@kernels
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gelu_kernel_matches_reference(dtype):
    x = (rng.standard_normal((70, 1100)) * 3).astype(dtype)  # > one block, two threads
    x[0, :4] = [0.0, -40.0, 40.0, 1e-30]
    _compare(F.gelu, [x], dtype, ["gelu", "gelu_grad"], lambda up: gelu_bounds(x, up))


@kernels
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layer_norm_kernel_matches_reference(dtype):
    x = (rng.standard_normal((64, 3, 40)) * 2 + 5).astype(dtype)
    w, b = rng.standard_normal(40).astype(dtype), rng.standard_normal(40).astype(dtype)
    _compare(lambda x, w, b: F.layer_norm(x, (40,), w, b), [x, w, b], dtype,
             ["layer_norm", "layer_norm_backward"],
             lambda up: layer_norm_bounds(x, w, b, 1, up))
    _compare(lambda x: F.layer_norm(x, (3, 40)), [x], dtype,
             ["layer_norm", "layer_norm_backward"],
             lambda up: layer_norm_bounds(x, None, None, 2, up)[:2])

    def transposed(up):  # a non-contiguous input is copied for the kernel
        out, dx, dw, db = layer_norm_bounds(x.transpose(1, 0, 2), w, b, 1, up)
        return [out, (dx[0], dx[1].transpose(1, 0, 2)), dw, db]

    _compare(lambda x, w, b: F.layer_norm(x.transpose(0, 1), (40,), w, b), [x, w, b], dtype,
             ["layer_norm", "layer_norm_backward"], transposed)


def _mha_heads(x, heads):
    """q, k, v as MultiheadAttention makes them: strided views of one (N, L, 3E) array."""
    n, length, e3 = x.shape
    q, k, v = x.chunk(3, -1)
    d = e3 // 3 // heads
    return [t.reshape(n, length, heads, d).transpose(1, 2) for t in (q, k, v)]


@kernels
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("lq,lk", [(70, 70), (45, 70), (70, 45)])
def test_attention_kernel_matches_reference(dtype, lq, lk):
    q, k = rng.standard_normal((2, 3, lq, 8)).astype(dtype), \
        rng.standard_normal((2, 3, lk, 8)).astype(dtype)
    v = rng.standard_normal((2, 3, lk, 5)).astype(dtype)
    for causal in (False, True):
        _compare(lambda q, k, v, c=causal: F.scaled_dot_product_attention(q, k, v, is_causal=c),
                 [q, k, v], dtype, ["attention", "attention_backward"],
                 lambda up, c=causal: attention_bounds(q, k, v, None, c, up))
    mask = rng.standard_normal((lq, lk)).astype(dtype)
    mask[rng.random((lq, lk)) < 0.3] = -np.inf
    mask[:, 0] = 0
    _compare(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=mask),
             [q, k, v], dtype, ["attention", "attention_backward"],
             lambda up: attention_bounds(q, k, v, mask, False, up))


@kernels
def test_attention_kernel_reads_heads_in_place():
    """The heads of one (N, L, 3E) projection: strided blocks, no copies; the output and
    the gradients are stored heads-last, so joining the heads is a free reshape."""
    x = rng.standard_normal((3, 50, 3 * 16)).astype(np.float32)

    def fn(x):
        out = F.scaled_dot_product_attention(*_mha_heads(x, 4), is_causal=True)
        return out.transpose(1, 2).reshape(3, 50, 16)

    def bounds(up):  # the heads' bounds, joined as fn joins them; x's gradient from all three
        heads = [a.reshape(3, 50, 4, 4).transpose(0, 2, 1, 3) for a in np.split(x, 3, -1)]
        joined = lambda a: a.transpose(0, 2, 1, 3).reshape(3, 50, 16)  # noqa: E731
        up_heads = up.reshape(3, 50, 4, 4).transpose(0, 2, 1, 3)
        (_, o), (_, dq), (_, dk), (_, dv) = attention_bounds(*heads, None, True, up_heads)
        return [(0, joined(o)), (0, np.concatenate([joined(dq), joined(dk), joined(dv)], -1))]

    _compare(fn, [x], np.float32, ["attention", "attention_backward"], bounds)
    out = F.scaled_dot_product_attention(*_mha_heads(sd.tensor(x), 4), is_causal=True)
    assert out.transpose(1, 2).numpy().flags.c_contiguous


@kernels
def test_causal_float_mask_runs_as_is_causal():
    q, k, v = (rng.standard_normal((2, 2, 40, 4)) for _ in range(3))
    tri = np.triu(np.full((40, 40), -np.inf), 1)
    a = F.scaled_dot_product_attention(*map(sd.tensor, (q, k, v)), attn_mask=sd.tensor(tri))
    b = F.scaled_dot_product_attention(*map(sd.tensor, (q, k, v)), is_causal=True)
    np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
def test_transformer_layer_step_matches_pytorch():
    """A pre-norm GELU encoder layer with a causal mask (the GPT block of the benchmark),
    forward and backward, against PyTorch with the same weights."""
    sd.manual_seed(0)
    layer = sd.nn.TransformerEncoderLayer(16, 4, 32, 0.0, activation="gelu", batch_first=True,
                                          norm_first=True)
    tl = torch.nn.TransformerEncoderLayer(16, 4, 32, 0.0, activation="gelu", batch_first=True,
                                          norm_first=True)
    tl.load_state_dict({k: torch.from_numpy(v.detach().numpy().copy())
                        for k, v in layer.state_dict().items()})
    x = rng.standard_normal((3, 40, 16)).astype(np.float32)
    mask = sd.nn.Transformer.generate_square_subsequent_mask(40)
    xs, xt = sd.tensor(x, requires_grad=True), torch.from_numpy(x).requires_grad_()
    ys = layer(xs, src_mask=mask, is_causal=True)
    yt = tl(xt, src_mask=torch.from_numpy(mask.numpy()), is_causal=True)
    up = rng.standard_normal(ys.shape).astype(np.float32)
    ys.backward(sd.tensor(up))
    yt.backward(torch.from_numpy(up))
    np.testing.assert_allclose(ys.detach().numpy(), yt.detach().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(xs.grad.numpy(), xt.grad.numpy(), rtol=1e-4, atol=1e-4)
    grads = dict(tl.named_parameters())
    for name, p in layer.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), grads[name].grad.numpy(), rtol=1e-3,
                                   atol=1e-4, err_msg=name)
