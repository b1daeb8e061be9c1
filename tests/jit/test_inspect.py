"""Printing, summary (FLOPs/bytes), Graphviz source and drawing of traced graphs."""
import builtins
import shutil

import numpy as np
import pytest

import shendu as sd
from shendu import nn
from shendu.jit import draw as draw_mod
from shendu.jit.cost import node_flops
from shendu.vision.models import LeNet5


def _lenet_graph():
    return sd.jit.trace(LeNet5(), sd.randn(2, 1, 28, 28)).graph


def test_print_is_a_table_with_every_node():
    g = _lenet_graph()
    text = str(g)
    lines = text.splitlines()
    assert lines[0].split()[:4] == ["kind", "name", "op", "inputs"]
    assert sum(line.startswith("node") for line in lines) == len(g) == 12
    assert "features.0.weight" in text and "float32[2, 6, 28, 28]" in text
    assert "stride=(1, 1)" in text and lines[-1].startswith("output")


def test_summary_counts_ops_and_flops_by_hand():
    g = _lenet_graph()
    s = g.summary()
    assert s.op_counts == {"relu": 4, "linear": 3, "conv2d": 2, "max_pool2d": 2, "reshape": 1}
    # conv 1: 2 * (2*6*28*28 outputs) * (1*5*5 taps) multiply-adds + one bias add per output
    assert s.rows[0][4] == 2 * 2 * 6 * 28 * 28 * 25 + 2 * 6 * 28 * 28
    assert s.rows[6][4] == 0  # reshape moves nothing
    lin = g[7]
    assert node_flops(lin) == 2 * 2 * 120 * 400 + 2 * 120
    # bytes: what the node reads and writes (float32)
    assert s.rows[1][5] == 2 * (2 * 6 * 28 * 28 * 4)
    assert s.n_params == sum(p.numel() for p in LeNet5().parameters())
    assert "total: 12 nodes" in str(s)


def test_matmul_flops():
    g = sd.jit.trace(lambda a, b: a @ b, (sd.ones(5, 3), sd.ones(3, 7))).graph
    assert g.summary().total_flops == 2 * 5 * 3 * 7


def test_dot_has_clusters_by_module_and_shape_labels():
    src = _lenet_graph().to_dot()
    assert src.startswith("digraph") and src.rstrip().endswith("}")
    assert 'label="features.0: Conv2d"' in src and 'label="classifier"' in src
    assert '[label="float32[2,6,28,28]"]' in src
    assert src.count("shape=box") == 12
    assert "features.3.weight" in src
    assert "features.3.weight" not in _lenet_graph().to_dot(show_params=False)


def test_lstm_cell_graph_clusters():
    cell = nn.LSTMCell(3, 4)
    g = sd.jit.trace(cell, sd.randn(2, 3)).graph
    assert {"linear", "sigmoid", "tanh", "mul"} <= {n.op for n in g}
    assert [v.name for v in g.inputs] == ["input"] and len(g.outputs) == 2  # (h, c)
    assert g.to_dot().count(" -> out") == 2


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz 'dot' program not installed")
def test_draw_svg_and_png(tmp_path):
    pytest.importorskip("graphviz", reason="graphviz Python package not installed")
    g = _lenet_graph()
    svg = g.draw(tmp_path / "g.svg")
    text = open(svg).read()
    assert "<svg" in text and "conv2d" in text and "features.0: Conv2d" in text
    png = g.draw(str(tmp_path / "g.png"))
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_draw_without_dot_says_what_to_install(tmp_path, monkeypatch):
    g = sd.jit.trace(lambda x: x * 2, sd.ones(2)).graph
    monkeypatch.setattr(draw_mod.shutil, "which", lambda name: None)
    real_import = builtins.__import__

    def no_graphviz(name, *a, **k):
        if name == "graphviz":
            raise ImportError("no graphviz")
        return real_import(name, *a, **k)

    try:
        import graphviz  # noqa: F401
        with pytest.raises(RuntimeError, match="apt-get install graphviz"):
            g.draw(tmp_path / "g.svg")
    except ImportError:
        pass
    monkeypatch.setattr(builtins, "__import__", no_graphviz)
    with pytest.raises(RuntimeError, match=r"graphviz Python package is missing.*to_dot\(\)"):
        g.draw(tmp_path / "g.svg")
    assert not (tmp_path / "g.svg").exists()
    np.testing.assert_equal(len(g.to_dot()) > 0, True)
