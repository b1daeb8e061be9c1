"""shendu convert / shendu inspect between .pth, .safetensors, .onnx and shendu's format."""
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import shendu as sd
from shendu.cli import main

FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "torch_state_dict.pth"


def _onnx():
    return pytest.importorskip("onnx", reason="the onnx package reads and writes .onnx")


def test_convert_pth_to_every_format_and_back(tmp_path, capsys):
    want = sd.load(FIXTURE)
    st_path, sd_path = tmp_path / "w.safetensors", tmp_path / "w.sd"
    assert main(["convert", str(FIXTURE), str(st_path)]) == 0
    assert "wrote 14 tensors" in capsys.readouterr().out
    assert main(["convert", str(st_path), str(sd_path)]) == 0
    got = sd.load(sd_path)
    assert set(got) == set(want)
    for k, v in want.items():
        np.testing.assert_array_equal(got[k].numpy(), v.numpy(), err_msg=k)
        assert got[k].dtype == v.dtype
    onnx = _onnx()
    onnx_path = tmp_path / "w.onnx"
    assert main(["convert", str(sd_path), str(onnx_path)]) == 0
    onnx.checker.check_model(onnx.load(str(onnx_path)))
    assert main(["convert", str(onnx_path), str(tmp_path / "back.safetensors")]) == 0
    back = sd.load(tmp_path / "back.safetensors")
    for k, v in want.items():
        np.testing.assert_array_equal(back[k].numpy(), v.numpy(), err_msg=k)


def test_convert_nested_checkpoint_with_key_and_refusals(tmp_path, capsys):
    ckpt = {"model": {"fc.weight": sd.ones(2, 2)}, "epoch": 3, "opt": {"lr": 0.1}}
    sd.save(ckpt, tmp_path / "c.sd")
    assert main(["convert", str(tmp_path / "c.sd"), str(tmp_path / "all.safetensors")]) == 0
    assert "skipped non-tensor entries: epoch, opt.lr" in capsys.readouterr().out
    assert list(sd.load(tmp_path / "all.safetensors")) == ["model.fc.weight"]
    assert main(["convert", str(tmp_path / "c.sd"), str(tmp_path / "m.safetensors"),
                 "--key", "model"]) == 0
    assert list(sd.load(tmp_path / "m.safetensors")) == ["fc.weight"]
    assert main(["convert", str(tmp_path / "c.sd"), str(tmp_path / "out.pth")]) == 2
    assert "shendu never writes" in capsys.readouterr().err
    assert main(["convert", str(tmp_path / "c.sd"), str(tmp_path / "x.st"), "--key",
                 "nope"]) == 2
    assert "has no entry 'nope' (top-level keys: model, epoch, opt)" in capsys.readouterr().err
    assert main(["convert", str(tmp_path / "missing.pth"), str(tmp_path / "x.sd")]) == 2
    assert "No such file" in capsys.readouterr().err


def test_inspect_tensors(capsys):
    assert main(["inspect", str(FIXTURE)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("PyTorch checkpoint ") and "14 tensors" in out[0]
    rows = {line.split()[0]: line.split()[1:] for line in out[2:]}
    assert rows["conv.weight"] == ["(2,", "3,", "3,", "3)", "float32"]
    assert rows["bf16"][-1] == "float32" and rows["mask"][-1] == "bool"
    assert rows["bn.num_batches_tracked"] == ["()", "int64"]


def test_inspect_onnx_graph_ops(tmp_path, capsys):
    onnx = _onnx()
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "conv.weight")
    nodes = [helper.make_node("Conv", ["x", "conv.weight"], ["c"]),
             helper.make_node("Relu", ["c"], ["r"]), helper.make_node("Relu", ["r"], ["y"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 6, 6])], initializer=[w])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]),
              str(tmp_path / "g.onnx"))
    assert main(["inspect", str(tmp_path / "g.onnx")]) == 0
    out = capsys.readouterr().out
    assert "ONNX model" in out and "3 nodes" in out and "ai.onnx 17" in out
    assert "inputs:  x" in out and "outputs: y" in out
    lines = out.splitlines()
    assert "Relu                    2" in lines and "Conv                    1" in lines
    assert any(line.split()[0] == "conv.weight" and line.endswith("float32") for line in lines)


def test_onnx_missing_gives_a_clear_message(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if onnx were not installed
    sd.save({"w": sd.ones(1)}, tmp_path / "w.sd")
    assert main(["convert", str(tmp_path / "w.sd"), str(tmp_path / "w.onnx")]) == 2
    assert "needs the optional onnx package: pip install onnx" in capsys.readouterr().err


def test_the_installed_command(tmp_path):
    sd.save({"w": sd.ones(1)}, tmp_path / "w.sd")
    res = subprocess.run([sys.executable, "-m", "shendu.cli", "inspect",
                          str(tmp_path / "w.sd")], capture_output=True, text=True, timeout=120,
                         cwd=pathlib.Path(sd.__file__).parent.parent)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].startswith("shendu checkpoint ") and "1 tensor, 1 parameter" in lines[0]
    assert lines[2].split() == ["w", "(1,)", "float32"]
