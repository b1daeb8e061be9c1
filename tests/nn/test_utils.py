"""nn.utils: gradient clipping (against PyTorch), parameter vectors, L1/L2 penalties."""
import math

import numpy as np
import pytest

import shendu as sd
from shendu.nn import utils
from shendu.optim import SGD


def _params_with_grads(seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    shapes = [(4, 3), (3,), (2, 2, 2)]
    ps, grads = [], []
    for s in shapes:
        p = sd.nn.Parameter(sd.tensor(rng.standard_normal(s)))
        g = scale * rng.standard_normal(s)
        p.grad = sd.tensor(g.copy())
        ps.append(p)
        grads.append(g)
    return ps, grads


@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf, 3.0, 0.5])
@pytest.mark.parametrize("max_norm", [0.5, 1e6])
def test_clip_grad_norm_matches_formula(norm_type, max_norm):
    ps, grads = _params_with_grads()
    flat = np.concatenate([g.ravel() for g in grads])
    if norm_type == math.inf:
        total = np.abs(flat).max()
    else:
        total = (np.abs(flat) ** norm_type).sum() ** (1 / norm_type)
    got = utils.clip_grad_norm_(ps, max_norm, norm_type)
    assert isinstance(got, sd.Tensor) and got.item() == pytest.approx(total, rel=1e-12)
    coef = min(max_norm / (total + 1e-6), 1.0)
    for p, g in zip(ps, grads):
        np.testing.assert_allclose(p.grad.numpy(), g * coef, rtol=1e-12)


@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf, 3.0])
def test_clip_grad_norm_matches_torch(norm_type):
    torch = pytest.importorskip("torch")
    ps, grads = _params_with_grads(1, scale=3.0)
    tps = [torch.nn.Parameter(torch.tensor(p.detach().numpy().astype(np.float32)))
           for p in ps]
    for tp, g in zip(tps, grads):
        tp.grad = torch.tensor(g.astype(np.float32))
    ps32 = [sd.nn.Parameter(sd.tensor(p.detach().numpy().astype(np.float32))) for p in ps]
    for p, g in zip(ps32, grads):
        p.grad = sd.tensor(g.astype(np.float32))
    want = torch.nn.utils.clip_grad_norm_(tps, 1.0, norm_type)
    got = utils.clip_grad_norm_(ps32, 1.0, norm_type)
    assert got.dtype == np.float32
    # the norm sums n positive terms |g|^p (relative error (n + 2) eps in any order), takes
    # a root and a power (an ulp or two each in either library); the clip scales by it
    n = sum(g.size for g in grads)
    rtol = (n + 8) * float(np.finfo(np.float32).eps)
    assert got.item() == pytest.approx(want.item(), rel=rtol)
    for p, tp in zip(ps32, tps):
        np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=rtol, atol=0)


def test_clip_grad_norm_edge_cases():
    w = sd.nn.Parameter(sd.zeros(2))
    assert utils.clip_grad_norm_([w], 1.0).item() == 0.0  # no gradients at all
    w.grad = sd.tensor([3.0, 4.0])
    assert utils.clip_grad_norm_(w, 10.0).item() == 5.0  # a single tensor works too
    assert w.grad.numpy().tolist() == [3.0, 4.0]
    w.grad = sd.tensor([np.inf, 1.0])
    with pytest.raises(RuntimeError, match="total norm of order 2.0 of the gradients is inf"):
        utils.clip_grad_norm_([w], 1.0, error_if_nonfinite=True)
    # two parameters sharing one gradient array scale it once, not twice
    a, b = sd.nn.Parameter(sd.zeros(2)), sd.nn.Parameter(sd.zeros(2))
    a.grad = sd.tensor([6.0, 8.0])
    b.grad = a.grad
    utils.clip_grad_norm_([a, b], 1.0)
    np.testing.assert_allclose(a.grad.numpy(), [0.6, 0.8], rtol=1e-5)


def test_clip_grad_value():
    ps, grads = _params_with_grads(2, scale=2.0)
    utils.clip_grad_value_(ps, 0.5)
    for p, g in zip(ps, grads):
        np.testing.assert_array_equal(p.grad.numpy(), np.clip(g, -0.5, 0.5))
    with pytest.raises(ValueError, match="clip_value must be >= 0, got -1"):
        utils.clip_grad_value_(ps, -1)


def test_clipping_tames_exploding_gradients():
    """A deep product w^20 explodes at w = 1.5; clipping keeps each step bounded."""
    w = sd.nn.Parameter(sd.tensor([1.5], dtype=sd.float64))
    opt = SGD([w], lr=0.01)
    norms = []
    for _ in range(50):
        opt.zero_grad()
        ((w ** 20).sum() - 1.0).abs().backward()
        norms.append(utils.clip_grad_norm_([w], max_norm=1.0).item())
        opt.step()
    assert norms[0] > 1e4  # the raw gradient is huge
    assert abs(w.item() - 1.0) < 0.02  # yet w walked steadily down to the minimum


