"""``shendu detect train --nproc N``: the detectors trained data-parallel over MPI."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from mpijob import MPI_MISSING, ROOT, rank_lines

import shendu as sd
from shendu.cli import main

SMALL = ["--sources", "digits", "--canvas-size", "64", "--train-images", "16",
         "--test-images", "4", "--batch-size", "4"]


def _detect(tmp_path, *args):
    # without the compiled kernels: on a cold cache compiling them would take most of a
    # minute, and this test is about the data-parallel job, not the kernels
    env = dict(os.environ, SHENDU_JIT="0", PYTHONPATH=os.pathsep.join(
        p for p in (ROOT, os.environ.get("PYTHONPATH")) if p))
    return subprocess.run([sys.executable, "-m", "shendu.cli", "detect", "train", "--arch",
                           "fasterrcnn", *SMALL, *args], capture_output=True, text=True,
                          timeout=300, env=env, cwd=str(tmp_path))


@pytest.mark.skipif(MPI_MISSING is not None, reason=str(MPI_MISSING))
def test_two_ranks_train_one_model_and_rank_0_reports(tmp_path):
    out = tmp_path / "two"
    run = _detect(tmp_path, "--epochs", "1", "--nproc", "2", "--out", str(out))
    assert run.returncode == 0, run.stdout + run.stderr
    assert rank_lines(run.stdout, 1) == []   # rank 0 alone speaks and writes
    assert any("test mAP@0.5" in line for line in rank_lines(run.stdout, 0))
    result = json.loads((out / "results.json").read_text())
    # 16 canvases in global batches of 4: 4 steps, each rank taking 2 canvases of each
    assert result["steps"] == 4 and result["nproc"] == 2 and result["threads"] == 1
    assert "--rank-of-job" not in result["command"]
    assert len(result["history"]) == 1 and np.isfinite(result["history"][0]["loss"])
    # the model rank 0 wrote is the trained one: against the same command's initial
    # weights (--epochs 0, one process), most tensors moved
    init = _detect(tmp_path, "--epochs", "0", "--out", str(tmp_path / "init"), "--quiet")
    assert init.returncode == 0, init.stdout + init.stderr
    trained, fresh = sd.load(str(out / "model.sd")), sd.load(str(tmp_path / "init" /
                                                                   "model.sd"))
    assert trained.keys() == fresh.keys()
    moved = [k for k in fresh if not np.array_equal(np.asarray(trained[k]),
                                                    np.asarray(fresh[k]))]
    assert len(moved) > len(fresh) // 2


def test_nproc_must_split_the_global_batch(tmp_path, capsys):
    code = main(["detect", "train", *SMALL, "--nproc", "3", "--out", str(tmp_path / "x")])
    assert code == 2
    assert "--batch-size 4" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
