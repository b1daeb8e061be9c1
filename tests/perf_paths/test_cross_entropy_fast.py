"""The fused cross-entropy node's fast path: one exp buffer turned into the gradient in place.

Checked against a float64 NumPy reference (loss and gradient written out by hand), PyTorch
when importable, and itself: a retained graph backpropagated twice (the second backward
recomputes the consumed buffer) and forward mode after forward.
"""
import numpy as np
import pytest
from op_helper import torch

import shendu as sd
import shendu.nn.functional as F

rng = np.random.default_rng(5)


def ref_ce(x, t, weight=None, reduction="mean", ignore_index=-100):
    """Loss and d(loss)/dx in float64, from the definitions."""
    x = x.astype(np.float64)
    m = x.max(1, keepdims=True)
    logp = x - m - np.log(np.exp(x - m).sum(1, keepdims=True))
    valid = t != ignore_index
    tt = np.where(valid, t, 0)
    w = np.ones(x.shape[1]) if weight is None else weight
    wt = w[tt] * valid
    per_row = -logp[np.arange(len(t)), tt] * wt
    onehot = np.zeros_like(x)
    onehot[np.arange(len(t)), tt] = 1
    grad = (np.exp(logp) - onehot) * wt[:, None]
    if reduction == "mean":
        return per_row.sum() / wt.sum(), grad / wt.sum()
    if reduction == "sum":
        return per_row.sum(), grad
    return per_row, grad


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_float32_lm_sized_against_reference(reduction):
    x = (rng.standard_normal((96, 2000)) * 3).astype(np.float32)
    t = rng.integers(0, 2000, 96)
    t[5] = -100
    xt = sd.tensor(x, requires_grad=True)
    loss = F.cross_entropy(xt, sd.tensor(t), reduction=reduction)
    up = rng.standard_normal(96) if reduction == "none" else 1.0
    (loss * sd.tensor(np.float32(up)) if reduction == "none" else loss).sum().backward()
    want, grad = ref_ce(x, t, reduction=reduction)
    np.testing.assert_allclose(loss.detach().numpy(), want, rtol=2e-5, atol=1e-5)
    g = grad * (np.asarray(up)[:, None] if reduction == "none" else up)
    np.testing.assert_allclose(xt.grad.numpy(), g, rtol=1e-4, atol=1e-8)
    assert xt.grad.dtype == sd.float32


def test_weights_and_ignore_index():
    x = rng.standard_normal((40, 7))
    t = rng.integers(0, 7, 40)
    t[::5] = 2
    w = rng.uniform(0.2, 3.0, 7)
    xt = sd.tensor(x, requires_grad=True)
    loss = F.cross_entropy(xt, sd.tensor(t), weight=sd.tensor(w), ignore_index=2)
    loss.backward()
    want, grad = ref_ce(x, t, weight=w, ignore_index=2)
    np.testing.assert_allclose(loss.item(), want, rtol=1e-12)
    np.testing.assert_allclose(xt.grad.numpy(), grad, rtol=1e-10, atol=1e-14)


def test_extreme_scores_stay_finite():
    x = np.array([[1000.0, -1000.0, 0.0], [-np.inf, 5.0, 4.0], [-3e4, -3e4 + 1, -3e4]],
                 np.float32)
    t = np.array([1, 2, 1])
    xt = sd.tensor(x, requires_grad=True)
    loss = F.cross_entropy(xt, sd.tensor(t), reduction="none")
    loss.sum().backward()
    want, grad = ref_ce(x, t, reduction="none")
    np.testing.assert_allclose(loss.detach().numpy(), want, rtol=1e-5)
    np.testing.assert_allclose(xt.grad.numpy(), grad, rtol=1e-5, atol=1e-7)


def test_retain_graph_second_backward_recomputes():
    x = rng.standard_normal((30, 11)).astype(np.float32)
    t = rng.integers(0, 11, 30)
    xt = sd.tensor(x, requires_grad=True)
    loss = F.cross_entropy(xt, sd.tensor(t))
    loss.backward(retain_graph=True)
    first = xt.grad.numpy().copy()
    loss.backward()
    np.testing.assert_allclose(xt.grad.numpy(), 2 * first, rtol=1e-6)
    with pytest.raises(RuntimeError, match="second time"):
        loss.backward()


