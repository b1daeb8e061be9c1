"""benchmarks/gpu.sh is ready for a GPU machine: without one it says so and fails (exit 2,
never a silent pass), and its ResNet-18 comparison runs (here on the CPU, tiny)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import shendu as sd

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(sd.cuda.is_available(), reason="a GPU is here: run benchmarks/gpu.sh")
def test_gpu_script_reports_the_missing_gpu():
    env = dict(os.environ, PYTHON=sys.executable)
    r = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu.sh")], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "NO GPU" in r.stderr and "nothing was run" in r.stderr


def test_resnet18_comparison_runs(tmp_path):
    pytest.importorskip("torch", reason="the comparison's other side is PyTorch")
    out = tmp_path / "r.json"
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_resnet18.py"),
                        "--device", "cpu", "--batch", "2", "--warmup", "0", "--steps", "1",
                        "--json", str(out)], capture_output=True, text=True, timeout=600,
                       # (kernels off: the script is for the GPU, and in a fresh clone
                       # compiling them for this CPU smoke run alone took 30 s)
                       env=dict(os.environ, PYTHONPATH=str(ROOT), SHENDU_JIT="0"))
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    res = json.loads(out.read_text())
    assert res["forward_max_rel_diff"] < 1e-3
    assert res["shendu_ms"] > 0 and res["torch_ms"] > 0
    assert res["machine"]["shendu_commit"]
