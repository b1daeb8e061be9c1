"""MultiheadAttention and Transformer blocks: PyTorch parity (values, attention weights,
gradients of inputs and every parameter), masks, finite differences and errors."""
from __future__ import annotations

import numpy as np
import pytest

import shendu as sd
from shendu.nn.layers.attention import MultiheadAttention
from shendu.nn.layers.norm import LayerNorm
from shendu.nn.layers.transformer import (
    Transformer,
    TransformerDecoder,
    TransformerDecoderLayer,
    TransformerEncoder,
    TransformerEncoderLayer,
)

E, HEADS, L, S, N = 8, 2, 4, 5, 3


def _arr(t):
    return np.asarray(t.detach())


def _load(m, tm):
    assert list(m.state_dict()) == list(tm.state_dict())
    m.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})


def _close(a, b, what=""):
    np.testing.assert_allclose(_arr(a), b.detach().numpy(), rtol=1e-6, atol=1e-9,
                               err_msg=what)


def _check_grads(m, tm, pairs):
    for a, b in pairs:
        _close(a.grad, b.grad)
    for (name, p), (_, tp) in zip(m.named_parameters(), tm.named_parameters()):
        _close(p.grad, tp.grad, name)


def _pair(rng, shape, torch):
    a = rng.standard_normal(shape)
    return sd.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)


MHA_CASES = {
    "self": {},
    "self_batch_first": {"batch_first": True},
    "cross": {"cross": True},
    "kdim_vdim": {"cross": True, "kdim": 6, "vdim": 7},
    "no_bias": {"bias": False},
    "bias_kv_zero_attn": {"cross": True, "add_bias_kv": True, "add_zero_attn": True},
    "bool_masks": {"cross": True, "attn_mask": "bool2", "kpm": "bool"},
    "float_masks": {"cross": True, "attn_mask": "float3", "kpm": "float"},
    "per_head_weights": {"average": False, "attn_mask": "bool3", "batch_first": True},
    "masks_with_bias_kv": {"add_bias_kv": True, "attn_mask": "bool2", "kpm": "bool"},
}


@pytest.mark.parametrize("case", list(MHA_CASES))
def test_multihead_attention_matches_torch(case):
    torch = pytest.importorskip("torch")
    c = dict(MHA_CASES[case])
    rng = np.random.default_rng(len(case))
    cross = c.pop("cross", False)
    am_kind, kpm_kind = c.pop("attn_mask", None), c.pop("kpm", None)
    average = c.pop("average", True)
    m = MultiheadAttention(E, HEADS, dtype=sd.float64, **c)
    tm = torch.nn.MultiheadAttention(E, HEADS, **c).double()
    if c.get("add_bias_kv"):  # torch draws bias_k/v with Xavier; keep them non-trivial
        with torch.no_grad():
            tm.bias_k.normal_(), tm.bias_v.normal_()
    with torch.no_grad():  # non-zero biases so their gradients are exercised
        if tm.in_proj_bias is not None:
            tm.in_proj_bias.normal_(), tm.out_proj.bias.normal_()
    _load(m, tm)
    bf = c.get("batch_first", False)
    s = S if cross else L

    def shape(length, dim):
        return (N, length, dim) if bf else (length, N, dim)

    q, tq = _pair(rng, shape(L, E), torch)
    if cross:
        k, tk = _pair(rng, shape(s, c.get("kdim", E)), torch)
        v, tv = _pair(rng, shape(s, c.get("vdim", E)), torch)
    else:
        k, tk, v, tv = q, tq, q, tq
    masks, tmasks = {}, {}
    if am_kind:
        amshape = (L, s) if am_kind.endswith("2") else (N * HEADS, L, s)
        am = rng.random(amshape) < 0.3 if am_kind.startswith("bool") else \
            rng.standard_normal(amshape)
        if am_kind.startswith("bool"):
            am[..., 0] = False  # every query keeps one key: no all-masked rows
        masks["attn_mask"], tmasks["attn_mask"] = sd.tensor(am), torch.tensor(am)
    if kpm_kind:
        kpm = rng.random((N, s)) < 0.4 if kpm_kind == "bool" else rng.standard_normal((N, s))
        if kpm_kind == "bool":
            kpm[:, 0] = False
        masks["key_padding_mask"], tmasks["key_padding_mask"] = sd.tensor(kpm), torch.tensor(kpm)
    out, w = m(q, k, v, average_attn_weights=average, **masks)
    tout, tw = tm(tq, tk, tv, average_attn_weights=average, **tmasks)
    _close(out, tout, "output")
    _close(w, tw, "weights")
    g = rng.standard_normal(out.shape)
    ((out * sd.tensor(g)).sum() + (w * w).sum()).backward()
    ((tout * torch.tensor(g)).sum() + (tw * tw).sum()).backward()
    _check_grads(m, tm, [(q, tq)] + ([(k, tk), (v, tv)] if cross else []))