def test_gradient_is_not_shared_between_steps():
    x = rng.standard_normal((8, 5)).astype(np.float32)
    t = sd.tensor(rng.integers(0, 5, 8))
    xt = sd.tensor(x, requires_grad=True)
    F.cross_entropy(xt, t).backward()
    g1 = xt.grad
    xt.grad = None
    F.cross_entropy(xt * 2, t).backward()
    assert not np.shares_memory(g1.numpy(), xt.grad.numpy())
    np.testing.assert_allclose(g1.numpy(), ref_ce(x, t.numpy())[1], rtol=1e-5, atol=1e-7)


def test_label_smoothing_and_probability_targets_gradcheck():
    x = sd.tensor(rng.standard_normal((6, 5)), requires_grad=True)
    t = sd.tensor(rng.integers(0, 5, 6))
    p = sd.tensor(rng.dirichlet(np.ones(5), 6))
    assert sd.autograd.gradcheck(lambda a: F.cross_entropy(a, t, label_smoothing=0.2), (x,))
    assert sd.autograd.gradcheck(lambda a: F.cross_entropy(a, p, reduction="none"), (x,))
    assert sd.autograd.gradcheck(lambda a: F.cross_entropy(a, t, reduction="none"), (x,))


def test_jvp_matches_finite_difference():
    x = rng.standard_normal((7, 4))
    t = sd.tensor(rng.integers(0, 4, 7))
    v = rng.standard_normal((7, 4))
    _, tan = sd.autograd.jvp(lambda a: F.cross_entropy(a, t), sd.tensor(x), sd.tensor(v))
    eps = 1e-6
    f = [F.cross_entropy(sd.tensor(x + s * eps * v), t).item() for s in (1, -1)]
    np.testing.assert_allclose(tan.item(), (f[0] - f[1]) / (2 * eps), rtol=1e-6)


@pytest.mark.skipif(torch is None, reason="PyTorch not installed")
def test_matches_torch_float32():
    x = (rng.standard_normal((64, 3000)) * 4).astype(np.float32)
    t = rng.integers(0, 3000, 64)
    xt = sd.tensor(x, requires_grad=True)
    F.cross_entropy(xt, sd.tensor(t), label_smoothing=0.0).backward()
    tx = torch.from_numpy(x).requires_grad_(True)
    loss_t = torch.nn.functional.cross_entropy(tx, torch.from_numpy(t))
    loss_t.backward()
    np.testing.assert_allclose(F.cross_entropy(sd.tensor(x), sd.tensor(t)).item(),
                               loss_t.item(), rtol=1e-5)
    np.testing.assert_allclose(xt.grad.numpy(), tx.grad.numpy(), rtol=1e-4, atol=1e-9)


