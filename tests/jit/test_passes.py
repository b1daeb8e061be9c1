"""Each optimisation pass alone: what it removes or merges, and that results do not change."""
import numpy as np

import shendu as sd
from shendu import nn
from shendu.backend import runtime
from shendu.jit import GraphModule, passes
from shendu.jit.fused import BufferPlan, FusedElementwise
from shendu.jit.passes.memory import lifetimes, peak_bytes


def _run(graph, *args):
    return GraphModule(None, graph)(*args)


def test_dead_code_elimination_keeps_effects():
    def f(x):
        x.exp().sum()  # unused
        return x * 2

    g = sd.jit.trace(f, sd.ones(3)).graph
    assert [n.op for n in g] == ["exp", "sum", "mul_scalar"]
    out = passes.eliminate_dead_code(g)
    assert [n.op for n in out] == ["mul_scalar"]
    assert len(g) == 3  # the input graph is left as it was
    bn = nn.BatchNorm1d(3)
    g = sd.jit.trace(lambda x: (bn(x), x * 1)[1], sd.randn(4, 3)).graph
    assert [n.op for n in passes.eliminate_dead_code(g)] == ["batch_norm", "mul_scalar"]


def test_constant_folding_runs_constant_nodes_once():
    table = sd.arange(4.0)
    g = sd.jit.trace(lambda x: x + (table * 2).exp(), sd.ones(4)).graph
    assert [n.op for n in g] == ["mul_scalar", "exp", "add"]
    folded = passes.fold_constants(g)
    assert [n.op for n in folded] == ["add"]
    c = folded[0].inputs[1]
    assert c.kind == "const"
    np.testing.assert_allclose(c.tensor.numpy(), np.exp(np.arange(4.0) * 2), rtol=1e-6)
    np.testing.assert_array_equal(_run(folded, sd.ones(4)).numpy(), _run(g, sd.ones(4)).numpy())
    w = sd.ones(4, requires_grad=True)  # needs a gradient: not a constant
    g = sd.jit.trace(lambda x: x + w * 2, sd.ones(4)).graph
    assert len(passes.fold_constants(g)) == 2


def test_cse_merges_repeats_but_not_random_ops():
    g = sd.jit.trace(lambda x: x.exp() * x.exp() + x.exp(), sd.ones(3)).graph
    assert [n.op for n in g].count("exp") == 3
    out = passes.eliminate_common_subexpressions(g)
    assert [n.op for n in out] == ["exp", "mul", "add"]
    x = sd.tensor([0.0, 1.0, 2.0])
    np.testing.assert_array_equal(_run(out, x).numpy(), _run(g, x).numpy())
    drop = nn.Dropout(0.5)
    g = sd.jit.trace(lambda x: drop(x) + drop(x), sd.ones(10)).graph
    assert [n.op for n in passes.eliminate_common_subexpressions(g)].count("dropout") == 2


def test_linear_and_conv_relu_fusion():
    net = nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 5),
                        nn.ReLU(), nn.Linear(5, 2), nn.ReLU())
    x = sd.randn(2, 2, 6, 6, dtype=sd.float64)
    net = net.to(sd.float64)
    g = sd.jit.trace(net, x).graph
    out = passes.fuse_linear_activation(g)
    assert [n.op for n in out] == ["conv2d_relu", "reshape", "linear_relu", "linear_relu"]
    assert out[0].attrs["relu"] is True and out[0].meta["fused"] == ["relu_0"]
    np.testing.assert_allclose(_run(out, x).detach().numpy(), net(x).detach().numpy(),
                               rtol=1e-12, atol=1e-14)
    # a product read twice stays unfused
    lin = nn.Linear(3, 3)
    g = sd.jit.trace(lambda x: lin(x).relu() + lin(x), sd.ones(2, 3)).graph
    g = passes.eliminate_common_subexpressions(g)
    assert "linear_relu" not in [n.op for n in passes.fuse_linear_activation(g)]


