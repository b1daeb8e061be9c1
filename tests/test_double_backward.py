"""Double backward (``create_graph=True``): every op with a second-order rule is checked by
``gradgradcheck`` (finite differences of the recorded backward, float64) and against
PyTorch's ``autograd.grad(..., create_graph=True)``; then the uses it exists for: a WGAN-GP
gradient penalty, Hessian-vector products, ``autograd.functional``."""
from __future__ import annotations

import numpy as np
import pytest

import shendu as sd
import shendu.nn.functional as F

# Each case: (name, fn(lib, F, *xs), input shapes, offset added to the inputs so that
# log/sqrt/div stay away from their singularities and kinks away from ties).
CASES = [
    ("add", lambda L, F, a, b: a + b * b, [(3, 4), (4,)], 0),
    ("sub", lambda L, F, a, b: (a - b) * a, [(3, 4), (3, 1)], 0),
    ("mul", lambda L, F, a, b: a * b, [(3, 4), (4,)], 0),
    ("div", lambda L, F, a, b: a / b, [(3, 4), (4,)], 2.0),
    ("neg", lambda L, F, a: -(a * a), [(5,)], 0),
    ("pow_tensor", lambda L, F, a, b: a ** b, [(3, 4), (3, 4)], 1.5),
    ("pow_scalar", lambda L, F, a: a ** 3 + a ** 2 + a ** 0.5, [(5,)], 2.0),
    ("rpow_scalar", lambda L, F, a: 2.0 ** a, [(5,)], 0),
    ("rdiv_scalar", lambda L, F, a: 1.0 / a, [(5,)], 2.0),
    ("rsub_scalar", lambda L, F, a: (1.0 - a) * a, [(5,)], 0),
    ("exp", lambda L, F, a: a.exp(), [(5,)], 0),
    ("log", lambda L, F, a: a.log(), [(5,)], 2.0),
    ("log1p", lambda L, F, a: a.log1p(), [(5,)], 1.0),
    ("sqrt", lambda L, F, a: a.sqrt(), [(5,)], 2.0),
    ("rsqrt", lambda L, F, a: a.rsqrt(), [(5,)], 2.0),
    ("sin", lambda L, F, a: a.sin(), [(5,)], 0),
    ("cos", lambda L, F, a: a.cos(), [(5,)], 0),
    ("tanh", lambda L, F, a: a.tanh(), [(5,)], 0),
    ("sigmoid", lambda L, F, a: a.sigmoid(), [(5,)], 0),
    ("abs", lambda L, F, a: a.abs() * a, [(5,)], 0),
    ("relu", lambda L, F, a: a.relu() * a, [(6,)], 0),
    ("leaky_relu", lambda L, F, a: F.leaky_relu(a, 0.1) * a, [(6,)], 0),
    ("elu", lambda L, F, a: F.elu(a), [(6,)], 0),
    ("softplus", lambda L, F, a: F.softplus(a, beta=2.0), [(6,)], 0),
    ("gelu", lambda L, F, a: F.gelu(a * a - 1), [(6,)], 0),
    ("gelu_tanh", lambda L, F, a: F.gelu(a, approximate="tanh"), [(6,)], 0),
    ("clamp", lambda L, F, a: a.clamp(-0.5, 0.5) * a, [(6,)], 0),
    ("maximum", lambda L, F, a, b: L.maximum(a * a, b), [(6,), (6,)], 0),
    ("minimum", lambda L, F, a, b: L.minimum(a * a, b), [(6,), (6,)], 0),
    ("where", lambda L, F, a, b: L.where(a > 0, a * b, b * b), [(6,), (6,)], 0),
    ("matmul", lambda L, F, a, b: a @ b, [(3, 4), (4, 2)], 0),
    ("matmul_vec", lambda L, F, a, b: a @ b, [(3, 4), (4,)], 0),
    ("matmul_batched", lambda L, F, a, b: a @ b, [(2, 3, 4), (4, 2)], 0),
    ("matmul_square", lambda L, F, a: a @ a, [(3, 3)], 0),
    ("linear", lambda L, F, x, w, b: F.linear(x * x, w, b), [(3, 4), (2, 4), (2,)], 0),
    ("sum", lambda L, F, a: (a * a).sum(dim=1), [(3, 4)], 0),
    ("mean", lambda L, F, a: (a * a).mean(dim=0, keepdim=True), [(3, 4)], 0),
    ("reshape_view", lambda L, F, a: (a * a).reshape(4, 3).view(2, 6), [(3, 4)], 0),
    ("transpose_permute", lambda L, F, a: (a * a).transpose(0, 1).permute(1, 0) * a,
     [(3, 4)], 0),
    ("expand", lambda L, F, a: (a * a).expand(3, 4) * a, [(1, 4)], 0),
    ("broadcast", lambda L, F, a, b: (a * b) * (a + b), [(3, 1), (1, 4)], 0),
    ("index", lambda L, F, a: (a * a)[1:, ::2] * a[1:, ::2], [(3, 4)], 0),
    ("index_repeated", lambda L, F, a: (a * a)[[0, 0, 2]] * a[[1, 0, 0]], [(3, 4)], 0),
    ("cat", lambda L, F, a, b: L.cat([a * a, b * a], dim=0), [(2, 3), (2, 3)], 0),
    ("stack", lambda L, F, a, b: L.stack([a * a, b * a], dim=1), [(2, 3), (2, 3)], 0),
    ("softmax", lambda L, F, a: F.softmax(a * a, dim=1), [(3, 4)], 0),
    ("log_softmax", lambda L, F, a: F.log_softmax(a * a, dim=-1), [(3, 4)], 0),
    ("logsumexp", lambda L, F, a: (a * a).logsumexp(dim=1), [(3, 4)], 0),
    ("norm", lambda L, F, a: (a * a).norm(dim=1), [(3, 4)], 0.5),
    ("max_dim", lambda L, F, a: (a * a).max(dim=1)[0], [(3, 4)], 0),
    ("amax", lambda L, F, a: (a * a).amax(dim=0), [(3, 4)], 0),
    ("mse_loss", lambda L, F, a, b: F.mse_loss(a * a, b), [(3, 4), (3, 4)], 0),
    ("bce", lambda L, F, a, t: F.binary_cross_entropy((a * a).sigmoid(), t.sigmoid()),
     [(3, 4), (3, 4)], 0),
    ("bce_with_logits", lambda L, F, a, t: F.binary_cross_entropy_with_logits(
        a * a, t.sigmoid()), [(3, 4), (3, 4)], 0),
    ("bce_with_logits_pos_weight", lambda L, F, a, t: F.binary_cross_entropy_with_logits(
        a * a, t.sigmoid(), pos_weight=L.tensor([0.5, 1.0, 2.0, 3.0], dtype=L.float64)),
     [(3, 4), (3, 4)], 0),
    ("cross_entropy", lambda L, F, a: F.cross_entropy(
        a * a, _target(L)), [(3, 4)], 0),
    ("cross_entropy_none", lambda L, F, a: F.cross_entropy(
        a * a, _target(L), reduction="none"), [(3, 4)], 0),
    ("cross_entropy_smooth_weight", lambda L, F, a: F.cross_entropy(
        a * a, _target(L), weight=L.tensor([1.0, 2.0, 0.5, 1.5], dtype=L.float64),
        label_smoothing=0.1), [(3, 4)], 0),
    ("cross_entropy_probs", lambda L, F, a: F.cross_entropy(
        a * a, L.tensor(_PROBS)), [(3, 4)], 0),
    ("conv2d", lambda L, F, x, w, b: F.conv2d(x, w, b, padding=1), [(2, 2, 4, 4), (3, 2, 3, 3),
                                                                    (3,)], 0),
    ("conv2d_strided", lambda L, F, x, w: F.conv2d(x * x, w, stride=2, padding=1, dilation=1),
     [(1, 2, 5, 5), (2, 2, 3, 3)], 0),
    ("conv_transpose2d", lambda L, F, x, w, b: F.conv_transpose2d(x, w, b, stride=2, padding=1,
                                                                  output_padding=1),
     [(2, 2, 3, 3), (2, 3, 3, 3), (3,)], 0),
    ("conv_transpose2d_groups", lambda L, F, x, w: F.conv_transpose2d(x * x, w, groups=2,
                                                                      dilation=2),
     [(1, 4, 3, 3), (4, 1, 2, 2)], 0),
    ("max_pool2d", lambda L, F, a: F.max_pool2d(a * a, 2), [(1, 2, 4, 4)], 0),
    ("layer_norm", lambda L, F, x, w, b: F.layer_norm(x * x, (5,), w, b), [(3, 5), (5,), (5,)],
     0),
    ("layer_norm_plain", lambda L, F, x: F.layer_norm(x * x, (2, 3)), [(2, 2, 3)], 0),
    ("batch_norm_train", lambda L, F, x, w, b: F.batch_norm(x * x, None, None, w, b,
                                                            training=True),
     [(4, 3, 2, 2), (3,), (3,)], 0),
    ("batch_norm_eval", lambda L, F, x, w, b: F.batch_norm(
        x * x, L.tensor([0.1, -0.2, 0.3], dtype=L.float64),
        L.tensor([0.5, 1.5, 2.0], dtype=L.float64), w, b, training=False),
     [(4, 3, 2, 2), (3,), (3,)], 0),
    ("var", lambda L, F, a: (a * a).var(dim=1), [(3, 4)], 0),
    ("std", lambda L, F, a: (a * a).std(dim=0, keepdim=True), [(3, 4)], 0),
    ("std_all", lambda L, F, a: (a * a).std(), [(3, 4)], 0),
    ("avg_pool2d", lambda L, F, a: F.avg_pool2d(a * a, 2), [(1, 2, 4, 4)], 0),
    ("adaptive_pools", lambda L, F, a: F.adaptive_avg_pool2d(a * a, 2)
     + F.adaptive_max_pool2d(a * a, 2), [(1, 2, 5, 5)], 0),
    ("scalar_ops", lambda L, F, a: (a * 2.0 + 1.0) * (a / 4.0 - 3.0), [(5,)], 0),
    ("repeat", lambda L, F, a: (a * a).repeat(2, 3) * 1.5, [(2, 2)], 0),
    ("pad", lambda L, F, a: F.pad(a * a, (1, 2)), [(2, 3)], 0),
    ("flip_roll", lambda L, F, a: (a * a).flip(0).roll(1, 1) * a, [(2, 3)], 0),
    ("gather", lambda L, F, a: (a * a).gather(1, L.tensor([[0, 0], [2, 1]])), [(2, 3)], 0),
    ("scatter", lambda L, F, a, b: (a * a).scatter(1, L.tensor([[0], [2]]), b * b),
     [(2, 3), (2, 1)], 0),
    ("index_select", lambda L, F, a: (a * a).index_select(0, L.tensor([1, 1, 0])),
     [(2, 3)], 0),
    ("tril", lambda L, F, a: (a * a).tril() + (a * a).triu(1) * 2, [(3, 3)], 0),
    ("cumsum", lambda L, F, a: (a * a).cumsum(1), [(2, 3)], 0),
    ("clone", lambda L, F, a: (a * a).clone() * a, [(4,)], 0),
    ("embedding", lambda L, F, w: F.embedding(L.tensor([[0, 2], [2, 1]]), w * w),
     [(3, 4)], 0),
    ("nll_loss", lambda L, F, a: F.nll_loss(F.log_softmax(a * a, dim=1), _target(L)),
     [(3, 4)], 0),
    ("squeeze_unsqueeze", lambda L, F, a: (a * a).unsqueeze(0).squeeze(0).flatten() * 2,
     [(2, 3)], 0),
]


