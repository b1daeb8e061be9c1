"""nn.functional: softmax family, losses, normalisation, dropout, embedding, attention."""
import numpy as np
import pytest
from op_helper import Arg, check_op, on, torch
from references import interpolate_ref

import shendu as sd
import shendu.nn.functional as F
from shendu.errors import ShapeError

rng = np.random.default_rng(0)
TF = torch and torch.nn.functional


def r(*shape):
    return rng.standard_normal(shape)


def np_log_softmax(x, axis):
    m = x.max(axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis, keepdims=True))


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_softmax_log_softmax(dim):
    check_op(lambda x: F.softmax(x, dim), [r(3, 4)],
             lambda x: np.exp(np_log_softmax(x, dim)), TF and (lambda x: TF.softmax(x, dim)))
    check_op(lambda x: F.log_softmax(x, dim), [r(3, 4)], lambda x: np_log_softmax(x, dim),
             TF and (lambda x: TF.log_softmax(x, dim)))


def test_linear():
    check_op(F.linear, [r(5, 3), r(4, 3), r(4)], lambda x, w, b: x @ w.T + b, TF and TF.linear)
    check_op(F.linear, [r(2, 5, 3), r(4, 3)], lambda x, w: x @ w.T, TF and TF.linear)
    with pytest.raises(ValueError, match="linear: input of shape"):
        F.linear(sd.ones(2, 3), sd.ones(4, 5))