def test_conv_relu_fusion_skipped_where_its_backward_holds_more_memory():
    # 4 -> 4 channels, 'same': the input gradient is as big as the output, and fused the
    # backward would hold the ReLU's output and gradient while it allocates it
    net = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(),
                        nn.Conv2d(4, 4, 3, padding=1), nn.ReLU()).to(sd.float64)
    x = sd.randn(2, 2, 6, 6, dtype=sd.float64)
    g = sd.jit.trace(net, x).graph
    assert g.grad_inputs == (False,)
    # the first conv's input needs no gradient: fused; the second's does: not fused
    assert [n.op for n in passes.fuse_linear_activation(g)] == ["conv2d_relu", "conv2d",
                                                                "relu"]
    with sd.no_grad():  # no backward: both fused
        g = sd.jit.trace(net, x).graph
    assert g.grad_inputs is None
    assert [n.op for n in passes.fuse_linear_activation(g)] == ["conv2d_relu"] * 2
    # the compiled training step still gives eager's results and gradients
    c = sd.compile(net)
    xg = x.detach().requires_grad_(True)
    c(xg).sum().backward()
    grads = [p.grad.numpy().copy() for p in net.parameters()] + [xg.grad.numpy().copy()]
    net.zero_grad()
    xg.grad = None
    net(xg).sum().backward()
    for a, b in zip(grads, [p.grad.numpy() for p in net.parameters()] + [xg.grad.numpy()]):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_pool_before_relu_in_training_graphs():
    net = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                        nn.Linear(3 * 3 * 3, 2)).to(sd.float64)
    # channel 0: mixed signs; 1: all zeros (ties at 0); 2: all negative (maxima below 0)
    with sd.no_grad():
        net[0].weight[1] = 0.0
        net[0].bias[1] = 0.0
        net[0].bias[2] = -100.0
    x = sd.randn(4, 1, 8, 8, dtype=sd.float64)
    g = sd.jit.trace(net, x).graph
    out = passes.pool_before_relu(g)
    assert [n.op for n in out] == ["conv2d", "max_pool2d", "relu", "reshape", "linear"]
    assert [n.op for n in g][:3] == ["conv2d", "relu", "max_pool2d"]  # input graph kept
    pool, relu = out[1], out[2]
    assert pool.inputs[0] is out[0].outputs[0] and relu.inputs[0] is pool.outputs[0]
    assert relu.outputs[0].shape == (4, 3, 3, 3) and out[3].inputs[0] is relu.outputs[0]
    # then the convolution is not fused with a ReLU, and results match eager exactly
    assert [n.op for n in passes.fuse_linear_activation(out)][0] == "conv2d"
    xg = x.detach().requires_grad_(True)
    y = _run(out, xg)
    y.sum().backward()
    grads = [p.grad.numpy().copy() for p in net.parameters()] + [xg.grad.numpy().copy()]
    net.zero_grad()
    xg.grad = None
    ref = net(xg)
    ref.sum().backward()
    np.testing.assert_allclose(y.detach().numpy(), ref.detach().numpy(), rtol=1e-12)
    for a, b in zip(grads, [p.grad.numpy() for p in net.parameters()] + [xg.grad.numpy()]):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    # no backward (no_grad trace), or the ReLU's result read elsewhere: left as it is
    with sd.no_grad():
        g = sd.jit.trace(net, x).graph
    assert [n.op for n in passes.pool_before_relu(g)][:3] == ["conv2d", "relu", "max_pool2d"]
    pool = nn.MaxPool2d(2)
    g = sd.jit.trace(lambda a: (pool(a.relu()), a.relu()),
                     sd.randn(1, 1, 4, 4, requires_grad=True)).graph
    g = passes.eliminate_common_subexpressions(g)
    assert [n.op for n in passes.pool_before_relu(g)] == ["relu", "max_pool2d"]


