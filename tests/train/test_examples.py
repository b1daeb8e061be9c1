"""The example scripts run, on reduced settings, and print what their docstrings promise."""
import os
import re
import runpy
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DEBIAN = Path("/usr/share/datasets/fashion-mnist")


def _run(monkeypatch, capsys, name, *args):
    monkeypatch.setattr(sys, "argv", [name, *map(str, args)])
    runpy.run_path(str(EXAMPLES / name), run_name="__main__")
    return capsys.readouterr().out


def _test_accuracy(text):
    return float(re.search(r"Test accuracy: ([0-9.]+)", text).group(1))


def test_xor_perceptron(monkeypatch, capsys):
    out = _run(monkeypatch, capsys, "xor_perceptron.py")
    assert "perceptron on AND: converged=True" in out
    assert "perceptron on XOR: converged=False" in out
    assert "predictions [0, 1, 1, 0] -> solved" in out


def test_bias_variance(monkeypatch, capsys):
    out = _run(monkeypatch, capsys, "bias_variance.py")
    for problem in ("avoidable bias", "variance", "data mismatch", "overfitting to dev"):
        assert f"Dominant problem: {problem}." in out
    assert "[overfitting]" in out


def test_train_digits_one_epoch(monkeypatch, capsys, tmp_path):
    pytest.importorskip("matplotlib")
    out = _run(monkeypatch, capsys, "train_digits.py", "--epochs", 1, "--out", tmp_path)
    assert _test_accuracy(out) > 0.8  # LeNet-5 after one epoch on 3,600 digits
    for name in ("checkpoint.sd", "metrics.json", "history.csv", "learning_curves.png"):
        assert os.path.getsize(tmp_path / name) > 0, name


@pytest.mark.skipif(not (DEBIAN / "t10k-labels-idx1-ubyte.gz").is_file(),
                    reason="Debian's dataset-fashion-mnist package is not installed")
def test_fashion_mnist_example_reads_debian_files(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("SHENDU_DATA", str(tmp_path))  # an empty cache: only Debian's copy
    out = _run(monkeypatch, capsys, "fashion_mnist_lenet.py", "--limit", 3000,
               "--epochs", 2)
    assert "Fashion-MNIST: 2750 train / 250 dev / 3000 test" in out
    assert _test_accuracy(out) > 0.65  # chance is 0.1
