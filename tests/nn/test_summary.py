"""summary(): per-layer output shapes and parameter counts, totals, memory, side effects."""
import numpy as np
import pytest

import shendu as sd
from shendu.nn.containers import Flatten, Sequential
from shendu.nn.module import Module
from shendu.nn.parameter import Parameter
from shendu.nn.summary import ModelSummary, summary


class Lin(Module):
    def __init__(self, i, o):
        super().__init__()
        self.weight = Parameter(sd.randn(o, i))
        self.bias = Parameter(sd.zeros(o))

    def forward(self, x):
        return x @ self.weight.T + self.bias


class Act(Module):
    def forward(self, x):
        return x.relu()


class Gate(Module):
    """Holds a parameter of its own besides a child: it gets a row for its own parameter."""

    def __init__(self, n):
        super().__init__()
        self.scale = Parameter(sd.ones(n))
        self.inner = Lin(n, n)

    def forward(self, x):
        return self.inner(x) * self.scale


class Split(Module):
    def forward(self, x):
        return x[:, :2], x[:, 2:]


class Net(Module):
    def __init__(self):
        super().__init__()
        self.flat = Flatten()
        self.fc1 = Lin(12, 8)
        self.act = Act()
        self.gate = Gate(8)
        self.split = Split()
        self.seen = []

    def forward(self, x):
        self.seen.append((self.training, sd.is_grad_enabled()))
        h = self.act(self.fc1(self.flat(x)))
        h = self.act(self.gate(h))  # `act` runs twice: two rows
        a, b = self.split(h)
        return a.sum(1) + b.sum(1)


def test_rows_shapes_and_params_by_hand():
    net = Net()
    s = summary(net, (3, 4), batch_size=5)
    assert isinstance(s, ModelSummary)
    got = [(r.name, r.layer_type, r.output_shape, r.num_params) for r in s.rows]
    assert got == [
        ("flat", "Flatten", (5, 12), 0),
        ("fc1", "Lin", (5, 8), 12 * 8 + 8),
        ("act", "Act", (5, 8), 0),
        ("gate", "Gate", (5, 8), 8),          # its own `scale` only
        ("gate.inner", "Lin", (5, 8), 8 * 8 + 8),
        ("act", "Act", (5, 8), 0),
        ("split", "Split", [(5, 2), (5, 6)], 0),
    ]
    total = 104 + 8 + 72
    assert (s.total_params, s.trainable_params, s.non_trainable_params) == (total, total, 0)
    assert s.input_bytes == 5 * 12 * 4
    assert s.activation_bytes == 4 * (5 * 12 + 5 * 8 * 5 + 5 * 8)
    assert s.param_bytes == total * 4
    assert s.total_mb == pytest.approx((s.input_bytes + s.activation_bytes + total * 4) / 2**20)


def test_table_text():
    s = summary(Sequential(Flatten(), Lin(6, 1000)), (2, 3), batch_size=4)
    lines = str(s).splitlines()
    assert lines[0] == "Layer (type)   Output Shape   Param #"
    assert lines[1] == "=" * 37
    assert lines[2] == "0 (Flatten)    [4, 6]" + " " * 15 + "0"
    assert lines[3] == "1 (Lin)" + " " * 8 + "[4, 1000]" + " " * 8 + "7,000"
    assert lines[5:8] == ["Total params: 7,000", "Trainable params: 7,000",
                          "Non-trainable params: 0"]
    assert lines[9:13] == ["Input size (MB): 0.00", "Forward activations (MB): 0.02",
                           "Params size (MB): 0.03", "Estimated total size (MB): 0.04"]
    assert repr(s).startswith("ModelSummary(2 layers")


def test_frozen_and_shared_parameters():
    net = Net()
    net.fc1.requires_grad_(False)
    s = summary(net, (12,))
    assert s.trainable_params == 8 + 72 and s.non_trainable_params == 104

    shared = Lin(4, 4)
    tied = Sequential(shared, Act(), shared)
    s = summary(tied, (4,))
    assert [r.num_params for r in s.rows] == [20, 0, 20]  # each call shows the layer's params
    assert s.total_params == 20  # ... but the total counts the shared weights once


def test_modes_restored_and_no_grad_during_forward():
    net = Net()
    net.gate.eval()  # a mixed state must come back exactly
    summary(net, (12,))
    assert net.seen == [(False, False)]
    assert net.training and net.fc1.training and not net.gate.training
    assert not net.gate.inner.training
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in net.modules())
    assert sd.is_grad_enabled()


def test_hooks_removed_and_modes_restored_on_error():
    class Boom(Module):
        def __init__(self):
            super().__init__()
            self.fc = Lin(3, 3)

        def forward(self, x):
            self.fc(x)
            raise ValueError("boom")

    m = Boom()
    with pytest.raises(ValueError, match="boom"):
        summary(m, (3,))
    assert all(not mod._forward_hooks and not mod._forward_pre_hooks for mod in m.modules())
    assert m.training and m.fc.training


def test_several_inputs_dtypes_and_no_batch():
    class Pair(Module):
        def __init__(self):
            super().__init__()
            self.emb = Parameter(sd.randn(10, 4))

        def forward(self, idx, x):
            return self.emb[idx] + x

    s = summary(Pair(), [(3,), (3, 4)], dtype=[sd.int64, None], batch_size=2)
    assert s.rows[0].output_shape == (2, 3, 4) and s.rows[0].num_params == 40
    assert s.input_bytes == 2 * 3 * 8 + 2 * 3 * 4 * 4
    s = summary(Sequential(Flatten(0)), (2, 5), batch_size=None, dtype=sd.float64)
    assert s.rows[0].output_shape == (10,) and s.input_bytes == 80
    with pytest.raises(TypeError, match="input_size must be a shape tuple"):
        summary(Pair(), "abc")
    with pytest.raises(ValueError, match="2 input sizes but 1 dtypes"):
        summary(Pair(), [(3,), (3, 4)], dtype=[sd.int64])


def test_with_shendu_linear():
    linear = sd.nn.Linear
    net = Sequential(linear(20, 10), Act(), linear(10, 3, bias=False))
    s = summary(net, (20,), batch_size=7)
    assert [(r.output_shape, r.num_params) for r in s.rows] == [
        ((7, 10), 210), ((7, 10), 0), ((7, 3), 30)]
    assert s.total_params == 240
    np.testing.assert_equal(s.param_bytes, 240 * 4)


def test_prints_the_table_unless_quiet(capsys):
    net = Sequential(sd.nn.Linear(4, 3))
    s = summary(net, (4,))
    printed = capsys.readouterr().out
    assert printed.strip() == str(s).strip() and "Linear" in printed and "15" in printed
    summary(net, (4,), verbose=False)
    assert capsys.readouterr().out == ""
    assert repr(s) == "ModelSummary(1 layers, total_params=15, trainable_params=15)"