@pytest.mark.parametrize("offset", [0.0, 70.0, 500.0, -60.0, -3000.0])
@pytest.mark.parametrize("far_row", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_shift_choice(offset, far_row, dtype):
    """Offsets that take each branch of the shift choice (none, one global, per row), with
    and without a row far above the others, give the reference loss and gradient."""
    x = rng.standard_normal((12, 300)) * 2 + offset
    if far_row:
        x[0] += 100
    x = x.astype(dtype)
    t = rng.integers(0, 300, 12)
    xt = sd.tensor(x, requires_grad=True)
    loss = F.cross_entropy(xt, sd.tensor(t), reduction="none")
    loss.sum().backward()
    want, grad = ref_ce(x, t, reduction="none")
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(loss.detach().numpy(), want, rtol=tol, atol=tol)
    np.testing.assert_allclose(xt.grad.numpy(), grad, rtol=tol * 10, atol=tol * 1e-2)


def test_empty_batch():
    xt = sd.tensor(np.zeros((0, 5), np.float32), requires_grad=True)
    loss = F.cross_entropy(xt, sd.tensor(np.zeros(0, np.int64)), reduction="sum")
    loss.backward()
    assert loss.item() == 0 and xt.grad.shape == (0, 5)


def test_in_place_change_of_the_scores():
    """The first backward never reads x (PyTorch's log_softmax keeps its output, not x, so
    it does not mind either); a recompute from a changed x must raise, not mislead."""
    x = rng.standard_normal((6, 4)).astype(np.float32)
    t = sd.tensor(rng.integers(0, 4, 6))
    leaf = sd.tensor(x, requires_grad=True)
    scores = leaf * 1
    loss = F.cross_entropy(scores, t)
    with sd.no_grad():
        scores.add_(5.0)
    loss.backward(retain_graph=True)
    np.testing.assert_allclose(leaf.grad.numpy(), ref_ce(x, t.numpy())[1], rtol=1e-5,
                               atol=1e-7)
    with pytest.raises(RuntimeError, match="modified in place"):
        loss.backward()


@pytest.mark.parametrize("offset", [0.0, 9.0, 30.0, -12.0])
def test_float16_shift_choice(offset):
    """float16 overflows above exp(11) and goes subnormal below exp(-9.7): the shift choice
    must notice both through the row sums."""
    x = (rng.standard_normal((5, 40)) + offset).astype(np.float16)
    t = rng.integers(0, 40, 5)
    xt = sd.tensor(x, requires_grad=True)
    loss = F.cross_entropy(xt, sd.tensor(t), reduction="none")
    loss.sum().backward()
    want, grad = ref_ce(x, t, reduction="none")
    np.testing.assert_allclose(loss.detach().numpy().astype(np.float64), want, rtol=1e-2,
                               atol=1e-2)
    np.testing.assert_allclose(xt.grad.numpy().astype(np.float64), grad, atol=2e-3)


def test_rows_split_between_threads_match_one_thread(monkeypatch):
    """Above ``_SPLIT_MIN`` elements the exp pass and the gradient's row scaling run in row
    blocks on the optimizers' threads: the result must be bit-identical to one thread."""
    from shendu.backend import pool as _parallel
    from shendu.backend.pool import SPLIT_MIN as _SPLIT_MIN

    monkeypatch.setattr(_parallel, "_blas_threads", lambda: 8)  # the tests pin BLAS to 1

    rows = _SPLIT_MIN // 1000 + 7
    x = rng.standard_normal((rows, 1000)).astype(np.float32)
    t = sd.tensor(rng.integers(0, 1000, rows))
    before = _parallel.get_num_threads()
    results = []
    try:
        for n in (1, 2, 3):
            _parallel.set_num_threads(n)
            xt = sd.tensor(x, requires_grad=True)
            loss = F.cross_entropy(xt, t)
            loss.backward()
            results.append((loss.item(), xt.grad.numpy()))
    finally:
        _parallel.set_num_threads(before)
    for loss, grad in results[1:]:
        assert loss == results[0][0]
        np.testing.assert_array_equal(grad, results[0][1])
    want, grad = ref_ce(x[:50], t.numpy()[:50], reduction="sum")
    np.testing.assert_allclose(results[0][1][:50] * rows, grad, rtol=1e-4, atol=1e-8)


@pytest.mark.parametrize("kw", [{}, {"label_smoothing": 0.1}])
def test_every_target_ignored_gives_nan_mean_and_zero_gradient(kw):
    # PyTorch: the mean over no counted targets is 0/0 = nan, but the batch must not
    # poison the weights, so the gradient is 0; and no floating-point warning on the way.
    with np.errstate(all="raise"):
        x = sd.randn(2, 3, requires_grad=True)
        loss = F.cross_entropy(x, sd.tensor([-100, -100]), **kw)
        loss.backward()
        assert np.isnan(loss.item())
        np.testing.assert_array_equal(x.grad.numpy(), 0)
        assert F.cross_entropy(x, sd.tensor([-100, -100]), reduction="sum").item() == 0
        assert np.isnan(F.nll_loss(x, sd.tensor([-100, -100])).item())
        assert np.isnan(F.cross_entropy(sd.zeros(0, 3), sd.zeros(0, dtype=sd.int64)).item())