_PROBS = np.array([[0.1, 0.2, 0.3, 0.4], [0.25, 0.25, 0.25, 0.25], [0.7, 0.1, 0.1, 0.1]])


def _target(L):
    return L.tensor([0, 3, 1])


def _inputs(shapes, offset, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s) + offset for s in shapes]


@pytest.mark.parametrize("name,fn,shapes,offset", CASES, ids=[c[0] for c in CASES])
def test_gradgradcheck(name, fn, shapes, offset):
    xs = [sd.tensor(a, requires_grad=True) for a in _inputs(shapes, offset)]
    assert sd.autograd.gradgradcheck(lambda *t: fn(sd, F, *t), xs)


def _second_derivatives(L, grad_fn, fn, F_, arrays, v_seed=1):
    """Given ``f = fn(xs)`` and fixed random ``v``, ``w``: the gradients of
    ``sum(w * grad(<v, f>, xs, create_graph=True))`` with respect to the inputs."""
    xs = [L.tensor(a, requires_grad=True) for a in arrays]
    out = fn(L, F_, *xs)
    rng = np.random.default_rng(v_seed)
    v = L.tensor(rng.standard_normal(tuple(out.shape)))
    gs = grad_fn([out], xs, [v], create_graph=True, allow_unused=True)
    total = None
    for g, x in zip(gs, xs):
        if g is None:
            continue
        w = L.tensor(rng.standard_normal(tuple(x.shape)))
        term = (g * w).sum()
        total = term if total is None else total + term
    seconds = grad_fn([total], xs, allow_unused=True)
    return ([np.asarray(g.detach()) for g in gs if g is not None],
            [None if s is None else np.asarray(s.detach()) for s in seconds])