def _pool_relu_case(k, kernels):
    """A tiled max pooling fused with a ReLU against the two ops, values and gradients:
    NaN, ties at 0, windows all negative, both layouts; kernels on or off."""
    from shendu.autograd.forward_ad import jvp
    from shendu.backend import runtime
    from shendu.ops.pool import MaxPool2d

    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 3 * k, 3 * k + 1))
    x[0, 0] = np.minimum(x[0, 0], -0.5)  # every window negative
    x[0, 1, :k, :k] = 0.0  # a window of ties at 0
    x[1, 2, 0, 0] = np.nan
    g = rng.standard_normal((2, 3, 3, 3))
    geom = dict(k=(k, k), stride=(k, k), pad=(0, 0), dilation=(1, 1), out_hw=(3, 3))
    for cm in (False, True):
        xa = np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3) if cm else x
        with runtime.use(kernels=kernels):
            a = sd.tensor(xa, requires_grad=True)
            fused = MaxPool2d.apply(a, relu=True, **geom)
            fused.backward(sd.tensor(g))
            b = sd.tensor(xa, requires_grad=True)
            ref = MaxPool2d.apply(b, **geom).relu()
            ref.backward(sd.tensor(g))
        np.testing.assert_array_equal(fused.detach().numpy(), ref.detach().numpy())
        np.testing.assert_array_equal(a.grad.numpy(), b.grad.numpy())
        # forward mode too: the tangent is 0 where the ReLU is off
        t = sd.tensor(rng.standard_normal(x.shape))
        _, d1 = jvp(lambda v: MaxPool2d.apply(v, relu=True, **geom), (sd.tensor(xa),), (t,))
        _, d2 = jvp(lambda v: MaxPool2d.apply(v, **geom).relu(), (sd.tensor(xa),), (t,))
        np.testing.assert_array_equal(d1.numpy(), d2.numpy())


def test_max_pool_relu_op_matches_the_two_ops():
    from shendu.backend import runtime

    for k in (2, 3):  # the 2x2 kernel and the general one (and the NumPy reference)
        _pool_relu_case(k, kernels=runtime.kernels_on())
        _pool_relu_case(k, kernels=False)


def test_max_pool_relu_fusion():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(2), nn.ReLU(), nn.MaxPool2d(2, 1),
                        nn.ReLU()).to(sd.float64)
    x = sd.randn(2, 1, 10, 10, dtype=sd.float64, requires_grad=True)
    out = passes.fuse_linear_activation(sd.jit.trace(net, x).graph)
    # tiled windows fuse; overlapping ones (stride 1) do not
    assert [n.op for n in out] == ["conv2d", "max_pool2d_relu", "max_pool2d", "relu"]
    assert out[1].attrs["relu"] is True and out[1].meta["fused"] == ["relu_0"]
    y = _run(out, x)
    y.sum().backward()
    grads = [p.grad.numpy().copy() for p in net.parameters()] + [x.grad.numpy().copy()]
    net.zero_grad()
    x.grad = None
    ref = net(x)
    ref.sum().backward()
    np.testing.assert_array_equal(y.detach().numpy(), ref.detach().numpy())
    for a, b in zip(grads, [p.grad.numpy() for p in net.parameters()] + [x.grad.numpy()]):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def _conv_pool_case(dtype, relu, kernels, cm):
    from shendu.backend import runtime
    from shendu.ops.conv import Conv2d, Conv2dPool
    from shendu.ops.pool import MaxPool2d

    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 2, 9, 8)).astype(dtype)
    if cm:
        x = np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    x[0, 1, 2, 3] = np.nan
    w = rng.standard_normal((4, 2, 3, 3)).astype(dtype)
    b = np.array([0.1, -50.0, 0.0, 0.3], dtype)  # channel 1: every window negative
    conv_geom = dict(stride=(1, 1), pads=((1, 1), (1, 1)), dilation=(1, 1), groups=1)
    pool_geom = dict(k=(2, 2), stride=(2, 2), pad=(0, 0), dilation=(1, 1), out_hw=(4, 4))
    g = sd.tensor(rng.standard_normal((3, 4, 4, 4)).astype(dtype))
    results = []
    for fused in (True, False):
        ts = [sd.tensor(a, requires_grad=True) for a in (x, w, b)]
        with runtime.use(kernels=kernels):
            if fused:
                y = Conv2dPool.apply(*ts, pool_hw=(4, 4), relu=relu, **conv_geom)
            else:
                y = MaxPool2d.apply(Conv2d.apply(*ts, **conv_geom), **pool_geom)
                y = y.relu() if relu else y
            y.backward(g)
        results.append([y.detach().numpy()] + [t.grad.numpy() for t in ts])
    for a, r in zip(*results):
        np.testing.assert_array_equal(a, r)


def test_conv_pool_op_matches_the_two_ops():
    from shendu.backend import runtime

    for kernels in {runtime.kernels_on(), False}:
        for dtype in (np.float32, np.float64):
            for relu in (False, True):
                for cm in (False, True):
                    _conv_pool_case(dtype, relu, kernels, cm)


