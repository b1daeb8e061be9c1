"""``examples/segment_canvas.py --nproc N``: the segmenter (pre-training included) trained
data-parallel over MPI, rank 0 evaluating and writing alone."""
import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from mpijob import MPI_MISSING, ROOT, rank_lines

import shendu as sd

SCRIPT = pathlib.Path(ROOT) / "examples" / "segment_canvas.py"
SMALL = ["--sources", "digits", "--canvas-size", "64", "--train-images", "16",
         "--test-images", "4", "--batch-size", "4", "--widths", "4,8", "--deep-scores"]
_spec = importlib.util.spec_from_file_location("segment_canvas", SCRIPT)
segment_canvas = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(segment_canvas)


def _segment(tmp_path, *args):
    # without the compiled kernels: this test is about the job, not the kernels (which a
    # cold cache would spend most of a minute compiling)
    env = dict(os.environ, SHENDU_JIT="0", PYTHONPATH=os.pathsep.join(
        p for p in (ROOT, os.environ.get("PYTHONPATH")) if p))
    return subprocess.run([sys.executable, str(SCRIPT), *SMALL, *args], capture_output=True,
                          text=True, timeout=300, env=env, cwd=str(tmp_path))


@pytest.mark.skipif(MPI_MISSING is not None, reason=str(MPI_MISSING))
def test_two_ranks_pretrain_and_train_one_model_and_rank_0_reports(tmp_path):
    out = tmp_path / "two.json"
    run = _segment(tmp_path, "--epochs", "1", "--pretrain", "0.02", "--nproc", "2",
                   "--out", str(out), "--save", "two.sd")
    assert run.returncode == 0, run.stdout + run.stderr
    assert rank_lines(run.stdout, 1) == []   # rank 0 alone speaks and writes
    assert any("test mIoU" in line for line in rank_lines(run.stdout, 0))
    result = json.loads(out.read_text())
    # 16 canvases in global batches of 4: 4 steps, each rank taking 2 canvases of each
    assert result["steps"] == 4 and result["nproc"] == 2 and result["threads"] == 1
    assert result["pretrain"]["steps"] >= 1 and "--rank-of-job" not in result["command"]
    assert len(result["history"]) == 1 and np.isfinite(result["history"][0]["loss"])
    # what rank 0 wrote is the trained model: against the same seed's initial weights
    # (--epochs 0, one process), the encoder and the decoder moved
    init = _segment(tmp_path, "--epochs", "0", "--out", str(tmp_path / "init.json"),
                    "--save", "init.sd")
    assert init.returncode == 0, init.stdout + init.stderr
    trained, fresh = sd.load(str(tmp_path / "two.sd")), sd.load(str(tmp_path / "init.sd"))
    assert trained.keys() == fresh.keys()
    for key in ("down.0.0.weight", "merge.0.0.weight", "head.weight"):
        assert not np.array_equal(np.asarray(trained[key]), np.asarray(fresh[key])), key


def test_each_rank_takes_its_share_of_the_global_batch():
    batch = np.arange(8)
    shares = [segment_canvas.Ranks(r, 2).share(batch) for r in range(2)]
    np.testing.assert_array_equal(np.concatenate(shares), batch)
    np.testing.assert_array_equal(shares[1], [4, 5, 6, 7])
    alone = segment_canvas.Ranks()
    np.testing.assert_array_equal(alone.share(batch), batch)
    assert alone.agreed(0.25) == 0.25 and alone.total(3.0) == 3.0
    model = sd.nn.Linear(2, 1)
    assert alone.wrap(model) is model


@pytest.mark.parametrize("args, message", [
    (["--nproc", "3"], "split --batch-size 4 (the global batch) evenly; got --nproc 3"),
    (["--nproc", "2", "--aux-classify", "1"], "--aux-classify runs in one process only"),
])
def test_bad_nproc_is_refused_before_any_rank_starts(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit):
        segment_canvas.main([*SMALL, *args, "--out", str(tmp_path / "x.json")])
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()