@pytest.mark.parametrize("name,fn,shapes,offset", CASES, ids=[c[0] for c in CASES])
def test_second_derivatives_match_pytorch(name, fn, shapes, offset):
    torch = pytest.importorskip("torch", reason="PyTorch is the optional oracle")
    arrays = _inputs(shapes, offset)
    first_sd, second_sd = _second_derivatives(sd, sd.autograd.grad, fn, F, arrays)
    first_t, second_t = _second_derivatives(torch, torch.autograd.grad, fn,
                                            torch.nn.functional, arrays)
    for a, b in zip(first_sd, first_t):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    for a, b in zip(second_sd, second_t):
        if a is None or b is None:  # one library saw no dependence: the other must give 0
            assert a is None and b is None or np.all((a if a is not None else b) == 0)
        else:
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_third_order():
    x = sd.tensor([0.5, -1.5, 2.0], dtype=sd.float64, requires_grad=True)
    y = (x ** 4).sum() + x.sin().sum()
    (g1,) = sd.autograd.grad(y, x, create_graph=True)
    (g2,) = sd.autograd.grad(g1.sum(), x, create_graph=True)
    (g3,) = sd.autograd.grad(g2.sum(), x)
    xv = np.array([0.5, -1.5, 2.0])
    np.testing.assert_allclose(g3.numpy(), 24 * xv - np.cos(xv), rtol=1e-12)