def test_parameters_to_vector_and_back():
    ps, _ = _params_with_grads()
    vec = utils.parameters_to_vector(ps)
    assert vec.shape == (12 + 3 + 8,)
    np.testing.assert_array_equal(vec.detach().numpy(),
                                  np.concatenate([p.detach().numpy().ravel() for p in ps]))
    for p in ps:
        p.grad = None
    (vec * sd.arange(23, dtype=sd.float64)).sum().backward()  # differentiable
    assert ps[1].grad.numpy().tolist() == [12.0, 13.0, 14.0]
    new = sd.arange(23, dtype=sd.float64)
    versions = [p._version[0] for p in ps]
    utils.vector_to_parameters(new, ps)
    assert ps[2].detach().numpy().ravel().tolist() == list(range(15, 23))
    assert all(p._version[0] > v for p, v in zip(ps, versions))
    new._data[:] = -1  # copies, not views
    assert ps[0].detach().numpy()[0, 0] == 0
    with pytest.raises(ValueError, match="vec has 5 elements but the parameters hold 23"):
        utils.vector_to_parameters(sd.zeros(5), ps)
    with pytest.raises(TypeError, match="expected vec to be a Tensor, got list"):
        utils.vector_to_parameters([1.0], ps)


def test_l1_l2_penalties_and_their_gradients():
    w = sd.nn.Parameter(sd.tensor([[1.0, -2.0], [0.5, 0.0]], dtype=sd.float64))
    b = sd.nn.Parameter(sd.tensor([-3.0], dtype=sd.float64))
    assert utils.l1_penalty([w, b]).item() == pytest.approx(6.5)
    assert utils.l2_penalty([w, b]).item() == pytest.approx(0.5 * (1 + 4 + 0.25 + 9))
    (utils.l1_penalty([w, b]) + utils.l2_penalty([w, b])).backward()
    np.testing.assert_allclose(w.grad.numpy(), np.sign(w.detach().numpy()) + w.detach().numpy())
    assert utils.l2_penalty([]).item() == 0.0


def test_weight_decay_equals_l2_penalty_gradient():
    rng = np.random.default_rng(0)
    X = sd.tensor(rng.standard_normal((20, 3)))
    y = sd.tensor(rng.standard_normal((20, 1)))
    w0 = rng.standard_normal((3, 1))
    lam = 0.3
    w_decay = sd.nn.Parameter(sd.tensor(w0.copy()))
    w_pen = sd.nn.Parameter(sd.tensor(w0.copy()))
    opt_decay = SGD([w_decay], lr=0.1, momentum=0.9, weight_decay=lam)
    opt_pen = SGD([w_pen], lr=0.1, momentum=0.9)
    for _ in range(5):
        for opt, w, extra in ((opt_decay, w_decay, False), (opt_pen, w_pen, True)):
            opt.zero_grad()
            loss = ((X @ w - y) ** 2).mean()
            if extra:
                loss = loss + lam * utils.l2_penalty([w])
            loss.backward()
            opt.step()
    np.testing.assert_allclose(w_decay.detach().numpy(), w_pen.detach().numpy(), rtol=1e-12)


def test_generators_of_parameters_are_accepted():
    """``model.parameters()`` is a one-shot generator: every helper must read it once and
    still visit every parameter (a helper that iterates twice would see nothing the second
    time and silently skip the clipping)."""
    ps, grads = _params_with_grads(3, scale=5.0)
    model = sd.nn.Module()
    for i, p in enumerate(ps):
        setattr(model, f"p{i}", p)
    flat = np.concatenate([g.ravel() for g in grads])
    total = utils.clip_grad_norm_(model.parameters(), 1.0)
    assert total.item() == pytest.approx(np.linalg.norm(flat), rel=1e-12)
    for p, g in zip(ps, grads):
        np.testing.assert_allclose(p.grad.numpy(), g / (np.linalg.norm(flat) + 1e-6),
                                   rtol=1e-12)
    for p, g in zip(ps, grads):
        p.grad = sd.tensor(g.copy())
    utils.clip_grad_value_((p for p in ps), 0.25)
    assert all(np.abs(p.grad.numpy()).max() <= 0.25 for p in ps)
    vec = utils.parameters_to_vector(model.parameters()).detach().numpy().copy()
    assert vec.shape == (sum(p.numel() for p in ps),)
    utils.vector_to_parameters(sd.tensor(vec * 2), model.parameters())
    np.testing.assert_allclose(utils.parameters_to_vector(ps).detach().numpy(), vec * 2)
    assert utils.l2_penalty(model.parameters()).item() == pytest.approx(2 * vec @ vec)
