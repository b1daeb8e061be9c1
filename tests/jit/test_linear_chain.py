"""``fuse_linear_chain``: inference Linear chains as one node (rows split between threads,
weights packed once). What it fuses, results against float64 references and eager, and
that a weight changed by any of the usual routes is packed again."""
import threading

import numpy as np
import pytest
from tolerance import assert_sums_close

import shendu as sd
from shendu import nn
from shendu.backend import runtime
from shendu.jit import GraphModule, passes
from shendu.jit.chain import MIN_ROWS_PER_THREAD


def _mlp(dtype=sd.float32, bias_last=True, relu_last=False):
    layers = [nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 24), nn.ReLU(),
              nn.Linear(24, 5, bias=bias_last)]
    if relu_last:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers).to(dtype).eval()


def _reference(net, x):
    """The MLP in float64 NumPy, layer by layer."""
    h = np.asarray(x, np.float64)
    for m in net:
        if isinstance(m, nn.Linear):
            h = h @ m.weight.detach().numpy().astype(np.float64).T
            if m.bias is not None:
                h = h + m.bias.detach().numpy().astype(np.float64)
        else:
            h = np.maximum(h, 0)
    return h


def _chain_graph(net, x):
    with sd.no_grad():
        g = sd.jit.trace(net, x).graph
    return passes.fuse_linear_chain(passes.fuse_linear_activation(g))


def _plan(compiled, x=None):
    """The chain plan of the graph for input ``x`` (None: the only graph)."""
    if x is None:
        (g,) = compiled.graphs.values()
    else:
        with sd.no_grad():
            g = compiled.graphs[compiled._compiled.signature((x,))]
    (node,) = [n for n in g if n.op == "linear_chain"]
    return node.attrs["plan"]


def test_inference_chain_is_one_node_training_graph_keeps_its_layers():
    net = _mlp(relu_last=True)
    x = sd.randn(64, 20)
    g = _chain_graph(net, x)
    assert [n.op for n in g] == ["linear_chain"]
    assert g[0].meta["fused"] == ["linear_0", "relu_0", "linear_1", "relu_1", "linear_2",
                                  "relu_2"]
    assert g[0].attrs["plan"].layers == ((True, True), (True, True), (True, True))
    # a backward will run: the layers stay (packed weights are for fixed weights)
    train = passes.fuse_linear_activation(sd.jit.trace(net, x).graph)
    assert [n.op for n in passes.fuse_linear_chain(train)] == ["linear_relu"] * 3
    # FLOPs: per layer the product, the bias and the ReLU
    flops = sum(64 * o * (2 * i + 2) for i, o in ((20, 32), (32, 24), (24, 5)))
    assert g.summary().rows[0][4] == flops


def test_chain_breaks_where_a_result_is_read_elsewhere_or_a_weight_is_an_input():
    a, b = nn.Linear(8, 8), nn.Linear(8, 4)

    def two_readers(x):
        h = a(x).relu()
        return b(h) + h.sum()

    g = _chain_graph(two_readers, sd.randn(4, 8))
    assert [n.op for n in g][:2] == ["linear_chain", "linear_chain"]
    assert [len(n.attrs["plan"].layers) for n in g[:2]] == [1, 1]

    def weight_as_input(x, w):  # a graph input changes every call: not packed
        return nn.functional.linear(a(x), w)

    with sd.no_grad():
        g = sd.jit.trace(weight_as_input, (sd.randn(4, 8), sd.randn(3, 8))).graph
    assert [n.op for n in passes.fuse_linear_chain(g)] == ["linear_chain", "linear"]


@pytest.mark.parametrize("shape", [(256, 20), (40, 20), (7, 20), (1, 20), (3, 48, 20)])
@pytest.mark.parametrize("bias_last,relu_last", [(True, False), (False, True)])
def test_chain_matches_float64_reference(shape, bias_last, relu_last):
    net = _mlp(sd.float64, bias_last, relu_last)
    x = sd.randn(*shape, dtype=sd.float64)
    c = sd.compile(net)
    with sd.no_grad():
        got = c(x).numpy()
    # float64 sums of at most 32 terms of size ~1: reassociation moves the last bits
    np.testing.assert_allclose(got, _reference(net, x.numpy()), rtol=1e-12, atol=1e-13)
    assert [n.op for n in next(iter(c.graphs.values()))] == ["linear_chain"]


def test_float32_chain_layer_by_layer_within_reassociation():
    """Each prefix of the MLP compiled alone: layer ``l`` of the chain against its input
    (the previous prefix's result, the same rows on the same thread) in float64, within
    the bound on reordering a sum of ``k`` products."""
    sd.manual_seed(3)
    net = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(),
                        nn.Linear(64, 10)).eval()
    x = sd.randn(96, 784)
    prev = x.numpy()
    for end in (2, 4, 5):
        with sd.no_grad():
            got = sd.compile(net[:end])(x).numpy()
        lin = net[end - 1] if end == 5 else net[end - 2]
        w = lin.weight.detach().numpy().astype(np.float64)
        b = lin.bias.detach().numpy().astype(np.float64)
        want = prev.astype(np.float64) @ w.T + b
        scale = np.abs(prev.astype(np.float64)) @ np.abs(w.T) + np.abs(b)
        if end < 5:
            want = np.maximum(want, 0)  # 1-Lipschitz: the bound on the sum still holds
        assert_sums_close(got, want, w.shape[1], scale, np.float32)
        prev = got


