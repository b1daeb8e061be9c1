"""sd.jit.trace: the recorded graph (ops, edges, attrs, module paths, names) and re-running it."""
import numpy as np
import pytest

import shendu as sd
from shendu import nn
from shendu.jit import Graph, GraphModule, Node, TraceError, Value
from shendu.vision.models import LeNet5


def test_function_graph_records_ops_edges_and_attrs():
    gm = sd.jit.trace(lambda a, b: (a @ b + 1.0).sum(dim=1), (sd.ones(2, 3), sd.ones(3, 4)))
    assert isinstance(gm, GraphModule) and isinstance(gm.graph, Graph)
    assert [n.op for n in gm.graph] == ["matmul", "add_scalar", "sum"]
    mm, add, s = gm.graph
    assert isinstance(mm, Node) and all(isinstance(v, Value) for v in mm.inputs)
    assert [v.name for v in mm.inputs] == ["a", "b"]
    assert [v.kind for v in mm.inputs] == ["input", "input"]
    assert mm.outputs[0].shape == (2, 4) and mm.outputs[0].dtype == np.float32
    assert add.inputs == mm.outputs and add.attrs == {"c": 1.0}
    assert s.outputs[0].shape == (2,) and s.attrs == {"axes": (1,), "keepdims": False}
    assert gm.graph.outputs == s.outputs
    assert "test_trace.py" in mm.source


def test_module_paths_and_parameter_names():
    net = LeNet5()
    gm = sd.jit.trace(net, sd.randn(2, 1, 28, 28))
    conv = gm.graph[0]
    assert conv.op == "conv2d" and conv.module == "features.0" and conv.module_type == "Conv2d"
    assert [v.name for v in conv.inputs] == ["x", "features.0.weight", "features.0.bias"]
    assert [v.kind for v in conv.inputs] == ["input", "param", "param"]
    assert conv.inputs[1].tensor is net.features[0].weight
    assert conv.attrs["stride"] == (1, 1)
    assert {n.op for n in gm.graph} >= {"conv2d", "relu", "max_pool2d", "linear", "reshape"}


def test_constants_are_named_inputs_kept_by_reference():
    w = sd.randn(3, requires_grad=True)
    gm = sd.jit.trace(lambda x: x * w, sd.ones(3))
    c = gm.graph[0].inputs[1]
    assert c.kind == "const" and c.name == "const_0" and c.tensor is w
    gm(sd.full((3,), 2.0)).sum().backward()  # gradients reach the constant
    np.testing.assert_allclose(w.grad.numpy(), [2.0, 2.0, 2.0])


@pytest.mark.parametrize("shape", [(3, 1, 28, 28), (3, 1, 28, 28, "float64")])
def test_rerun_equals_eager_forward_and_gradients(shape):
    dtype = sd.float64 if shape[-1] == "float64" else sd.float32
    shape = shape[:4]
    net = LeNet5().to(dtype)
    x = sd.randn(*shape, dtype=dtype)
    gm = sd.jit.trace(net, x)
    x2 = sd.randn(*shape, dtype=dtype)
    out = gm(x2)
    ref = net(x2)
    np.testing.assert_array_equal(out.detach().numpy(),
                                  ref.detach().numpy())
    ref.sum().backward()
    eager = [p.grad.numpy().copy() for p in net.parameters()]
    net.zero_grad()
    out.sum().backward()
    for p, g in zip(net.parameters(), eager):
        np.testing.assert_array_equal(p.grad.numpy(), g)


def test_structured_outputs_and_identity_outputs():
    gm = sd.jit.trace(lambda x, y: {"s": x + y, "pair": (x, y * 2)}, (sd.ones(2), sd.ones(2)))
    out = gm(sd.tensor([1.0, 2.0]), sd.tensor([3.0, 4.0]))
    assert set(out) == {"s", "pair"} and isinstance(out["pair"], tuple)
    np.testing.assert_array_equal(out["s"].numpy(), [4.0, 6.0])
    np.testing.assert_array_equal(out["pair"][0].numpy(), [1.0, 2.0])
    np.testing.assert_array_equal(out["pair"][1].numpy(), [6.0, 8.0])


def test_call_with_other_shape_is_refused():
    gm = sd.jit.trace(lambda x: x * 2, sd.ones(2, 3))
    with pytest.raises(TraceError, match=r"traced for shape \(2, 3\)"):
        gm(sd.ones(4, 3))
    with pytest.raises(TraceError, match="traced with 1 inputs, called with 2"):
        gm(sd.ones(2, 3), sd.ones(2, 3))


def test_lstm_and_transformer_layers_trace_and_rerun():
    sd.manual_seed(0)
    for m, x in [(nn.LSTM(4, 6, batch_first=True), sd.randn(2, 5, 4)),
                 (nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True),
                  sd.randn(2, 3, 8))]:
        gm = sd.jit.trace(m, x)
        x2 = sd.randn(*x.shape)
        a, b = gm(x2), m(x2)
        a, b = (a[0], b[0]) if isinstance(a, tuple) else (a, b)
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    assert "lstm_layer" in [n.op for n in sd.jit.trace(nn.LSTM(4, 6), sd.randn(5, 2, 4)).graph]


def test_dropout_is_a_leaf_that_draws_a_new_mask_each_run():
    m = nn.Sequential(nn.Linear(50, 50), nn.Dropout(0.5))
    x = sd.randn(4, 50)
    gm = sd.jit.trace(m, x)
    assert [n.op for n in gm.graph] == ["linear", "dropout"] and gm.graph[1].leaf
    assert gm.graph[1].attrs["p"] == 0.5 and gm.graph[1].attrs["training"] is True
    a, b = gm(x).detach().numpy(), gm(x).detach().numpy()
    assert not np.array_equal(a == 0, b == 0)
    m.eval()
    assert [n.op for n in sd.jit.trace(m, x).graph] == ["linear"]  # eval: identity


def test_batch_norm_leaf_updates_running_stats_when_rerun():
    m = nn.BatchNorm2d(3)
    x = sd.randn(4, 3, 5, 5) + 2.0
    gm = sd.jit.trace(m, x)
    node = gm.graph[0]
    assert node.op == "batch_norm" and node.leaf
    assert [v.name for v in node.inputs] == ["input", "running_mean", "running_var", "weight",
                                             "bias"]
    before = m.running_mean.numpy().copy()
    gm(x)
    assert not np.allclose(m.running_mean.numpy(), before)


def test_inplace_ops_on_traced_values_become_out_of_place_nodes():
    def f(x):
        y = x * 2
        y += 1
        y.relu_()
        return y

    gm = sd.jit.trace(f, sd.ones(3))
    assert [n.op for n in gm.graph] == ["mul_scalar", "add_scalar", "relu"]
    x = sd.tensor([-2.0, 0.0, 1.0])
    np.testing.assert_array_equal(gm(x).numpy(), [0.0, 1.0, 3.0])
    np.testing.assert_array_equal(x.numpy(), [-2.0, 0.0, 1.0])


def test_tracing_leaves_eager_mode_untouched():
    from shendu.autograd.function import Function

    apply = Function.__dict__["apply"]
    call = nn.Module.__call__
    sd.jit.trace(lambda x: x + 1, sd.ones(1))
    with pytest.raises(TraceError):
        sd.jit.trace(lambda x: bool(x), sd.ones(1))
    assert Function.__dict__["apply"] is apply and nn.Module.__call__ is call
    assert bool(sd.ones(1)) and sd.ones(1).item() == 1.0