def ce_ref(x, t, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """PyTorch's cross-entropy of class indices by its definition: per element
    (1 - ls) w[t] (-log p[t]) + ls / C sum_c w[c] (-log p[c]), none for ignored targets;
    'mean' divides by the sum of w[t] over the counted targets."""
    c = x.shape[1]
    xs = np.moveaxis(x, 1, -1).reshape(-1, c)
    ts = t.reshape(-1)
    w = np.ones(c) if weight is None else weight
    logp = np_log_softmax(xs, 1)
    valid = ts != ignore_index
    tv = np.where(valid, ts, 0)
    nll = -w[tv] * logp[np.arange(len(ts)), tv]
    smooth = -(w * logp).sum(1) / c
    per = np.where(valid, (1 - label_smoothing) * nll + label_smoothing * smooth, 0.0)
    if reduction == "none":
        return per.reshape(t.shape)
    if reduction == "sum":
        return per.sum()
    return per.sum() / (w[tv] * valid).sum()


def soft_ce_ref(x, p, label_smoothing=0.0):
    c = x.shape[1]
    return -(((1 - label_smoothing) * p + label_smoothing / c) * np_log_softmax(x, 1)).sum(1)


def norm_ref(x, axes, eps=1e-5):
    mu = x.mean(axes, keepdims=True)
    return (x - mu) / np.sqrt(x.var(axes, keepdims=True) + eps)


def sdpa_ref(q, k, v, mask=None, causal=False):
    """softmax(q k^T / sqrt(d) with -inf where not allowed) v."""
    s = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    if causal:
        mask = np.tril(np.ones(s.shape[-2:], bool))
    if mask is not None:
        s = np.where(mask, s, -np.inf)
    e = np.exp(s - s.max(-1, keepdims=True))
    return (e / e.sum(-1, keepdims=True)) @ v


def _cos(a, b):
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def _ce_np(x, t):
    return -np_log_softmax(x, 1)[np.arange(len(t)), t].mean()


def test_cross_entropy_index_targets():
    t = np.array([0, 3, 1, 3, 2])
    check_op(lambda x: F.cross_entropy(x, on(x, t)), [r(5, 4)], lambda x: _ce_np(x, t),
             TF and (lambda x: TF.cross_entropy(x, torch.from_numpy(t))))


@pytest.mark.parametrize("kw", [dict(reduction="sum"), dict(reduction="none"),
                                dict(ignore_index=1), dict(label_smoothing=0.2),
                                dict(weight=True), dict(weight=True, label_smoothing=0.1),
                                dict(weight=True, ignore_index=3, reduction="sum"),
                                dict(label_smoothing=0.3, ignore_index=0),
                                dict(label_smoothing=0.1, reduction="none")])
def test_cross_entropy_options(kw):
    t = np.array([0, 3, 1, 3, 2, 1])
    w = rng.uniform(0.5, 2.0, 4)
    sk = dict(kw)
    tk = dict(kw)
    if kw.get("weight"):
        sk["weight"] = w
        tk["weight"] = torch and torch.from_numpy(w)
    rk = {**kw, "weight": w} if kw.get("weight") else kw
    check_op(lambda x: F.cross_entropy(x, on(x, t), **{k: on(x, v) if k == "weight" else v
                                                      for k, v in sk.items()}), [r(6, 4)],
             lambda x: ce_ref(x, t, **rk),
             TF and (lambda x: TF.cross_entropy(x, torch.from_numpy(t), **tk)))


def test_cross_entropy_probability_targets_and_spatial():
    p = rng.dirichlet(np.ones(4), 5)
    check_op(lambda x: F.cross_entropy(x, on(x, p)), [r(5, 4)],
             lambda x: -(p * np_log_softmax(x, 1)).sum(1).mean(),
             TF and (lambda x: TF.cross_entropy(x, torch.from_numpy(p))))
    check_op(lambda x: F.cross_entropy(x, on(x, p), label_smoothing=0.2), [r(5, 4)],
             lambda x: soft_ce_ref(x, p, 0.2).mean(),
             TF and (lambda x: TF.cross_entropy(x, torch.from_numpy(p), label_smoothing=0.2)))
    t = rng.integers(0, 3, (2, 4, 5))
    check_op(lambda x: F.cross_entropy(x, on(x, t), reduction="none"), [r(2, 3, 4, 5)],
             lambda x: ce_ref(x, t, reduction="none"),
             TF and (lambda x: TF.cross_entropy(x, torch.from_numpy(t), reduction="none")))


def test_nll_loss():
    t = np.array([1, 0, 2])
    lp = np_log_softmax(r(3, 3), 1)
    check_op(lambda x: F.nll_loss(x, on(x, t)), [lp], lambda x: -x[np.arange(3), t].mean(),
             TF and (lambda x: TF.nll_loss(x, torch.from_numpy(t))))
    w = np.array([1.0, 2.0, 0.5])
    check_op(lambda x: F.nll_loss(x, on(x, t), weight=on(x, w, dtype=sd.float64)), [lp],
             lambda x: -(w[t] * x[np.arange(3), t]).sum() / w[t].sum(),
             TF and (lambda x: TF.nll_loss(x, torch.from_numpy(t), weight=torch.from_numpy(w))))


def test_cross_entropy_stable_and_checked():
    x = sd.tensor([[1000.0, -1000.0], [-1000.0, 1000.0]], requires_grad=True)
    loss = F.cross_entropy(x, sd.tensor([1, 1]))
    loss.backward()
    assert loss.item() == pytest.approx(1000.0) and np.isfinite(x.grad.numpy()).all()
    with pytest.raises(IndexError, match="target 5 is out of bounds for 2 classes"):
        F.cross_entropy(x, sd.tensor([0, 5]))
    with pytest.raises(ValueError, match="class-index target must have shape"):
        F.cross_entropy(x, sd.tensor([0, 1, 1]))


def _smooth_l1(d, beta):
    return np.where(np.abs(d) < beta, 0.5 * d * d / beta, np.abs(d) - 0.5 * beta)


def _multi_margin(x, t, p, margin):
    """sum over the wrong classes j of max(0, margin - x[t] + x[j])^p, over C, averaged."""
    n, c = x.shape
    hinge = np.maximum(0, margin - x[np.arange(n), t][:, None] + x) ** p
    hinge[np.arange(n), t] = 0
    return (hinge.sum(1) / c).mean()


REG = [
    ("mse", F.mse_loss, lambda a, b: ((a - b) ** 2).mean(), TF and TF.mse_loss),
    ("l1", F.l1_loss, lambda a, b: np.abs(a - b).mean(), TF and TF.l1_loss),
    ("smooth_l1", F.smooth_l1_loss, lambda a, b: _smooth_l1(a - b, 1.0).mean(),
     TF and TF.smooth_l1_loss),
    ("smooth_l1_beta", lambda a, b: F.smooth_l1_loss(a, b, beta=0.5),
     lambda a, b: _smooth_l1(a - b, 0.5).mean(),
     TF and (lambda a, b: TF.smooth_l1_loss(a, b, beta=0.5))),
    ("huber", lambda a, b: F.huber_loss(a, b, delta=0.7),
     lambda a, b: (0.7 * _smooth_l1(a - b, 0.7)).mean(),
     TF and (lambda a, b: TF.huber_loss(a, b, delta=0.7))),
    ("mse_sum", lambda a, b: F.mse_loss(a, b, reduction="sum"), lambda a, b: ((a - b) ** 2).sum(),
     TF and (lambda a, b: TF.mse_loss(a, b, reduction="sum"))),
]


@pytest.mark.parametrize("name,fn,np_fn,t_fn", REG, ids=[c[0] for c in REG])
def test_regression_losses(name, fn, np_fn, t_fn):
    a, b = r(4, 3), r(4, 3)
    b[0, 0] = a[0, 0] + 0.3  # both sides of the smooth-L1 kink
    check_op(fn, [a, b], np_fn, t_fn)


def test_soft_margin_loss():
    y = np.sign(r(4, 3))
    check_op(lambda a: F.soft_margin_loss(a, on(a, y)), [r(4, 3)],
             lambda a: np.log1p(np.exp(-y * a)).mean(),
             TF and (lambda a: TF.soft_margin_loss(a, torch.from_numpy(y))))


def test_binary_cross_entropy():
    p = rng.uniform(0.05, 0.95, (4, 3))
    t = rng.uniform(0, 1, (4, 3))
    check_op(F.binary_cross_entropy, [p, t],
             lambda p, t: -(t * np.log(p) + (1 - t) * np.log(1 - p)).mean(),
             TF and TF.binary_cross_entropy)
    check_op(F.binary_cross_entropy_with_logits, [r(4, 3), t],
             lambda x, t: -(t * np.log(1 / (1 + np.exp(-x)))
                            + (1 - t) * np.log(1 - 1 / (1 + np.exp(-x)))).mean(),
             TF and TF.binary_cross_entropy_with_logits)
    pw = rng.uniform(0.5, 3, (3,))
    check_op(lambda x, t, w: F.binary_cross_entropy_with_logits(x, t, pos_weight=w),
             [r(4, 3), t, Arg(pw)],
             lambda x, t, w: -(w * t * np.log(1 / (1 + np.exp(-x)))
                               + (1 - t) * np.log(1 - 1 / (1 + np.exp(-x)))).mean(),
             TF and (lambda x, t, w: TF.binary_cross_entropy_with_logits(x, t, pos_weight=w)))


def test_bce_with_logits_extreme():
    x = sd.tensor([-1000.0, 1000.0, 0.0], requires_grad=True)
    loss = F.binary_cross_entropy_with_logits(x, sd.tensor([1.0, 0.0, 1.0]), reduction="sum")
    loss.backward()
    assert loss.item() == pytest.approx(2000 + np.log(2), rel=1e-6)
    np.testing.assert_allclose(x.grad.numpy(), [-1.0, 1.0, -0.5])


def test_margin_and_embedding_losses():
    y = np.array([1.0, -1.0, 1.0, -1.0])
    check_op(lambda x: F.hinge_embedding_loss(x, on(x, y)), [r(4)],
             lambda x: np.where(y == 1, x, np.maximum(0, 1 - x)).mean(),
             TF and (lambda x: TF.hinge_embedding_loss(x, torch.from_numpy(y))))
    t = np.array([0, 2, 1])
    check_op(lambda x: F.multi_margin_loss(x, on(x, t)), [r(3, 4)],
             lambda x: _multi_margin(x, t, 1, 1.0),
             TF and (lambda x: TF.multi_margin_loss(x, torch.from_numpy(t))))
    check_op(lambda x: F.multi_margin_loss(x, on(x, t), p=2, margin=0.5), [r(3, 4)],
             lambda x: _multi_margin(x, t, 2, 0.5),
             TF and (lambda x: TF.multi_margin_loss(x, torch.from_numpy(t), p=2, margin=0.5)))
    check_op(lambda a, b: F.cosine_embedding_loss(a, b, on(a, y[:3]), margin=0.1),
             [r(3, 5), r(3, 5)],
             lambda a, b: np.where(y[:3] == 1, 1 - _cos(a, b),
                                   np.maximum(0, _cos(a, b) - 0.1)).mean(),
             TF and (lambda a, b: TF.cosine_embedding_loss(a, b, torch.from_numpy(y[:3]),
                                                           margin=0.1)))
    check_op(lambda a, p, n: F.triplet_margin_loss(a, p, n, margin=0.5), [r(3, 5), r(3, 5),
                                                                          r(3, 5)],
             lambda a, p, n: np.maximum(np.linalg.norm(a - p + 1e-6, axis=1)
                                        - np.linalg.norm(a - n + 1e-6, axis=1) + 0.5, 0).mean(),
             TF and (lambda a, p, n: TF.triplet_margin_loss(a, p, n, margin=0.5)))
    check_op(lambda a, b: F.kl_div(F.log_softmax(a, 1), F.softmax(b, 1), reduction="batchmean"),
             [r(3, 4), r(3, 4)],
             lambda a, b: (np.exp(np_log_softmax(b, 1)) * (np_log_softmax(b, 1)
                                                           - np_log_softmax(a, 1))).sum() / 3,
             TF and (lambda a, b: TF.kl_div(TF.log_softmax(a, 1), TF.softmax(b, 1),
                                            reduction="batchmean")))


@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5), (3, 2, 4, 4)])
def test_batch_norm_training(shape):
    c = shape[1]
    rm, rv = np.zeros(c), np.ones(c)

    def fn(x, w, b):
        return F.batch_norm(x, on(x, rm), on(x, rv), w, b, training=True)

    axes = (0,) + tuple(range(2, len(shape)))
    bshape = (1, c) + (1,) * (len(shape) - 2)
    check_op(fn, [r(*shape), r(c), r(c)],
             lambda x, w, b: norm_ref(x, axes) * w.reshape(bshape) + b.reshape(bshape),
             TF and (lambda x, w, b: TF.batch_norm(x, torch.zeros(c, dtype=torch.float64),
                                                   torch.ones(c, dtype=torch.float64), w, b,
                                                   training=True)))


