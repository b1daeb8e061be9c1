"""The autograd engine: accumulation, hooks, graph freeing, in-place safety, grad(), jvp."""
import numpy as np
import pytest

import shendu as sd


def test_gradients_accumulate_into_leaves_across_backward_calls():
    x = sd.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    (x * x).sum().backward()
    assert x.grad.tolist() == [5.0, 7.0]


def test_shared_subexpression_visited_once_and_summed():
    x = sd.tensor(2.0, requires_grad=True)
    y = x * x
    z = y + y * y  # y used twice
    z.backward()
    assert x.grad.item() == pytest.approx(2 * 2 + 4 * 2 ** 3)


def test_add_of_two_leaves_gives_independent_grad_arrays():
    a, b = sd.ones(3, requires_grad=True), sd.ones(3, requires_grad=True)
    (a + b).sum().backward()
    a.grad.mul_(5)
    assert b.grad.tolist() == [1.0, 1.0, 1.0]


def test_long_chain_does_not_recurse():
    x = sd.tensor(1.0, requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y + 1e-6
    y.backward()
    assert x.grad.item() == 1.0


def test_backward_non_scalar_needs_gradient():
    x = sd.ones(2, 3, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"single-element output, this one has shape \(2, 3\)"):
        (x * 2).backward()
    (x * 2).backward(sd.ones(2, 3))
    assert x.grad.tolist() == [[2.0] * 3] * 2
    with pytest.raises(RuntimeError, match="gradient has shape"):
        (x * 2).backward(sd.ones(3))


def test_second_backward_through_freed_graph_is_an_error():
    x = sd.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="Backward: trying to backward through the graph a "
                                           "second time"):
        y.backward()


def test_retain_graph_allows_second_backward():
    x = sd.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    assert x.grad.tolist() == [4.0, 8.0]


def test_inplace_modification_of_saved_tensor_is_detected():
    x = sd.tensor([1.0, 2.0], requires_grad=True)
    y = x * 1.0
    z = y * y  # saves y
    y.add_(1)
    with pytest.raises(RuntimeError, match=r"MulBackward: an array of shape \(2,\) that backward "
                                           r"needs was modified in place"):
        z.sum().backward()


def test_optimizer_style_update_invalidates_old_graph():
    w = sd.tensor([1.0, 2.0], requires_grad=True)
    loss = (w * w).sum()
    with sd.no_grad():
        w -= 0.1
    with pytest.raises(RuntimeError, match="modified in place"):
        loss.backward()


def test_inplace_on_leaf_requiring_grad_is_refused():
    w = sd.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
        w.add_(1)


def test_inplace_ops_are_differentiable_on_non_leaves():
    x = sd.tensor([1.0, -2.0, 3.0], requires_grad=True)
    y = x * 2
    y.relu_()
    y.mul_(x)
    y.sum().backward()
    # y = relu(2x) * x  ->  dy/dx = 4x where x > 0, else 0
    assert x.grad.tolist() == [4.0, 0.0, 12.0]


def test_no_grad_and_set_grad_enabled():
    x = sd.ones(2, requires_grad=True)
    with sd.no_grad():
        assert not (x * 2).requires_grad
        with sd.enable_grad():
            assert (x * 2).requires_grad
    with sd.set_grad_enabled(False):
        assert not (x * 2).requires_grad
    assert (x * 2).requires_grad

    @sd.no_grad()
    def f(t):
        return t * 2
    assert not f(x).requires_grad
    assert sd.is_grad_enabled()


def test_hooks_on_leaf_and_intermediate():
    x = sd.tensor([1.0, 2.0], requires_grad=True)
    seen = []
    x.register_hook(lambda g: seen.append(g.tolist()))
    y = x * 3
    h = y.register_hook(lambda g: g * 10)  # replaces the gradient flowing into y
    y.sum().backward()
    assert seen == [[30.0, 30.0]] and x.grad.tolist() == [30.0, 30.0]
    h.remove()
    x.grad = None
    (x * 3).sum().backward()
    assert x.grad.tolist() == [3.0, 3.0]