def test_backward_create_graph_leaves_differentiable_grad():
    x = sd.tensor([1.0, 2.0], dtype=sd.float64, requires_grad=True)
    (x ** 3).sum().backward(create_graph=True)
    assert x.grad.requires_grad and x.grad.grad_fn is not None
    np.testing.assert_allclose(x.grad.detach().numpy(), [3.0, 12.0])
    g = x.grad
    x.grad = None
    g.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [6.0, 12.0])  # d/dx sum(3x^2) = 6x


def test_grad_does_not_share_memory_with_grad_outputs():
    x = sd.tensor([1.0, 2.0], dtype=sd.float64, requires_grad=True)
    v = sd.tensor([1.0, 1.0], dtype=sd.float64)
    (x + 0).backward(v, create_graph=True)
    x.grad.detach().zero_()
    assert v.tolist() == [1.0, 1.0]


def test_op_without_second_order_rule_raises_naming_it():
    x = sd.rand(4, 3, dtype=sd.float64, requires_grad=True)
    out = (x * x).prod(dim=1).sum()
    with pytest.raises(RuntimeError, match="ProdBackward: this op has no differentiable "
                                           "backward rule, so backward with create_graph=True"):
        sd.autograd.grad(out, x, create_graph=True)
    with pytest.raises(RuntimeError, match="ProdBackward"):
        (x * x).prod(dim=1).sum().backward(create_graph=True)
    # first order is unaffected
    (g,) = sd.autograd.grad(x.prod(dim=1).sum(), x)
    assert g.shape == x.shape