def test_batch_norm_eval_and_running_stats():
    x = r(8, 3, 2, 2)
    rm, rv = sd.zeros(3, dtype=sd.float64), sd.ones(3, dtype=sd.float64)
    F.batch_norm(sd.tensor(x), rm, rv, training=True, momentum=0.1)
    n = 8 * 4
    mean = x.mean((0, 2, 3))
    var = x.var((0, 2, 3)) * n / (n - 1)
    np.testing.assert_allclose(rm.numpy(), 0.1 * mean)
    np.testing.assert_allclose(rv.numpy(), 0.9 + 0.1 * var)
    m, v = r(3), rng.uniform(0.5, 2, 3)
    check_op(lambda x, w, b: F.batch_norm(x, on(x, m), on(x, v), w, b, training=False),
             [x, r(3), r(3)],
             lambda x, w, b: ((x - m[:, None, None]) / np.sqrt(v[:, None, None] + 1e-5))
             * w[:, None, None] + b[:, None, None])


def test_batch_norm_batch_of_one_is_a_clear_error():
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        F.batch_norm(sd.ones(1, 4), sd.zeros(4), sd.ones(4), training=True)


def test_layer_norm_group_norm():
    check_op(lambda x, w, b: F.layer_norm(x, (4,), w, b), [r(3, 4), r(4), r(4)],
             lambda x, w, b: (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True)
                                                                      + 1e-5) * w + b,
             TF and (lambda x, w, b: TF.layer_norm(x, (4,), w, b)))
    check_op(lambda x: F.layer_norm(x, (3, 4)), [r(2, 3, 4)], lambda x: norm_ref(x, (1, 2)),
             TF and (lambda x: TF.layer_norm(x, (3, 4))))
    check_op(lambda x, w, b: F.group_norm(x, 2, w, b), [r(2, 4, 3, 3), r(4), r(4)],
             lambda x, w, b: norm_ref(x.reshape(2, 2, -1), 2).reshape(x.shape)
             * w[:, None, None] + b[:, None, None],
             TF and (lambda x, w, b: TF.group_norm(x, 2, w, b)))


