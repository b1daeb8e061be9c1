"""Greedy placement (sd.jit.place): the schedule against one worked out by hand, and the
placed graph running on the CPU and the CuPy stand-in (tests/devices/fakecupy.py)."""
import math
import sys
from pathlib import Path

import numpy as np
import pytest

import shendu as sd
from shendu.backend import Device

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "devices"))
import fakecupy  # noqa: E402

CPU, GPU = Device("cpu"), Device("cuda", 0)


class TableCost:
    """Compute time per (op, device type) and 2 units per copy."""

    TIMES = {("matmul", "cpu"): 4, ("matmul", "cuda"): 1}

    def compute(self, node, device):
        return self.TIMES.get((node.op, device.type), 1)

    def transfer(self, value, src, dst):
        return 0 if src == dst else 2


def two_branches(x, a, b):
    return (x @ a).relu() + (x @ b).tanh()


def _traced():
    rng = np.random.default_rng(0)
    x = sd.tensor(rng.standard_normal((2, 3)), requires_grad=True)
    a = sd.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    b = sd.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    return sd.jit.trace(two_branches, (x, a, b)), (x, a, b)


def test_the_schedule_is_the_one_worked_out_by_hand():
    """Inputs on the CPU at t=0; matmul costs 4 on the CPU and 1 on the GPU, every other op
    1; each copy 2. Node by node (finish = max(device free, inputs there) + cost):
      matmul_0: cpu 0+4=4; cuda max(0, x and a copied by 2)+1=3   -> cuda [2, 3]
      relu_0:   cpu max(0, 3+2)+1=6; cuda max(3, 3)+1=4           -> cuda [3, 4]
      matmul_1: cpu max(0, 0)+4=4; cuda max(4, 2, 2)+1=5          -> cpu  [0, 4]
      tanh_0:   cpu max(4, 4)+1=5; cuda max(4, 4+2)+1=7           -> cpu  [4, 5]
      add_0:    cpu max(5, relu_0 4+2, 5)+1=7; cuda max(4, 4, 5+2)+1=8 -> cpu [6, 7]
    Copies: x and a to the GPU, relu_0 back to the CPU. Makespan 7 (the CPU alone:
    4+1+4+1+1 = 11)."""
    gm, _ = _traced()
    placed = sd.jit.place(gm.graph, ["cpu", "cuda"], TableCost())
    assert [(r[0], str(r[2]), r[3], r[4]) for r in placed.plan.rows] == [
        ("matmul_0", "cuda:0", 2, 3), ("relu_0", "cuda:0", 3, 4), ("matmul_1", "cpu", 0, 4),
        ("tanh_0", "cpu", 4, 5), ("add_0", "cpu", 6, 7)]
    assert placed.plan.copies == [("x", "cpu", "cuda:0"), ("a", "cpu", "cuda:0"),
                                  ("relu_0", "cuda:0", "cpu")]
    assert placed.plan.makespan == 7
    assert sd.jit.place(gm.graph, ["cpu"], TableCost()).plan.makespan == 11
    # the copies stand before their first reader, which reads the copy
    ops = [n.op for n in placed]
    assert ops == ["to_device", "to_device", "matmul", "relu", "matmul", "tanh", "to_device",
                   "add"]
    assert [v.name for v in placed[2].inputs] == ["x@cuda:0", "a@cuda:0"]
    assert placed[7].inputs[0].name == "relu_0@cpu"
    assert gm.graph[0].meta == {}  # the traced graph itself is left as it was
    assert "makespan 7" in str(placed.plan)


def test_the_placed_graph_runs_on_cpu_and_the_stand_in():
    gm, (x, a, b) = _traced()
    want = two_branches(x, a, b)
    want.sum().backward()
    grads = [t.grad.numpy().copy() for t in (x, a, b)]
    for t in (x, a, b):
        t.grad = None
    with fakecupy.installed():
        placed = sd.jit.place(gm, ["cpu", "cuda"], TableCost())
        assert {str(r[2]) for r in placed.plan.rows} == {"cpu", "cuda:0"}
        out = placed(x, a, b)
        assert out.device == CPU  # outputs come back to the input device
        np.testing.assert_allclose(out.detach().numpy(), want.detach().numpy(), rtol=1e-12)
        out.sum().backward()  # gradients flow back through the copies
        for t, g in zip((x, a, b), grads):
            assert t.grad.device == CPU
            np.testing.assert_allclose(t.grad.numpy(), g, rtol=1e-12)
        assert [n.meta["device"] for n in placed.graph if n.op == "matmul"] == [GPU, CPU]


def test_buffers_pin_their_readers_and_infeasible_devices_are_skipped():
    net = sd.nn.Sequential(sd.nn.Linear(4, 6), sd.nn.BatchNorm1d(6), sd.nn.ReLU())
    gm = sd.jit.trace(net, sd.randn(5, 4))
    cm = sd.jit.CostModel({"cpu": 1e9, "cuda": 1e15}, bandwidth=1e15)
    placed = sd.jit.place(gm.graph, ["cuda", "cpu"], cm, input_device="cpu")
    bn = [n for n in placed if n.op == "batch_norm"][0]
    assert bn.meta["device"] == CPU  # its running statistics live on the CPU
    assert [n for n in placed if n.op == "linear"][0].meta["device"] == GPU
    gpu_only = sd.jit.CostModel({"cuda": 1e12})
    with pytest.raises(ValueError, match="no device among \\['cpu'\\] can run node batch_norm"):
        sd.jit.place(gm.graph, ["cpu", "cuda"], gpu_only)


def test_the_default_cost_model():
    gm, _ = _traced()
    cm = sd.jit.CostModel({"cpu": 1e9, "cuda": 1e11}, bandwidth=1e9, latency=1e-6,
                          overhead={"cuda": 5e-6})
    mm = gm.graph[0]
    assert cm.compute(mm, CPU) == pytest.approx(2 * 2 * 4 * 3 / 1e9)
    assert cm.compute(mm, GPU) == pytest.approx(5e-6 + 2 * 2 * 4 * 3 / 1e11)
    assert cm.compute(mm, Device("cuda", 1)) == pytest.approx(5e-6 + 48 / 1e11)
    assert cm.transfer(mm.outputs[0], CPU, GPU) == pytest.approx(1e-6 + 64 / 1e9)
    assert cm.transfer(mm.outputs[0], GPU, GPU) == 0
    assert sd.jit.CostModel({"cpu": 1e9}).compute(mm, GPU) == math.inf
    plan = sd.jit.place(gm.graph, ["cpu", "cuda"], cm).plan
    assert isinstance(plan, sd.jit.Plan) and plan.makespan > 0
    assert "Plan(5 nodes" in repr(plan)


def test_the_two_tower_example_prints_its_plans(capsys):
    import runpy

    runpy.run_path(str(Path(__file__).resolve().parents[2] / "examples" / "placement.py"),
                   run_name="__main__")
    out = capsys.readouterr().out
    assert out.count("makespan") == 4  # a title line and a plan footer per cost model
    assert "copy i cpu -> cuda:0" in out and "linear_3       linear       cpu" in out
