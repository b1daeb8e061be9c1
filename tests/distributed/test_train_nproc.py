"""``shendu train --nproc N``: the main job data-parallel over MPI.

A 2-rank run on a small subset writes one set of result files, its replicas end
identical, and in a deterministic setup (no dropout, no augmentation) its parameters equal
those of a 1-rank run with the same global batch up to float32 rounding; a 2-rank run
resumed from its epoch-1 checkpoint (dropout and augmentation on) ends bit-for-bit where
the uninterrupted run ends.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from mpijob import MPI_MISSING, ROOT, rank_lines

import shendu as sd

SMALL = ["--model", "mlp", "--hidden", "16", "--limit", "200", "--batch-size", "20",
         "--optimizer", "sgd", "--no-progress"]


def _train(tmp_path, *args, timeout=120):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (ROOT, os.environ.get("PYTHONPATH")) if p))
    return subprocess.run([sys.executable, "-m", "shendu.cli", "train", *args],
                          capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=str(tmp_path))


def _params(folder):
    return {k: np.asarray(v) for k, v in sd.load(os.path.join(folder, "checkpoint.sd"))
            ["model"].items()}


needs_mpi = pytest.mark.skipif(MPI_MISSING is not None, reason=str(MPI_MISSING))


@needs_mpi
def test_two_ranks_match_one_rank_with_the_same_global_batch(tmp_path):
    exact = [*SMALL, "--epochs", "2", "--dropout", "0", "--no-augment"]
    two = _train(tmp_path, "--nproc", "2", *exact, "--out", str(tmp_path / "two"))
    assert two.returncode == 0, two.stdout + two.stderr
    one = _train(tmp_path, "--nproc", "1", *exact, "--out", str(tmp_path / "one"))
    assert one.returncode == 0, one.stdout + one.stderr
    # rank 0 alone speaks and writes: one set of files, no output from rank 1
    assert rank_lines(two.stdout, 1) == []
    assert any("Test accuracy" in line for line in rank_lines(two.stdout, 0))
    assert sorted(os.listdir(tmp_path / "two")) == sorted(os.listdir(tmp_path / "one"))
    with open(tmp_path / "two" / "metrics.json") as f:
        metrics = json.load(f)
    dp = metrics["data_parallel"]
    assert dp["world_size"] == 2 and dp["per_rank_batch"] == 10
    assert dp["replicas_identical"] and len(set(dp["replica_digests"])) == 1
    # 2 x 10 samples averaged over ranks vs one mean over 20: the same gradient up to the
    # summation order, a few float32 ulps per step (|w| < 1, 18 SGD steps of lr 0.05)
    a, b = _params(tmp_path / "two"), _params(tmp_path / "one")
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=0, atol=2e-5, err_msg=k)
    # the all-reduced metrics are the whole sets' (same model up to rounding, same data)
    with open(tmp_path / "one" / "metrics.json") as f:
        ref = json.load(f)
    assert metrics["data"]["sizes"] == ref["data"]["sizes"]
    assert metrics["test"]["acc"] == pytest.approx(ref["test"]["acc"], abs=1 / 200)
    assert metrics["test"]["loss"] == pytest.approx(ref["test"]["loss"], rel=1e-4)


@needs_mpi
def test_resumed_two_rank_run_ends_where_the_uninterrupted_one_does(tmp_path):
    noisy = [*SMALL, "--nproc", "2", "--dropout", "0.3", "--schedule", "none"]
    full = _train(tmp_path, *noisy, "--epochs", "2", "--out", str(tmp_path / "full"))
    assert full.returncode == 0, full.stdout + full.stderr
    half = _train(tmp_path, *noisy, "--epochs", "1", "--out", str(tmp_path / "part"))
    assert half.returncode == 0, half.stdout + half.stderr
    rest = _train(tmp_path, "--nproc", "2", "--no-progress", "--epochs", "2",
                  "--resume", str(tmp_path / "part" / "checkpoint.sd"))
    assert rest.returncode == 0, rest.stdout + rest.stderr
    assert "Resuming from" in "\n".join(rank_lines(rest.stdout, 0))
    a, b = _params(tmp_path / "full"), _params(tmp_path / "part")
    for k in a:   # each rank got its own dropout/augmentation streams back
        assert np.array_equal(a[k], b[k]), k


def test_global_batch_must_split_over_the_ranks(tmp_path):
    res = _train(tmp_path, "--nproc", "3", "--batch-size", "32", "--epochs", "1")
    assert res.returncode == 2
    assert "--batch-size 32 is the global batch" in res.stderr and "--nproc 3" in res.stderr