def test_dropout_is_inverted_and_seeded():
    x = sd.ones(1000, 100)
    sd.manual_seed(1)
    y = F.dropout(x, 0.3)
    kept = (y.numpy() != 0).mean()
    assert abs(kept - 0.7) < 0.01
    assert np.allclose(y.numpy()[y.numpy() != 0], 1 / 0.7)
    sd.manual_seed(1)
    assert np.array_equal(F.dropout(x, 0.3).numpy(), y.numpy())
    assert F.dropout(x, 0.3, training=False) is x
    w = sd.randn(5, 5, requires_grad=True)
    out = F.dropout(w, 0.5)
    out.sum().backward()
    assert np.array_equal(w.grad.numpy(), (out.detach().numpy() != 0) * 2.0)


def test_embedding():
    idx = np.array([[1, 3, 1], [0, 0, 2]])
    check_op(lambda w: F.embedding(on(w, idx), w), [r(4, 5)], lambda w: w[idx],
             TF and (lambda w: TF.embedding(torch.from_numpy(idx), w)))
    w = sd.randn(4, 2, requires_grad=True)
    F.embedding(sd.tensor(idx), w, padding_idx=0).sum().backward()
    assert w.grad.tolist()[0] == [0.0, 0.0] and w.grad.tolist()[1] == [2.0, 2.0]
    with pytest.raises(IndexError, match="index 7 is out of range for 4 embeddings"):
        F.embedding(sd.tensor([7]), w)