def test_unary_op_without_a_tensor_derivative_raises(monkeypatch):
    """A new elementwise op (a ``_Unary`` subclass) that gives only its array derivative
    raises under create_graph=True instead of failing on a missing attribute."""
    from shendu.ops.elementwise import _Unary

    class Cube(_Unary):
        fn = staticmethod(lambda xp, x: x ** 3)
        deriv = staticmethod(lambda xp, x, y: 3 * x * x)

    x = sd.tensor([1.0, 2.0], dtype=sd.float64, requires_grad=True)
    (g,) = sd.autograd.grad(Cube.apply(x).sum(), x)
    np.testing.assert_allclose(g.numpy(), [3.0, 12.0])
    with pytest.raises(RuntimeError, match="CubeBackward: this op has no differentiable"):
        sd.autograd.grad(Cube.apply(x).sum(), x, create_graph=True)


def test_gradgradcheck_catches_a_wrong_second_order_rule(monkeypatch):
    from shendu.ops.elementwise import Tanh

    monkeypatch.setattr(Tanh, "deriv_graph", staticmethod(lambda x, y: 1 - y * y * 1.01))
    x = sd.randn(4, dtype=sd.float64, requires_grad=True)
    assert not sd.autograd.gradgradcheck(lambda t: t.tanh(), (x,), raise_exception=False)


def test_retain_graph_false_frees_the_backward_graph():
    x = sd.tensor([1.0, 2.0], dtype=sd.float64, requires_grad=True)
    (g,) = sd.autograd.grad((x.exp() * x).sum(), x, create_graph=True)
    h = g.sum()
    sd.autograd.grad(h, x, retain_graph=False)
    with pytest.raises(RuntimeError, match="second time"):
        sd.autograd.grad(h, x)


def test_hooks_run_on_tensor_gradients():
    x = sd.tensor([1.0, 2.0], dtype=sd.float64, requires_grad=True)
    y = x * x
    seen = []
    y.register_hook(lambda g: seen.append(g) or g * 2)
    (g,) = sd.autograd.grad(y.sum(), x, create_graph=True)
    assert isinstance(seen[0], sd.Tensor)
    np.testing.assert_allclose(g.detach().numpy(), [4.0, 8.0])
    (h,) = sd.autograd.grad(g.sum(), x)
    np.testing.assert_allclose(h.numpy(), [4.0, 4.0])


def _mlp_params(rng, sizes):
    return [(rng.standard_normal((o, i)) / np.sqrt(i), rng.standard_normal(o) * 0.1)
            for i, o in zip(sizes[:-1], sizes[1:])]


def _critic(L, F_, params, x):
    for k, (w, b) in enumerate(params):
        x = F_.linear(x, w, b)
        if k < len(params) - 1:
            x = F_.leaky_relu(x, 0.2) if k % 2 else x.tanh()
    return x


def _wgan_gp_step(L, grad_fn, F_, arrays):
    params_np, real, fake, eps = arrays
    params = [(L.tensor(w, requires_grad=True), L.tensor(b, requires_grad=True))
              for w, b in params_np]
    real, fake, eps = L.tensor(real), L.tensor(fake), L.tensor(eps)
    interp = (eps * real + (1 - eps) * fake).requires_grad_(True)
    d_out = _critic(L, F_, params, interp)
    (g,) = grad_fn(d_out.sum(), interp, create_graph=True)
    penalty = ((g.norm(2, dim=1) - 1) ** 2).mean()
    loss = _critic(L, F_, params, fake).mean() - _critic(L, F_, params, real).mean() \
        + 10 * penalty
    loss.backward()
    return float(penalty.detach()), [np.asarray(t.grad) for wb in params for t in wb]