def _hook_order(lib):
    """The order in which a leaf's and an intermediate's hooks fire in ``lib``'s backward
    of ``(tanh(x * w1) * w2).sum()``, and ``w1.grad`` as seen from ``w2``'s hook."""
    x = lib.tensor([0.5, -1.0])
    w1 = lib.tensor([2.0, 3.0], requires_grad=True)
    w2 = lib.tensor([1.5, -0.5], requires_grad=True)
    seen = []
    h = x * w1
    h.register_hook(lambda g: seen.append("h"))
    w1.register_hook(lambda g: seen.append("w1"))
    w2.register_hook(lambda g: seen.append(("w2", w1.grad is None)))
    (h.tanh() * w2).sum().backward()
    return seen


def test_leaf_hook_fires_once_its_gradient_is_final_not_at_the_end():
    """w2's gradient is final after the last node runs; its hook fires then, before the
    backward reaches h and w1 (what DistributedDataParallel's overlap relies on)."""
    assert _hook_order(sd) == [("w2", True), "h", "w1"]


def test_leaf_hook_order_matches_pytorch():
    torch = pytest.importorskip("torch", reason="PyTorch (the oracle) is not installed")
    assert _hook_order(sd) == _hook_order(torch)


def test_leaf_hook_with_several_uses_waits_for_every_contribution():
    w = sd.tensor([1.0, 2.0], dtype=sd.float64, requires_grad=True)
    got = []
    w.register_hook(lambda g: got.append(g.tolist()))
    a = (w * 2).exp()   # the first use's backward runs late: behind exp
    ((a * w).sum() + (w * w).sum()).backward()
    want = (np.exp(2 * np.array([1.0, 2.0])) * (2 * np.array([1.0, 2.0]) + 1)
            + 2 * np.array([1.0, 2.0]))
    assert len(got) == 1
    np.testing.assert_allclose(got[0], want, rtol=1e-13)
    np.testing.assert_allclose(w.grad.numpy(), want, rtol=1e-13)


def test_retain_grad():
    x = sd.tensor([1.0, 2.0], requires_grad=True)
    y = x * x
    y.retain_grad()
    y.sum().backward()
    assert y.grad.tolist() == [1.0, 1.0] and x.grad.tolist() == [2.0, 4.0]


def test_autograd_grad_does_not_touch_dot_grad():
    x = sd.tensor([1.0, 2.0], requires_grad=True)
    w = sd.tensor([3.0, 4.0], requires_grad=True)
    y = (x * w).sum()
    gx, gw = sd.autograd.grad(y, [x, w])
    assert gx.tolist() == [3.0, 4.0] and gw.tolist() == [1.0, 2.0]
    assert x.grad is None and w.grad is None


def test_grad_with_respect_to_intermediate_and_unused():
    x = sd.tensor(2.0, requires_grad=True)
    h = x * 3
    y = h * h
    (gh,) = sd.autograd.grad(y, [h])
    assert gh.item() == 12.0
    u = sd.tensor(1.0, requires_grad=True)
    with pytest.raises(RuntimeError, match="not used"):
        sd.autograd.grad((x * 2), [u])
    assert sd.autograd.grad(x * 2, [u], allow_unused=True) == (None,)


def test_backward_with_inputs_only_accumulates_those():
    a, b = sd.ones(2, requires_grad=True), sd.ones(2, requires_grad=True)
    (a * b * 2).sum().backward(inputs=[a])
    assert a.grad.tolist() == [2.0, 2.0] and b.grad is None


def test_jvp_agrees_with_reverse_mode_on_a_network():
    rng = np.random.default_rng(0)
    w1, w2 = sd.tensor(rng.standard_normal((4, 3))), sd.tensor(rng.standard_normal((2, 4)))
    x = sd.tensor(rng.standard_normal((5, 3)))

    def f(w1, w2):
        h = (x @ w1.T).tanh()
        return sd.nn.functional.log_softmax(h @ w2.T, dim=1).sum()

    t1, t2 = sd.tensor(rng.standard_normal((4, 3))), sd.tensor(rng.standard_normal((2, 4)))
    out, tangent = sd.autograd.jvp(f, (w1, w2), (t1, t2))
    g1, g2 = _grads(f, w1, w2)
    expected = (g1 * t1).sum().item() + (g2 * t2).sum().item()
    assert tangent.item() == pytest.approx(expected, rel=1e-10)
    assert out.item() == pytest.approx(f(w1, w2).item())


def _grads(f, *ws):
    leaves = [w.detach().requires_grad_() for w in ws]
    return sd.autograd.grad(f(*leaves), leaves)