def test_float32_mlp_equals_eager():
    sd.manual_seed(0)
    net = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                        nn.Linear(512, 10)).eval()
    x = sd.randn(256, 784)
    with sd.no_grad():
        got, want = sd.compile(net)(x).numpy(), net(x).numpy()
    # two float32 chains, each within reassociation of float64: outputs of size ~0.1
    # differ by a few float32 ulps of the partial sums
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-6)


def _changes():
    """Ways a weight changes between calls, each ``fn(net)`` on a float64 ``_mlp``."""
    def sgd_step(net):
        opt = sd.optim.SGD(net.parameters(), lr=0.5)
        net(sd.randn(4, 20, dtype=sd.float64)).sum().backward()
        opt.step()
        opt.zero_grad()

    def load_state_dict(net):
        other = _mlp(sd.float64)
        net.load_state_dict(other.state_dict())

    def in_place_op(net):
        with sd.no_grad():
            net[2].weight.mul_(-2.0)

    def init(net):
        nn.init.normal_(net[0].weight)

    def new_array(net):
        net[2].weight.data = sd.randn(24, 32, dtype=sd.float64)

    def through_data(net):   # old-style manual SGD writes through the .data alias
        net[0].weight.data -= 0.5 * sd.ones_like(net[0].weight)

    def data_in_place(net):
        net[2].weight.data.mul_(-2.0)

    return [sgd_step, load_state_dict, in_place_op, init, new_array, through_data,
            data_in_place]


@pytest.mark.parametrize("change", _changes(), ids=lambda f: f.__name__)
def test_a_changed_weight_is_packed_again(change):
    net = _mlp(sd.float64)  # float64: the products match the reference to rounding
    c = sd.compile(net)
    x = sd.randn(64, 20, dtype=sd.float64)
    with sd.no_grad():
        before = c(x).numpy()
        c(x)
    packed_before = _plan(c)._packed
    change(net)
    with sd.no_grad():
        got = c(x).numpy()
        want = _reference(net, x.numpy())
    assert not np.allclose(before, want, rtol=1e-3)  # the change shows in the result
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13)
    if runtime.kernels_on() and runtime.mkl_loaded():
        packed_after = _plan(c)._packed
        assert packed_after is not packed_before  # packed again
        with sd.no_grad():
            c(x)
        assert _plan(c)._packed is packed_after  # and kept while nothing changes


def test_packed_weights_are_reused_while_nothing_changes():
    if not (runtime.kernels_on() and runtime.mkl_loaded()):
        pytest.skip("the packed path needs MKL and the kernels")
    c = sd.compile(_mlp())
    x = sd.randn(64, 20)
    with sd.no_grad():
        c(x)
        first = _plan(c)._packed
        c(x * 2)
    assert _plan(c)._packed is first


def test_recording_on_a_chain_node_gives_eager_gradients():
    """A chain graph called while autograd records runs the eager ops: gradients reach the
    parameters and equal eager's."""
    net = _mlp(sd.float64)
    x = sd.randn(40, 20, dtype=sd.float64)
    gm = GraphModule(net, _chain_graph(net, x))
    gm(x).sum().backward()
    got = [p.grad.numpy().copy() for p in net.parameters()]
    net.zero_grad()
    net(x).sum().backward()
    for g, p in zip(got, net.parameters()):
        np.testing.assert_allclose(g, p.grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kernels", [False, True])
def test_one_thread_and_no_kernels_give_the_same_values(kernels):
    net = _mlp(sd.float64)
    x = sd.randn(64, 20, dtype=sd.float64)
    c = sd.compile(net)
    with sd.no_grad(), runtime.use(kernels=kernels), runtime.kernel_threads_at_most(1):
        got = c(x).numpy()
    np.testing.assert_allclose(got, _reference(net, x.numpy()), rtol=1e-12, atol=1e-13)


def test_threads_calling_one_compiled_model_get_their_own_results():
    net = _mlp()
    c = sd.compile(net)
    xs = [sd.randn(4 * MIN_ROWS_PER_THREAD, 20) for _ in range(4)]
    with sd.no_grad():
        c(xs[0])
    results = [None] * len(xs)

    def work(i):
        try:
            for _ in range(20):
                results[i] = c(xs[i]).numpy()
        except Exception as exc:  # noqa: BLE001 - shown by the assertion below
            results[i] = exc

    # (grad mode is process-wide: one no_grad around all the threads)
    with sd.no_grad():
        threads = [threading.Thread(target=work, args=(i,)) for i in range(len(xs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for x, r in zip(xs, results):
        assert isinstance(r, np.ndarray), r
        np.testing.assert_allclose(r, _reference(net, x.numpy()), rtol=1e-4, atol=1e-5)


def test_to_replaces_the_arrays_and_the_packs_follow():
    net = _mlp()
    c = sd.compile(net)
    x = sd.randn(64, 20)
    with sd.no_grad():
        c(x)
        packed = _plan(c)._packed
        net.to(sd.float64)  # new arrays (float64): that signature gets its own graph
        got64 = c(x.to(sd.float64)).numpy()
        net.to(sd.float32)  # new float32 arrays again, with the same values
        got32 = c(x).numpy()
    np.testing.assert_allclose(got64, _reference(net, x.numpy()), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got32, _reference(net, x.numpy()), rtol=1e-4, atol=1e-5)
    if runtime.kernels_on() and runtime.mkl_loaded():
        stamp = _plan(c, x)._packed[0]
        assert stamp is not packed[0]
        assert all(a is p._data for (a, _), p in zip(stamp, [net[0].weight, net[2].weight,
                                                              net[4].weight]))