def test_wgan_gp_gradient_penalty_matches_pytorch():
    torch = pytest.importorskip("torch", reason="PyTorch is the optional oracle")
    rng = np.random.default_rng(3)
    arrays = (_mlp_params(rng, [5, 8, 8, 1]), rng.standard_normal((6, 5)),
              rng.standard_normal((6, 5)), rng.random((6, 1)))
    pen_sd, grads_sd = _wgan_gp_step(sd, sd.autograd.grad, F, arrays)
    pen_t, grads_t = _wgan_gp_step(torch, torch.autograd.grad, torch.nn.functional, arrays)
    assert pen_sd == pytest.approx(pen_t, rel=1e-12)
    for a, b in zip(grads_sd, grads_t):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_wgan_gp_penalty_gradient_by_finite_differences():
    """The same penalty's weight gradient, independently of PyTorch."""
    rng = np.random.default_rng(4)
    params_np = _mlp_params(rng, [3, 4, 1])
    x = rng.standard_normal((5, 3))

    def penalty(w0):
        ps = [(sd.tensor(w0 if k == 0 else w, requires_grad=True), sd.tensor(b))
              for k, (w, b) in enumerate(params_np)]
        xi = sd.tensor(x, requires_grad=True)
        (g,) = sd.autograd.grad(_critic(sd, F, ps, xi).sum(), xi, create_graph=True)
        return ((g.norm(2, dim=1) - 1) ** 2).mean(), ps[0][0]

    pen, w0 = penalty(params_np[0][0])
    (analytic,) = sd.autograd.grad(pen, w0)
    num = np.zeros_like(params_np[0][0])
    h = 1e-6
    for idx in np.ndindex(num.shape):
        wp, wm = params_np[0][0].copy(), params_np[0][0].copy()
        wp[idx] += h
        wm[idx] -= h
        num[idx] = (float(penalty(wp)[0]) - float(penalty(wm)[0])) / (2 * h)
    np.testing.assert_allclose(analytic.numpy(), num, rtol=1e-5, atol=1e-8)


def _loss_of_flat(L, F_, shapes):
    def loss(theta):
        x = L.tensor(np.linspace(-1, 1, 12).reshape(4, 3))
        w1 = theta[:12].reshape(4, 3)
        w2 = theta[12:16].reshape(1, 4)
        h = F_.linear(x, w1).tanh()
        return (F_.linear(h, w2) ** 2).mean() + (theta ** 2).sum() * 0.01
    return loss


def test_hessian_vector_product_matches_pytorch():
    torch = pytest.importorskip("torch", reason="PyTorch is the optional oracle")
    rng = np.random.default_rng(5)
    theta, v = rng.standard_normal(16), rng.standard_normal(16)
    out_sd, hv_sd = sd.autograd.functional.hvp(_loss_of_flat(sd, F, None), sd.tensor(theta),
                                               sd.tensor(v))
    out_t, hv_t = torch.autograd.functional.hvp(
        _loss_of_flat(torch, torch.nn.functional, None), torch.tensor(theta), torch.tensor(v))
    assert float(out_sd) == pytest.approx(float(out_t), rel=1e-12)
    np.testing.assert_allclose(hv_sd.numpy(), hv_t.numpy(), rtol=1e-10, atol=1e-12)
    _, vh_sd = sd.autograd.functional.vhp(_loss_of_flat(sd, F, None), sd.tensor(theta),
                                          sd.tensor(v))
    np.testing.assert_allclose(vh_sd.numpy(), hv_t.numpy(), rtol=1e-10, atol=1e-12)