def test_conv_pool_fusion():
    net = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(3, 4, 3), nn.MaxPool2d(2, 1), nn.Flatten()).to(sd.float64)
    x = sd.randn(2, 1, 8, 8, dtype=sd.float64)
    g = sd.jit.trace(net, x).graph
    out = passes.fuse_conv_pool(passes.fuse_linear_activation(passes.pool_before_relu(g)))
    # 2x2 stride 2 fuses (the ReLU with it); the stride-1 pooling does not
    assert [n.op for n in out] == ["conv2d_pool", "conv2d", "max_pool2d", "reshape"]
    assert out[0].attrs["relu"] is True and out[0].attrs["pool_hw"] == (4, 4)
    assert "relu" not in out[1].attrs or out[1].attrs["relu"] is False
    c = sd.compile(net)
    y = c(x)
    y.sum().backward()
    grads = [p.grad.numpy().copy() for p in net.parameters()]
    net.zero_grad()
    ref = net(x)
    ref.sum().backward()
    np.testing.assert_allclose(y.detach().numpy(), ref.detach().numpy(), rtol=1e-12)
    for a, b in zip(grads, [p.grad.numpy() for p in net.parameters()]):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    # double backward goes through the fused node (its forward rebuilt from the two ops)
    xg = x.detach().requires_grad_(True)
    grads2 = []
    for m in (c, net):
        (gx,) = sd.autograd.grad(m(xg).pow(2).sum(), [xg], create_graph=True)
        grads2.append(sd.autograd.grad(gx.sum(), [xg])[0].numpy())
    np.testing.assert_allclose(grads2[0], grads2[1], rtol=1e-10, atol=1e-12)
    with sd.no_grad():  # inference: conv2d_relu then the pooling, fused all the same
        g = sd.jit.trace(net, x).graph
        assert [n.op for n in c._compiled.optimise(g)][0] == "conv2d_pool"
        np.testing.assert_allclose(c(x).numpy(), ref.detach().numpy(), rtol=1e-12)


def _chain(x, y):
    a = (x * y + 1.0).tanh()
    b = x.sigmoid() * 0.5 - a
    return a, b.exp()


def test_elementwise_fusion_forward_backward_equal_eager_float64():
    x0, y0 = np.random.randn(4, 5), np.random.randn(4, 5)
    g = sd.jit.trace(_chain, (sd.ones(4, 5, dtype=sd.float64), sd.ones(4, 5, dtype=sd.float64))
                     ).graph
    fused = passes.fuse_elementwise(g)
    assert [n.op for n in fused] == ["fused_elementwise"]
    node = fused[0]
    assert node.function is FusedElementwise and len(node.outputs) == 2 and node.multi
    assert node.attrs["ops"] == ("mul", "add_scalar", "tanh", "sigmoid", "mul_scalar", "sub",
                                 "exp")
    for kernels, check in ((False, np.testing.assert_array_equal),  # each op's own rules
                           (True, lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-12))):
        xs = [sd.tensor(x0, requires_grad=True), sd.tensor(x0, requires_grad=True)]
        ys = [sd.tensor(y0, requires_grad=True), sd.tensor(y0, requires_grad=True)]
        with runtime.use(kernels=kernels):  # on: one numba loop forward, one backward
            got = _run(fused, xs[0], ys[0])
            ref = _chain(xs[1], ys[1])
            for a, b in zip(got, ref):
                check(a.detach().numpy(), b.detach().numpy())
            (got[0].sum() + got[1].sum() * 2).backward()
            (ref[0].sum() + ref[1].sum() * 2).backward()
        check(xs[0].grad.numpy(), xs[1].grad.numpy())
        check(ys[0].grad.numpy(), ys[1].grad.numpy())
    with sd.no_grad(), runtime.use(kernels=False):  # the NumPy buffer plan: bit for bit
        for a, b in zip(_run(fused, xs[0], ys[0]), _chain(xs[1], ys[1])):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    with sd.no_grad():  # one numba loop when the kernels are on (libm's tanh/exp: ulps)
        for a, b in zip(_run(fused, xs[0], ys[0]), _chain(xs[1], ys[1])):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-13)