def test_scaled_dot_product_attention():
    q, k, v = r(2, 3, 4), r(2, 5, 4), r(2, 5, 6)
    check_op(F.scaled_dot_product_attention, [q, k, v], sdpa_ref,
             TF and TF.scaled_dot_product_attention)
    mask = rng.random((3, 5)) > 0.3
    mask[:, 0] = True
    check_op(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=on(q, mask)),
             [q, k, v], lambda q, k, v: sdpa_ref(q, k, v, mask),
             TF and (lambda q, k, v: TF.scaled_dot_product_attention(
                 q, k, v, attn_mask=torch.from_numpy(mask))))
    check_op(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
             [r(2, 4, 4), r(2, 4, 4), r(2, 4, 3)],
             lambda q, k, v: sdpa_ref(q, k, v, causal=True),
             TF and (lambda q, k, v: TF.scaled_dot_product_attention(q, k, v, is_causal=True)))


def test_scaled_dot_product_attention_fused_shapes():
    """The fused node: causal rows past one block of 32 (the kernel's blocks), more or fewer
    keys than queries, 2-D and 3-D inputs, and a float causal mask (run as is_causal)."""
    causal = lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True)  # noqa: E731
    t_causal = TF and (lambda q, k, v: TF.scaled_dot_product_attention(q, k, v, is_causal=True))
    for lq, lk in ((40, 40), (37, 9), (9, 37)):
        check_op(causal, [r(1, 2, lq, 3), r(1, 2, lk, 3), r(1, 2, lk, 2)],
                 lambda q, k, v: sdpa_ref(q, k, v, causal=True), t_causal,
                 full_jacobian_max=0)
    check_op(causal, [r(6, 3), r(6, 3), r(6, 4)], lambda q, k, v: sdpa_ref(q, k, v, causal=True),
             t_causal)
    tri = np.triu(np.full((35, 35), -np.inf), 1)
    check_op(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=on(q, tri)),
             [r(2, 35, 3), r(2, 35, 3), r(2, 35, 2)],
             lambda q, k, v: sdpa_ref(q, k, v, causal=True),
             TF and (lambda q, k, v: TF.scaled_dot_product_attention(
                 q, k, v, attn_mask=torch.from_numpy(tri))), full_jacobian_max=0)
    add = rng.standard_normal((2, 1, 4, 5))  # an additive mask broadcast over the heads
    check_op(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=on(q, add)),
             [r(2, 3, 4, 3), r(2, 3, 5, 3), r(2, 3, 5, 2)],
             lambda q, k, v: _sdpa_additive_ref(q, k, v, add),
             TF and (lambda q, k, v: TF.scaled_dot_product_attention(
                 q, k, v, attn_mask=torch.from_numpy(add))))