def test_hessian_and_hvp_against_finite_differences():
    rng = np.random.default_rng(6)
    theta = rng.standard_normal(16)
    f = _loss_of_flat(sd, F, None)
    hess = sd.autograd.functional.hessian(f, sd.tensor(theta)).numpy()
    assert hess.shape == (16, 16)
    np.testing.assert_allclose(hess, hess.T, atol=1e-12)

    def grad_at(t):
        x = sd.tensor(t, requires_grad=True)
        return sd.autograd.grad(f(x), x)[0].numpy()

    h = 1e-6
    num = np.stack([(grad_at(theta + h * e) - grad_at(theta - h * e)) / (2 * h)
                    for e in np.eye(16)])
    np.testing.assert_allclose(hess, num, rtol=1e-5, atol=1e-7)
    v = rng.standard_normal(16)
    _, hv = sd.autograd.functional.hvp(f, sd.tensor(theta), sd.tensor(v))
    np.testing.assert_allclose(hv.numpy(), hess @ v, rtol=1e-10, atol=1e-12)


def test_functional_matches_pytorch():
    torch = pytest.importorskip("torch", reason="PyTorch is the optional oracle")
    rng = np.random.default_rng(7)
    a, b = rng.standard_normal((2, 3)), rng.standard_normal(3)

    def f(L):
        return lambda x, y: ((x * y).tanh() @ y, x.sum() * y)

    jac_sd = sd.autograd.functional.jacobian(f(sd), (sd.tensor(a), sd.tensor(b)))
    jac_t = torch.autograd.functional.jacobian(f(torch), (torch.tensor(a), torch.tensor(b)))
    for row_sd, row_t in zip(jac_sd, jac_t):
        for j_sd, j_t in zip(row_sd, row_t):
            assert tuple(j_sd.shape) == tuple(j_t.shape)
            np.testing.assert_allclose(j_sd.numpy(), j_t.numpy(), rtol=1e-12, atol=1e-14)

    def g(L):
        return lambda x, y: ((x * y).sin().sum() * y).sum()

    hs_sd = sd.autograd.functional.hessian(g(sd), (sd.tensor(a), sd.tensor(b)))
    hs_t = torch.autograd.functional.hessian(g(torch), (torch.tensor(a), torch.tensor(b)))
    for row_sd, row_t in zip(hs_sd, hs_t):
        for h_sd, h_t in zip(row_sd, row_t):
            np.testing.assert_allclose(h_sd.numpy(), h_t.numpy(), rtol=1e-10, atol=1e-12)

    u = rng.standard_normal((2, 3))
    out_sd, vj_sd = sd.autograd.functional.vjp(lambda x: (x * x).sin(), sd.tensor(a),
                                               sd.tensor(u))
    out_t, vj_t = torch.autograd.functional.vjp(lambda x: (x * x).sin(), torch.tensor(a),
                                                torch.tensor(u))
    np.testing.assert_allclose(vj_sd.numpy(), vj_t.numpy(), rtol=1e-12)
    _, jv_sd = sd.autograd.functional.jvp(lambda x: (x * x).sin(), sd.tensor(a), sd.tensor(u))
    _, jv_t = torch.autograd.functional.jvp(lambda x: (x * x).sin(), torch.tensor(a),
                                            torch.tensor(u))
    np.testing.assert_allclose(jv_sd.numpy(), jv_t.numpy(), rtol=1e-12)


def test_functional_against_closed_forms():
    x = sd.tensor([1.0, 2.0, 3.0], dtype=sd.float64)
    jac = sd.autograd.functional.jacobian(lambda t: t ** 2, x)
    np.testing.assert_allclose(jac.numpy(), np.diag([2.0, 4.0, 6.0]))
    hess = sd.autograd.functional.hessian(lambda t: (t ** 3).sum(), x)
    np.testing.assert_allclose(hess.numpy(), np.diag([6.0, 12.0, 18.0]))
    _, jv = sd.autograd.functional.jvp(lambda t: t ** 2, x, sd.tensor([1.0, 0.0, 1.0],
                                                                         dtype=sd.float64))
    np.testing.assert_allclose(jv.numpy(), [2.0, 0.0, 6.0])
    assert x.grad is None and not x.requires_grad  # the point is not touched


