"""cross_entropy's targets: probability targets are differentiable (as in PyTorch, for
distillation with learnable targets), all-zero class weights give nan like PyTorch, and
every integer dtype of class indices reads the same classes."""
import numpy as np
import pytest
from op_helper import on, oracle_missing, require_oracle, torch

import shendu as sd
import shendu.nn.functional as F

rng = np.random.default_rng(7)


def soft_ce_reference(x, p, w=None, reduction="mean", ls=0.0):
    """Loss and both gradients (input, target) by the closed form, in float64:
    loss_i = -sum_c a_ic log_softmax(x)_ic with a = (p (1 - ls) + ls / C) w."""
    n, c = x.shape
    z = x - x.max(1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    wv = np.ones(c) if w is None else w
    a = (p * (1 - ls) + ls / c) * wv
    per_row = -(a * logp).sum(1)
    scale = 1.0 / n if reduction == "mean" else 1.0
    gx = (np.exp(logp) * a.sum(1, keepdims=True) - a) * scale
    gp = -logp * (1 - ls) * wv * scale
    loss = per_row.sum() * scale if reduction != "none" else per_row
    return loss, gx, gp


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("kw", [{}, {"label_smoothing": 0.3}, {"weight": True}])
def test_probability_target_gets_a_gradient(reduction, kw):
    x = rng.standard_normal((5, 4))
    p = rng.dirichlet(np.ones(4), 5)
    w = rng.uniform(0.5, 2.0, 4) if kw.get("weight") else None
    ls = kw.get("label_smoothing", 0.0)
    xt, pt = sd.tensor(x, requires_grad=True), sd.tensor(p, requires_grad=True)
    loss = F.cross_entropy(xt, pt, weight=None if w is None else sd.tensor(w),
                           reduction=reduction, label_smoothing=ls)
    loss.backward()
    want, gx, gp = soft_ce_reference(x, p, w, reduction, ls)
    np.testing.assert_allclose(loss.item(), want, rtol=1e-12)
    np.testing.assert_allclose(xt.grad.numpy(), gx, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(pt.grad.numpy(), gp, rtol=1e-10, atol=1e-14)
    # finite differences through both arguments
    assert sd.autograd.gradcheck(
        lambda a, b: F.cross_entropy(a, b, weight=None if w is None else on(a, w),
                                     reduction=reduction, label_smoothing=ls),
        [sd.tensor(x, requires_grad=True), sd.tensor(p, requires_grad=True)])


def test_probability_target_gradient_matches_pytorch():
    require_oracle("torch", torch)
    x = rng.standard_normal((3, 5, 2, 2))  # classes in dim 1, as PyTorch's (N, C, d1, d2)
    p = rng.dirichlet(np.ones(5), (3, 2, 2)).transpose(0, 3, 1, 2).copy()
    g = rng.standard_normal((3, 2, 2))
    for reduction in ("none", "mean", "sum"):
        xt, pt = sd.tensor(x, requires_grad=True), sd.tensor(p, requires_grad=True)
        tx = torch.tensor(x, requires_grad=True)
        tp = torch.tensor(p, requires_grad=True)
        ours = F.cross_entropy(xt, pt, reduction=reduction, label_smoothing=0.1)
        theirs = torch.nn.functional.cross_entropy(tx, tp, reduction=reduction,
                                                   label_smoothing=0.1)
        np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(),
                                   rtol=1e-12)
        up = g if reduction == "none" else np.ones(())
        ours.backward(sd.tensor(up))
        theirs.backward(torch.tensor(up))
        np.testing.assert_allclose(xt.grad.numpy(), tx.grad.numpy(), rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(pt.grad.numpy(), tp.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_constant_probability_target_keeps_the_fused_path_and_value():
    x = rng.standard_normal((6, 3)).astype(np.float32)
    p = rng.dirichlet(np.ones(3), 6).astype(np.float32)
    a = F.cross_entropy(sd.tensor(x), sd.tensor(p))
    b = F.cross_entropy(sd.tensor(x), sd.tensor(p, requires_grad=True))
    np.testing.assert_allclose(a.item(), b.item(), rtol=1e-6)
    with sd.no_grad():  # no graph wanted: the fused node, no gradient
        c = F.cross_entropy(sd.tensor(x), sd.tensor(p, requires_grad=True))
    assert not c.requires_grad


@pytest.mark.parametrize("target_kind", ["index", "index_ignored", "probability"])
def test_all_zero_class_weights(target_kind):
    """Index targets: the 'mean' divides by the sum of the targets' weights, 0 here, so
    the loss is nan (as PyTorch) and the gradient 0; 'sum' is 0. Probability targets
    divide by N: the mean is 0."""
    x = rng.standard_normal((4, 3))
    w = np.zeros(3)
    if target_kind == "probability":
        t = sd.tensor(rng.dirichlet(np.ones(3), 4))
    else:
        t = sd.tensor(np.array([0, 2, 1, 1]))
    kw = {"ignore_index": 1} if target_kind == "index_ignored" else {}
    xt = sd.tensor(x, requires_grad=True)
    loss = F.cross_entropy(xt, t, weight=sd.tensor(w), **kw)
    loss.backward()
    if target_kind == "probability":
        assert loss.item() == 0
    else:
        assert np.isnan(loss.item())
    np.testing.assert_array_equal(xt.grad.numpy(), 0)
    assert F.cross_entropy(sd.tensor(x), t, weight=sd.tensor(w), reduction="sum").item() == 0
    if torch is None:
        oracle_missing("the PyTorch comparison of zero class weights")
    else:
        theirs = torch.nn.functional.cross_entropy(torch.tensor(x), torch.from_numpy(t.numpy()),
                                                   weight=torch.tensor(w), **kw).item()
        assert (np.isnan(theirs) and np.isnan(loss.item())) or theirs == loss.item()


@pytest.mark.parametrize("dtype", [np.int32, np.int16, np.int8, np.uint8, np.uint16, np.int64])
def test_every_integer_dtype_of_class_indices(dtype):
    """PyTorch accepts only int64 (int32 raises there); shendu reads the same classes from
    any integer dtype, as documented in the docstring."""
    x = rng.standard_normal((6, 5))
    t = np.array([0, 4, 2, 2, 1, 3])
    want = -np.log(np.exp(x[np.arange(6), t]) / np.exp(x).sum(1)).mean()
    for fn in (F.cross_entropy, lambda a, b: F.nll_loss(F.log_softmax(a, 1), b)):
        got = fn(sd.tensor(x), sd.tensor(t.astype(dtype)))
        np.testing.assert_allclose(got.item(), want, rtol=1e-12)


def test_float_and_bool_class_targets_are_refused_clearly():
    x = sd.randn(2, 3)
    with pytest.raises(ValueError, match="probability targets must have the input's shape"):
        F.cross_entropy(x, sd.tensor([0.0, 1.0]))  # floats are read as probabilities
    with pytest.raises(TypeError, match="class indices"):
        F.cross_entropy(x, sd.tensor([True, False]))