def test_multihead_attention_unbatched_and_is_causal():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    m = MultiheadAttention(E, HEADS, dtype=sd.float64)
    tm = torch.nn.MultiheadAttention(E, HEADS).double()
    _load(m, tm)
    q, tq = _pair(rng, (L, E), torch)
    out, w = m(q, q, q, is_causal=True)
    causal = torch.triu(torch.ones(L, L, dtype=torch.bool), 1)
    tout, tw = tm(tq, tq, tq, attn_mask=causal, is_causal=True)
    assert out.shape == (L, E) and w.shape == (L, L)
    _close(out, tout)
    _close(w, tw)
    assert np.all(np.triu(_arr(w), 1) == 0)
    out2, w2 = m(q, q, q, need_weights=False)
    assert w2 is None and out2.shape == (L, E)


def test_multihead_attention_gradcheck():
    rng = np.random.default_rng(8)
    m = MultiheadAttention(4, 2, dtype=sd.float64, kdim=3, vdim=5)
    q = sd.tensor(rng.standard_normal((2, 2, 4)), requires_grad=True)
    k = sd.tensor(rng.standard_normal((3, 2, 3)), requires_grad=True)
    v = sd.tensor(rng.standard_normal((3, 2, 5)), requires_grad=True)
    kpm = sd.tensor(np.array([[False, True, False], [False, False, True]]))
    assert sd.autograd.gradcheck(lambda q, k, v: m(q, k, v, key_padding_mask=kpm),
                                 (q, k, v), atol=1e-6)


def test_multihead_attention_dropout_and_errors():
    sd.manual_seed(0)
    m = MultiheadAttention(E, HEADS, dropout=0.5)
    x = sd.randn(L, N, E)
    assert not np.allclose(_arr(m(x, x, x)[0]), _arr(m(x, x, x)[0]))
    m.eval()
    np.testing.assert_array_equal(_arr(m(x, x, x)[0]), _arr(m(x, x, x)[0]))
    with pytest.raises(ValueError, match="divisible"):
        MultiheadAttention(10, 3)
    with pytest.raises(ValueError, match="query has 7 features"):
        m(sd.randn(L, N, 7), x, x)
    with pytest.raises(ValueError, match="batch size"):
        m(x, sd.randn(S, N + 1, E), sd.randn(S, N + 1, E))
    with pytest.raises(ValueError, match="attn_mask must have shape"):
        m(x, x, x, attn_mask=sd.zeros(L + 1, L))
    with pytest.raises(ValueError, match="key_padding_mask must have shape"):
        m(x, x, x, key_padding_mask=sd.zeros(N, L + 2))
    with pytest.raises(ValueError, match="2-D .*or 3-D"):
        m(sd.randn(1, L, N, E), x, x)


LAYER_CASES = [("relu", False, False), ("gelu", True, False), ("relu", True, True),
               ("gelu", False, True)]