def test_vjp_helper():
    x = sd.tensor([1.0, 2.0, 3.0])
    out, g = sd.autograd.vjp(lambda x: x ** 2, x, sd.ones(3))
    assert out.tolist() == [1.0, 4.0, 9.0] and g.tolist() == [2.0, 4.0, 6.0]


def test_gradcheck_reports_a_wrong_gradient():
    class Wrong(sd.autograd.Function):
        @staticmethod
        def forward(ctx, a):
            return a * a

        @staticmethod
        def backward(ctx, g):
            return g  # should be 2 a g

    x = sd.tensor([1.0, 2.0], dtype=sd.float64, requires_grad=True)
    with pytest.raises(AssertionError, match="Jacobian mismatch for input 0"):
        sd.autograd.gradcheck(lambda a: Wrong.apply(a), (x,))
    assert not sd.autograd.gradcheck_random(lambda a: Wrong.apply(a), (x,),
                                            raise_exception=False)
    assert sd.autograd.gradcheck(lambda a: a * a, (x,))


def test_custom_function_with_multiple_outputs():
    class SplitHalves(sd.autograd.Function):
        @staticmethod
        def forward(ctx, a):
            n = a.shape[0] // 2
            ctx.n = n
            return a[:n] * 2, a[n:] * 3

        @staticmethod
        def backward(ctx, g1, g2):
            return np.concatenate([g1 * 2, g2 * 3])

    x = sd.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    lo, hi = SplitHalves.apply(x)
    hi.sum().backward(retain_graph=True)  # lo gets no gradient: the engine fills zeros
    assert x.grad.tolist() == [0.0, 0.0, 3.0, 3.0]
    lo.sum().backward()  # frees the graph
    assert x.grad.tolist() == [2.0, 2.0, 3.0, 3.0]
    # a freed multi-output node says so, even where one output still lacks a gradient
    with pytest.raises(RuntimeError, match="SplitHalvesBackward: trying to backward through "
                                           "the graph a second time"):
        hi.sum().backward()


def test_backward_requires_grad_error():
    with pytest.raises(RuntimeError, match="does not require grad"):
        sd.ones(2).sum().backward()


def test_backward_with_gradient_and_retain_graph_accumulates():
    x = sd.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * x
    g = sd.tensor([1.0, 0.5, -1.0])
    y.backward(g, retain_graph=True)
    y.backward(gradient=g)
    np.testing.assert_allclose(x.grad.numpy(), 2 * (2 * x.detach().numpy() * g.numpy()))
    assert g.tolist() == [1.0, 0.5, -1.0]  # the caller's gradient is never written to


def test_leaf_used_many_times_gets_a_private_summed_gradient():
    x = sd.tensor([1.0, 2.0], requires_grad=True)
    seen = []
    x.register_hook(lambda g: seen.append(g.tolist()))
    root = sd.ones(2)
    y = x + x + x * 2 + x  # four contributions, summed in one buffer
    y.backward(root)
    assert x.grad.tolist() == [5.0, 5.0] and seen == [[5.0, 5.0]]
    x.grad.mul_(0)
    assert root.tolist() == [1.0, 1.0]
    y2 = x + 0.0  # a single contribution that is the root's own array
    y2.backward(root)
    x.grad.add_(1)
    assert root.tolist() == [1.0, 1.0]


def test_autograd_grad_with_grad_outputs_and_several_outputs():
    x = sd.tensor([1.0, 2.0], requires_grad=True)
    a, b = x * 3, x * x
    (gx,) = sd.autograd.grad([a, b], [x], grad_outputs=[sd.tensor([1.0, 0.0]),
                                                        sd.tensor([0.0, 1.0])])
    assert gx.tolist() == [3.0, 4.0]
    with pytest.raises(RuntimeError, match=r"grad: grad_outputs is needed for the non-scalar "
                                           r"output of shape \(2,\)"):
        sd.autograd.grad(x * 2, [x])


def test_autograd_backward_of_several_roots_sums_them():
    x = sd.tensor([1.0, 2.0], requires_grad=True)
    sd.autograd.backward([(x * 2).sum(), x * x], [None, sd.tensor([1.0, 1.0])])
    assert x.grad.tolist() == [4.0, 6.0]


