"""The compiled kernels of a Transformer step (GELU, LayerNorm, scaled dot-product
attention) against their NumPy references, in float32 and float64: the dispatch records
which path ran, and the two paths agree to rounding."""
import numpy as np
import pytest
from op_helper import torch
from tolerance import assert_sums_close

import shendu as sd
import shendu.nn.functional as F
from shendu.backend import runtime

kernels = pytest.mark.skipif(not (runtime.kernels_on() and runtime.mkl_loaded()),
                             reason="needs numba and MKL (and SHENDU_JIT, SHENDU_MKL not 0)")
rng = np.random.default_rng(3)
TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}


def _run(fn, arrays, up, kernels_on):
    """fn's output and input gradients (for the upstream gradient ``up``), and the paths."""
    with runtime.use(kernels=kernels_on), sd.backend.trace_paths() as log:
        ts = [sd.tensor(a, requires_grad=True) for a in arrays]
        out = fn(*ts)
        out.backward(sd.tensor(up))
    return [out.detach().numpy()] + [t.grad.numpy() for t in ts], {op for op, _ in log}, \
        {path for _, path in log}


def _compare(fn, arrays, dtype, ops, sums=None):
    """Both paths of ``fn``; ``sums(up)`` may give ``{i: (n_terms, scale)}`` for results
    that are long sums (a parameter's gradient over the batch), compared as such."""
    out = fn(*[sd.tensor(a) for a in arrays])
    up = rng.standard_normal(out.shape).astype(dtype)
    fast, fast_ops, fast_paths = _run(fn, arrays, up, True)
    ref, ref_ops, ref_paths = _run(fn, arrays, up, False)
    assert set(ops) <= fast_ops and set(ops) <= ref_ops
    assert "numba" in fast_paths and ref_paths == {"numpy"}
    long_sums = sums(up) if sums else {}
    for i, (a, b) in enumerate(zip(fast, ref)):
        assert a.dtype == dtype
        if i in long_sums:
            assert_sums_close(a, b, *long_sums[i])
        else:
            np.testing.assert_allclose(a, b, **TOL[dtype])
    return fast


@kernels
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gelu_kernel_matches_reference(dtype):
    x = (rng.standard_normal((70, 1100)) * 3).astype(dtype)  # > one block, two threads
    x[0, :4] = [0.0, -40.0, 40.0, 1e-30]
    _compare(F.gelu, [x], dtype, ["gelu", "gelu_grad"])


@kernels
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layer_norm_kernel_matches_reference(dtype):
    x = (rng.standard_normal((64, 3, 40)) * 2 + 5).astype(dtype)
    w, b = rng.standard_normal(40).astype(dtype), rng.standard_normal(40).astype(dtype)
    x64 = x.astype(np.float64)
    xhat = (x64 - x64.mean(-1, keepdims=True)) / x64.std(-1, keepdims=True)

    def sums(up):  # the weight's and bias's gradients: sums over 192 rows
        up = np.abs(up.reshape(xhat.shape))
        return {2: (192, (up * np.abs(xhat)).sum((0, 1))), 3: (192, up.sum((0, 1)))}

    _compare(lambda x, w, b: F.layer_norm(x, (40,), w, b), [x, w, b], dtype,
             ["layer_norm", "layer_norm_backward"], sums)
    _compare(lambda x: F.layer_norm(x, (3, 40)), [x], dtype,
             ["layer_norm", "layer_norm_backward"])
    # a non-contiguous input is copied for the kernel
    _compare(lambda x, w, b: F.layer_norm(x.transpose(0, 1), (40,), w, b), [x, w, b], dtype,
             ["layer_norm", "layer_norm_backward"],
             lambda up: sums(up.transpose(1, 0, 2)))


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
                 [q, k, v], dtype, ["attention", "attention_backward"])
    mask = rng.standard_normal((lq, lk)).astype(dtype)
    mask[rng.random((lq, lk)) < 0.3] = -np.inf
    mask[:, 0] = 0
    _compare(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=mask),
             [q, k, v], dtype, ["attention", "attention_backward"])


@kernels
def test_attention_kernel_reads_heads_in_place():
    """The heads of one (N, L, 3E) projection: strided blocks, no copies; the output and
    the gradients are stored heads-last, so joining the heads is a free reshape."""
    x = rng.standard_normal((3, 50, 3 * 16)).astype(np.float32)

    def fn(x):
        out = F.scaled_dot_product_attention(*_mha_heads(x, 4), is_causal=True)
        return out.transpose(1, 2).reshape(3, 50, 16)

    _compare(fn, [x], np.float32, ["attention", "attention_backward"])
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