def test_backward_variants_with_create_graph():
    x = sd.tensor([1.0, 2.0], dtype=sd.float64, requires_grad=True)
    y = sd.tensor([3.0], dtype=sd.float64, requires_grad=True)
    sd.autograd.backward([(x ** 3).sum(), (x * y).sum()], create_graph=True)
    assert x.grad.requires_grad  # 3x^2 + y
    (h,) = sd.autograd.grad(x.grad.sum(), y)
    np.testing.assert_allclose(h.numpy(), [2.0])
    x.grad = y.grad = None
    (x ** 3).sum().backward(inputs=[x], create_graph=True)
    assert y.grad is None and x.grad.grad_fn is not None
    (h,) = sd.autograd.grad(x.grad.sum(), x)
    np.testing.assert_allclose(h.numpy(), [6.0, 12.0])
    # a root gradient that itself requires grad is part of the recorded graph
    v = sd.tensor([1.0, -1.0], dtype=sd.float64, requires_grad=True)
    (g,) = sd.autograd.grad(x ** 2, x, grad_outputs=v, create_graph=True)
    (dv,) = sd.autograd.grad(g.sum(), v)
    np.testing.assert_allclose(dv.numpy(), [2.0, 4.0])


@pytest.mark.parametrize("name,fn,shapes", [
    ("linear_relu", lambda x, w, b: F.linear_relu(x * x - 0.5, w, b), [(3, 4), (2, 4), (2,)]),
    ("conv2d_relu", lambda x, w, b: F.conv2d_relu(x, w, b, padding=1),
     [(1, 2, 4, 4), (3, 2, 3, 3), (3,)]),
    ("setitem", lambda a, b: _setitem_then_square(a, b), [(2, 3), (3,)]),
    ("dropout", lambda a: _seeded_dropout(a * a), [(4, 5)]),
])
def test_gradgradcheck_fused_and_stateful(name, fn, shapes):
    """The fused Linear+ReLU and Conv+ReLU nodes, index assignment under autograd, and
    dropout with a fixed mask, against finite differences of their recorded backward."""
    xs = [sd.tensor(a, requires_grad=True) for a in _inputs(shapes, 0, seed=2)]
    assert sd.autograd.gradgradcheck(fn, xs)


def _setitem_then_square(a, b):
    c = a * 1.0
    c[1] = b * b
    return c * c


def _seeded_dropout(x):
    sd.manual_seed(0)
    return F.dropout(x, 0.3, training=True)


def test_device_move_is_differentiable_twice():
    from shendu.ops.movement import ToDevice

    x = sd.tensor([0.5, -1.0], dtype=sd.float64, requires_grad=True)
    y = ToDevice.apply(x * x, device=sd.device("cpu"))
    (g,) = sd.autograd.grad((y ** 3).sum(), x, create_graph=True)  # 6 x^5
    (h,) = sd.autograd.grad(g.sum(), x)  # 30 x^4
    np.testing.assert_allclose(h.numpy(), 30 * np.array([0.5, -1.0]) ** 4)
    _, t = sd.autograd.jvp(lambda v: ToDevice.apply(v, device=sd.device("cpu")), x,
                           sd.tensor([1.0, 2.0], dtype=sd.float64))
    np.testing.assert_allclose(t.numpy(), [1.0, 2.0])


def test_fused_relu_nodes_match_unfused_second_derivatives():
    rng = np.random.default_rng(8)
    arrays = [rng.standard_normal((3, 4)), rng.standard_normal((2, 4)), rng.standard_normal(2)]

    def second(fn):
        x, w, b = (sd.tensor(a, requires_grad=True) for a in arrays)
        (gx,) = sd.autograd.grad((fn(x * x, w, b) ** 2).sum(), x, create_graph=True)
        return [g.numpy() for g in sd.autograd.grad(gx.sum(), (x, w, b))]

    fused = second(F.linear_relu)
    plain = second(lambda x, w, b: F.relu(F.linear(x, w, b)))
    for a, b in zip(fused, plain):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