def test_scaled_dot_product_attention_double_backward():
    """The fused node's second derivatives (through its forward written with Tensor ops)."""
    q, k, v = (sd.tensor(r(2, 2, 5, 3), requires_grad=True) for _ in range(3))
    tri = sd.tensor(np.triu(np.full((5, 5), -np.inf), 1))
    for kw in ({"is_causal": True}, {"attn_mask": tri}, {}):
        assert sd.autograd.gradgradcheck(
            lambda q, k, v, kw=kw: F.scaled_dot_product_attention(q, k, v, **kw), (q, k, v))


def _sdpa_additive_ref(q, k, v, add):
    s = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1]) + add
    e = np.exp(s - s.max(-1, keepdims=True))
    return (e / e.sum(-1, keepdims=True)) @ v


def test_scaled_dot_product_attention_composite_cases():
    """Broadcast leading dims and a mask that needs a gradient take the composition."""
    check_op(F.scaled_dot_product_attention, [r(2, 3, 4, 3), r(1, 3, 5, 3), r(1, 3, 5, 2)],
             sdpa_ref, TF and TF.scaled_dot_product_attention)
    check_op(lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m),
             [r(2, 4, 3), r(2, 5, 3), r(2, 5, 2), r(4, 5)], _sdpa_additive_ref,
             TF and (lambda q, k, v, m: TF.scaled_dot_product_attention(q, k, v, attn_mask=m)))
    q = sd.randn(2, 4, 3)
    with pytest.raises(ShapeError, match="does not broadcast"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=sd.zeros(3, 4))
    with pytest.raises(ShapeError, match="key has 4 positions but value has 5"):
        F.scaled_dot_product_attention(q, q, sd.randn(2, 5, 3))


def test_interpolate():
    check_op(lambda x: F.interpolate(x, scale_factor=2, mode="nearest"), [r(1, 2, 3, 3)],
             lambda x: x.repeat(2, 2).repeat(2, 3),
             TF and (lambda x: TF.interpolate(x, scale_factor=2, mode="nearest")))
    check_op(lambda x: F.interpolate(x, size=(5, 7), mode="bilinear", align_corners=False),
             [r(1, 2, 3, 4)],
             lambda x: interpolate_ref(x, size=(5, 7), mode="bilinear", align_corners=False),
             TF and (lambda x: TF.interpolate(x, size=(5, 7), mode="bilinear",
                                              align_corners=False)))
    check_op(lambda x: F.interpolate(x, size=(5, 7), mode="bilinear", align_corners=True),
             [r(1, 2, 3, 4)],
             lambda x: interpolate_ref(x, size=(5, 7), mode="bilinear", align_corners=True),
             TF and (lambda x: TF.interpolate(x, size=(5, 7), mode="bilinear",
                                              align_corners=True)))


def test_maxout_and_activations():
    check_op(lambda x: F.maxout(x, 2), [rng.permutation(24).reshape(2, 12).astype(float)],
             lambda x: x.reshape(2, 6, 2).max(-1))
    check_op(F.normalize, [r(3, 4)], lambda x: x / np.linalg.norm(x, axis=1, keepdims=True),
             TF and TF.normalize)
    check_op(lambda a, b: F.cosine_similarity(a, b), [r(3, 4), r(3, 4)], _cos,
             TF and TF.cosine_similarity)


@pytest.mark.parametrize("fn", [lambda x: F.log_softmax(x, 1), lambda x: sd.logsumexp(x, 1),
                                lambda x: F.softmax(x, 1),
                                lambda x: F.cross_entropy(x, on(x, [0, 1]))])
def test_softmax_family_finite_at_extremes(fn):
    x = sd.tensor([[1000.0, -1000.0, 0.0], [-1000.0, -1000.0, -1000.0]], requires_grad=True)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y = fn(x)
        (y * sd.randn(*y.shape)).sum().backward()
    assert np.isfinite(y.detach().numpy()).all() and np.isfinite(x.grad.numpy()).all()