@pytest.mark.parametrize("activation,norm_first,batch_first", LAYER_CASES)
def test_encoder_stack_matches_torch(activation, norm_first, batch_first):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(9)
    kw = dict(dim_feedforward=16, activation=activation, norm_first=norm_first,
              batch_first=batch_first)
    m = TransformerEncoder(TransformerEncoderLayer(E, HEADS, dtype=sd.float64, **kw), 2,
                           norm=LayerNorm(E, dtype=sd.float64))
    tm = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(E, HEADS, **kw), 2,
                                     norm=torch.nn.LayerNorm(E), enable_nested_tensor=False)
    tm = tm.double().eval()
    m.eval()
    _load(m, tm)
    x, tx = _pair(rng, (N, L, E) if batch_first else (L, N, E), torch)
    kpm = np.zeros((N, L))
    kpm[0, -1] = -np.inf  # float masks (added to the scores), like the causal mask below
    mask = torch.nn.Transformer.generate_square_subsequent_mask(L).double()
    out = m(x, mask=sd.tensor(mask.numpy()), src_key_padding_mask=sd.tensor(kpm))
    tout = tm(tx, mask=mask, src_key_padding_mask=torch.tensor(kpm))
    _close(out, tout)
    g = rng.standard_normal(out.shape)
    (out * sd.tensor(g)).sum().backward()
    (tout * torch.tensor(g)).sum().backward()
    _check_grads(m, tm, [(x, tx)])


@pytest.mark.parametrize("activation,norm_first,batch_first", LAYER_CASES)
def test_decoder_stack_matches_torch(activation, norm_first, batch_first):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(10)
    kw = dict(dim_feedforward=16, activation=activation, norm_first=norm_first,
              batch_first=batch_first)
    m = TransformerDecoder(TransformerDecoderLayer(E, HEADS, dtype=sd.float64, **kw), 2)
    tm = torch.nn.TransformerDecoder(torch.nn.TransformerDecoderLayer(E, HEADS, **kw), 2)
    tm = tm.double().eval()
    m.eval()
    _load(m, tm)
    x, tx = _pair(rng, (N, L, E) if batch_first else (L, N, E), torch)
    mem, tmem = _pair(rng, (N, S, E) if batch_first else (S, N, E), torch)
    mkpm = np.zeros((N, S), bool)
    mkpm[1, :2] = True
    causal = np.triu(np.ones((L, L), bool), 1)
    out = m(x, mem, tgt_mask=sd.tensor(causal), memory_key_padding_mask=sd.tensor(mkpm))
    tout = tm(tx, tmem, tgt_mask=torch.tensor(causal),
              memory_key_padding_mask=torch.tensor(mkpm))
    _close(out, tout)
    g = rng.standard_normal(out.shape)
    (out * sd.tensor(g)).sum().backward()
    (tout * torch.tensor(g)).sum().backward()
    _check_grads(m, tm, [(x, tx), (mem, tmem)])


def test_full_transformer_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    kw = dict(d_model=E, nhead=HEADS, num_encoder_layers=2, num_decoder_layers=1,
              dim_feedforward=16, batch_first=True)
    m, tm = Transformer(dtype=sd.float64, **kw), torch.nn.Transformer(**kw).double().eval()
    m.eval()
    _load(m, tm)
    src, tsrc = _pair(rng, (N, S, E), torch)
    tgt, ttgt = _pair(rng, (N, L, E), torch)
    mask = Transformer.generate_square_subsequent_mask(L, dtype=sd.float64)
    np.testing.assert_array_equal(_arr(mask), torch.nn.Transformer.generate_square_subsequent_mask(
        L).numpy())
    out = m(src, tgt, tgt_mask=mask)
    tout = tm(tsrc, ttgt, tgt_mask=torch.tensor(_arr(mask)))
    _close(out, tout)
    out.sum().backward()
    tout.sum().backward()
    _check_grads(m, tm, [(src, tsrc), (tgt, ttgt)])


def test_layers_train_mode_dropout_and_deepcopied_clones():
    sd.manual_seed(1)
    enc = TransformerEncoder(TransformerEncoderLayer(E, HEADS, 16, dropout=0.5), 2)
    a, b = enc.layers[0].linear1.weight, enc.layers[1].linear1.weight
    assert a is not b and np.array_equal(_arr(a), _arr(b))  # copies, same start as torch
    x = sd.randn(L, N, E)
    assert not np.allclose(_arr(enc(x)), _arr(enc(x)))
    enc.eval()
    np.testing.assert_array_equal(_arr(enc(x)), _arr(enc(x)))
    with pytest.raises(ValueError, match="activation"):
        TransformerEncoderLayer(E, HEADS, activation="swish")
    with pytest.raises(ValueError, match="d_model=8"):
        Transformer(E, HEADS, 1, 1, 16)(sd.randn(S, N, E + 1), sd.randn(L, N, E))