def test_kernel_backward_reduces_broadcast_scalars_and_matches_finite_differences():
    scale = sd.tensor(1.5, dtype=sd.float64, requires_grad=True)
    f = sd.compile(lambda x, s: (x * s).sigmoid() / (x.abs() + 1.0) - (x * x + 1.0).sqrt()
                   + (x * 0.5).relu())
    x = sd.tensor(np.random.randn(3, 4) + 0.1, requires_grad=True)
    assert sd.autograd.gradcheck(lambda a, b: f(a, b), (x, scale))
    ref = ((x * scale).sigmoid() / (x.abs() + 1.0) - (x * x + 1.0).sqrt()
           + (x * 0.5).relu())
    gx, gs = sd.autograd.grad(ref.sum(), (x, scale))
    hx, hs = sd.autograd.grad(f(x, scale).sum(), (x, scale))
    np.testing.assert_allclose(hx.numpy(), gx.numpy(), rtol=1e-12)
    np.testing.assert_allclose(hs.numpy(), gs.numpy(), rtol=1e-12)


def test_fusion_stops_at_a_non_elementwise_reader():
    g = sd.jit.trace(lambda x: ((x * 2).exp().sum(dim=0) + 1.0).sqrt(), sd.ones(3, 2)).graph
    assert [n.op for n in passes.fuse_elementwise(g)] == ["fused_elementwise", "sum",
                                                          "fused_elementwise"]


def test_buffer_plan_reuses_dead_buffers():
    # t0 = a*2; t1 = t0+1; t2 = exp(t1): three results, one buffer (each reads the last)
    refs = [(("in", 0),), (("t", 0),), (("t", 1),)]
    plan = BufferPlan(["mul_scalar", "add_scalar", "exp"], [(3,)] * 3, [np.float32] * 3,
                      refs, [2])
    assert plan.buffer == [0, 0, 0] and plan.n_buffers == 1
    # t1 is read again by member 3: it keeps its buffer until then
    refs = [(("in", 0),), (("t", 0),), (("t", 1),), (("t", 1), ("t", 2))]
    plan = BufferPlan(["exp", "neg", "exp", "add"], [(3,)] * 4, [np.float32] * 4, refs, [3])
    assert plan.buffer[1] != plan.buffer[2] and plan.n_buffers == 2


def test_memory_plan_donates_dead_inputs_and_peak():
    g = sd.jit.trace(lambda a: (a @ a).exp() * 2 + (a @ a.T), sd.ones(8, 8)).graph
    g = passes.fuse_elementwise(g)
    planned = passes.plan_memory(g)
    fused = [n for n in planned if n.op == "fused_elementwise"]
    assert fused and fused[0].attrs.get("donate") == 0
    info = lifetimes(planned)
    assert info["span"][id(planned[0].outputs[0])] == [0, len(planned) - 1]
    a = sd.randn(8, 8)
    with sd.no_grad():
        np.testing.assert_allclose(_run(planned, a).numpy(),
                                   ((a @ a).exp() * 2 + (a @ a.T)).numpy(), rtol=1e-6, atol=1e-4)
    x = sd.ones(100)
    g = sd.jit.trace(lambda x: (((x * 2) * 3) * 4), x).graph
    assert peak_bytes(g) == 2 * 400  # a result and the one made from it
    assert peak_bytes(passes.fuse_elementwise(g)) == 400


def test_arena_plan_alternates_two_buffers_and_results_stay_the_callers():
    from shendu.jit.passes.memory import plan_arena

    net = nn.Sequential(*[m for _ in range(4) for m in (nn.Linear(16, 16), nn.ReLU())],
                        nn.Linear(16, 3))
    x = sd.randn(8, 16)
    g = passes.fuse_linear_activation(sd.jit.trace(net, x).graph)
    assign, specs = plan_arena(g)
    assert [n.op for n in g] == ["linear_relu"] * 4 + ["linear"]
    assert assign == {0: 0, 1: 1, 2: 0, 3: 1}  # the returned result (node 4) has none
    assert specs == [((8, 16), np.dtype(np.float32))] * 2
    c = sd.compile(net)
    with sd.no_grad():
        a = c(x)
        a_copy = a.numpy().copy()
        b = c(x * 2)
    np.testing.assert_array_equal(a.numpy(), a_copy)  # not overwritten by the next call
    np.testing.assert_allclose(a.numpy(), net(x).detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b.numpy(), net(x * 2).detach().numpy(), rtol=1e-5, atol=1e-6)