def test_set_grad_enabled_as_call_and_decorator():
    x = sd.ones(2, requires_grad=True)
    sd.set_grad_enabled(False)
    try:
        assert not (x * 2).requires_grad and not sd.is_grad_enabled()
    finally:
        sd.set_grad_enabled(True)
    assert (x * 2).requires_grad

    @sd.set_grad_enabled(False)
    def f(t):
        return t * 2
    assert not f(x).requires_grad and sd.is_grad_enabled()

    @sd.enable_grad()
    def g(t):
        return t * 2
    with sd.no_grad():
        assert g(x).requires_grad


def test_second_backward_error_names_the_op():
    x = sd.tensor([1.0, 2.0], requires_grad=True)
    y = x.exp().sum()
    y.backward()
    with pytest.raises(RuntimeError, match=r"^(SumBackward|ExpBackward): trying to backward "
                                           r"through the graph a second time .*retain_graph=True"):
        y.backward()


def test_inplace_error_names_op_shape_and_versions():
    x = sd.tensor([[1.0, 2.0]], requires_grad=True)
    y = x * 1.0
    z = y.relu()  # saves relu's output, not y
    w = y.sigmoid()  # saves y
    y.mul_(2)
    z.sum().backward()  # relu did not save y: unaffected
    with pytest.raises(RuntimeError, match=r"SigmoidBackward: an array of shape \(1, 2\) that "
                                           r"backward needs was modified in place after it was "
                                           r"used \(version 1, expected 0\)"):
        w.sum().backward()


def test_gradcheck_is_public_with_a_random_direction_variant():
    rng = np.random.default_rng(3)
    a = sd.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    b = sd.tensor(rng.standard_normal((4, 2)), requires_grad=True)

    def fn(a, b):
        return (a @ b).tanh()
    assert sd.autograd.gradcheck(fn, (a, b), eps=1e-6, atol=1e-5, rtol=1e-3)
    assert sd.autograd.gradcheck_random(fn, (a, b), eps=1e-6, atol=1e-5, rtol=1e-3, seed=1)
    assert sd.autograd.gradcheck(fn, (a, b), fast_mode=True)


def test_jvp_of_several_outputs_and_default_tangents():
    x = sd.tensor([1.0, 2.0, 3.0], dtype=sd.float64)
    (s, p), (ts, tp) = sd.autograd.jvp(lambda x: (x.sin(), x.prod()), x)
    # tangent of ones: d sin = cos(x), d prod = sum_i prod_{j != i} x_j
    np.testing.assert_allclose(ts.numpy(), np.cos([1.0, 2.0, 3.0]))
    assert tp.item() == pytest.approx(6 + 3 + 2)
    assert s.tolist() == pytest.approx(np.sin([1.0, 2.0, 3.0]).tolist())
    with pytest.raises(ValueError, match=r"jvp: tangent of shape \(2,\) for a primal of shape "
                                         r"\(3,\)"):
        sd.autograd.jvp(lambda x: x * 2, x, sd.ones(2))


def test_jvp_costs_n_sweeps_where_reverse_mode_costs_one():
    # gradient of a scalar over n parameters: one reverse sweep gives all n components;
    # forward mode needs one sweep per basis direction, and they agree
    n = 6
    rng = np.random.default_rng(4)
    w0 = rng.standard_normal(n)
    A = sd.tensor(rng.standard_normal((5, n)))

    def loss(w):
        return ((A @ w).tanh() ** 2).sum()
    w = sd.tensor(w0, requires_grad=True)
    (reverse,) = sd.autograd.grad(loss(w), [w])
    forward = [sd.autograd.jvp(loss, sd.tensor(w0), sd.tensor(np.eye(n)[i]))[1].item()
               for i in range(n)]
    np.testing.assert_allclose(forward, reverse.numpy(), rtol=1e-10)


def test_backward_rules_may_return_numpy_scalars_for_0d_leaves():
    class TwiceScalar(sd.autograd.Function):
        @staticmethod
        def forward(ctx, a):
            return a * 2

        @staticmethod
        def backward(ctx, g):
            return np.float64(g.sum() * 2)  # a NumPy scalar, not a 0-d array

    x = sd.tensor(1.0, dtype=sd.float64, requires_grad=True)
    y = TwiceScalar.apply(x) + TwiceScalar.apply(x) + TwiceScalar.apply(x) + TwiceScalar.apply(x)
    y.backward()
    assert x.grad.item() == 8.0 and x.grad.shape == ()
