"""``shendu run`` fault tolerance: progress heartbeats (``--heartbeat-timeout``: a hung job
ends with exit 125 naming the rank that stopped; a rank that beats, waits or has finished
is not hung) and ``--max-restarts`` (a failed job starts again and resumes from its
checkpoint to the uninterrupted result; ``--timeout`` and signals are final)."""
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from mpijob import MPI_MISSING, ROOT, ps_has, rank_lines
from test_dist_checkpoint import TRAIN

from shendu.distributed import _heartbeat, launcher

HANG = """
import time
import shendu as sd
import shendu.distributed as dist
dist.init_process_group("mpi")
t = sd.ones(2)
dist.all_reduce(t)
print("first all_reduce done")
if dist.get_rank() == 1:
    time.sleep(600)          # hung: no progress, outside any collective
dist.all_reduce(t)           # rank 0 waits here for rank 1
print("unreachable")
"""


def test_hung_rank_ends_the_job_with_125_and_is_named(run_job, tmp_path):
    tmp = tmp_path / "tmp"       # the launcher's job folders go here: none may stay
    tmp.mkdir()
    res = run_job(HANG, timeout=40, launcher_args=("--heartbeat-timeout", "2"),
                  env={"TMPDIR": str(tmp)})
    assert res.returncode == 125, res.stdout + res.stderr
    assert rank_lines(res.stdout, 1) == ["first all_reduce done"]
    assert "unreachable" not in res.stdout
    assert "shendu run: rank 1 made no progress for" in res.stderr, res.stderr
    assert "declared hung; rank 0 waited for it" in res.stderr
    assert not ps_has(str(tmp_path / "job.py")), "a rank outlived its job"
    assert not [p.name for p in tmp.iterdir() if p.name.startswith("shendu-run-")]


BUSY = """
import time
import shendu.distributed as dist
dist.init_process_group("mpi")

def work(seconds):                 # long work without communication, but beating
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.2)
        dist.heartbeat()

dist.barrier()                     # every rank has beaten: the launcher watches them all
if dist.get_rank() == 0:
    work(2)                        # rank 1 waits in the barrier meanwhile
dist.barrier()
if dist.get_rank() == 0:
    work(2)                        # rank 1 has finished its script meanwhile
print("done", dist.heartbeat() > 10 if dist.get_rank() == 0 else "")
dist.destroy_process_group()
"""


def test_beating_waiting_and_finished_ranks_are_not_hung(run_job):
    res = run_job(BUSY, launcher_args=("--heartbeat-timeout", "1"))
    assert res.returncode == 0, res.stdout + res.stderr
    assert rank_lines(res.stdout, 0) == ["done True"], res.stdout
    assert rank_lines(res.stdout, 1) == ["done "], res.stdout
    assert "hung" not in res.stderr


def test_failed_job_restarts_and_resumes_to_the_uninterrupted_result(run_job, tmp_path):
    # attempt 0 SIGKILLs rank 1 two steps after its checkpoint; attempt 1 resumes from it
    auto = TRAIN.replace('mode = sys.argv[1] ', 'mode = ["crash", "resume"]'
                         '[int(os.environ["SHENDU_RESTART_COUNT"])] ')
    assert auto != TRAIN
    full = run_job(TRAIN, args=("full",))
    assert full.returncode == 0, full.stdout + full.stderr
    res = run_job(auto, launcher_args=("--max-restarts", "1"))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "restarting it (restart 1 of 1, SHENDU_RESTART_COUNT=1)" in res.stderr
    for rank in (0, 1):
        lines = rank_lines(res.stdout, rank)
        assert lines[-2] == "resumed at 6 1 2", res.stdout
        assert lines[-1] == rank_lines(full.stdout, rank)[0]
        assert lines[-1].startswith("done 15 ")
    a, b = np.load(tmp_path / "final_full.npy"), np.load(tmp_path / "final_resume.npy")
    assert a.tobytes() == b.tobytes()           # bit for bit, not merely close


COUNT = """
import os, sys, time
import shendu.distributed as dist
n = int(os.environ["SHENDU_RESTART_COUNT"])
print("attempt", n, os.environ["SHENDU_MAX_RESTARTS"])
{body}
"""


def test_restarts_run_out_with_the_last_failing_status(run_job):
    # attempt 0 hangs (beat once, then stuck), attempt 1 fails with status 3: both restart,
    # and the last one's status is the job's
    body = "if n == 0:\n    dist.heartbeat()\n    time.sleep(600)\nsys.exit(3)"
    res = run_job(COUNT.format(body=body), nproc=1,
                  launcher_args=("--heartbeat-timeout", "1", "--max-restarts", "1"))
    assert res.returncode == 3, res.stdout + res.stderr
    assert rank_lines(res.stdout, 0) == ["attempt 0 1", "attempt 1 1"]
    assert "the job hung (exit status 125); restarting it (restart 1 of 1" in res.stderr


def test_timeout_is_final(run_job):
    res = run_job(COUNT.format(body="time.sleep(600)"), nproc=1, timeout=2,
                  launcher_args=("--max-restarts", "3"))
    assert res.returncode == 124, res.stdout + res.stderr
    assert rank_lines(res.stdout, 0) == ["attempt 0 3"]
    assert "restarting" not in res.stderr


def test_sigterm_is_final(tmp_path):
    if MPI_MISSING is not None:
        pytest.skip(MPI_MISSING)
    script = tmp_path / "job.py"
    script.write_text("import time\nprint('ready', flush=True)\ntime.sleep(600)\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (ROOT, os.environ.get("PYTHONPATH")) if p))
    proc = subprocess.Popen([sys.executable, "-m", "shendu.cli", "run", "--nproc", "1",
                             "--timeout", "60", "--max-restarts", "3", str(script)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    try:
        assert proc.stdout.readline().endswith("ready\n")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 128 + signal.SIGTERM, err
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "ready" not in out and "restarting" not in err
    assert not ps_has(str(script))


@pytest.mark.parametrize("args, text", [
    (["--max-restarts", "-1"], "--max-restarts must be at least 0"),
    (["--heartbeat-timeout", "-1"], "--heartbeat-timeout must be >= 0"),
    (["--timeout", "0"], "--timeout must be positive"),
    (["--max-restarts", "two"], "invalid int value: 'two'"),
])
def test_bad_fault_tolerance_arguments(tmp_path, capsys, args, text):
    (tmp_path / "s.py").write_text("")
    try:
        code = launcher.main(["--nproc", "2", *args, str(tmp_path / "s.py")])
    except SystemExit as exc:       # argparse's own errors
        code = exc.code
    assert code == 2
    assert text in capsys.readouterr().err


def _beat_file(folder, rank, count, state):
    (folder / f"rank{rank}.beat").write_bytes(b"%020d %s\n" % (count, state))


def test_watch_judges_the_job_not_each_rank(tmp_path, monkeypatch):
    now = [100.0]
    monkeypatch.setattr(launcher.time, "monotonic", lambda: now[0])
    watch = launcher._Watch(str(tmp_path), 3, 2.0)
    _beat_file(tmp_path, 0, 5, b"w")
    _beat_file(tmp_path, 1, 7, b"r")
    assert watch.check() is None
    now[0] += 10
    assert watch.check() is None              # rank 2 has not beaten yet: no judging
    _beat_file(tmp_path, 2, 1, b"d")          # rank 2 finished
    now[0] += 1
    assert watch.check() == (
        "rank 1 made no progress for 11.0 s outside communication (--heartbeat-timeout 2 s),"
        " declared hung; rank 0 waited for it; rank 2 had already finished")
    _beat_file(tmp_path, 1, 8, b"r")          # rank 1 moves: the job makes progress
    assert watch.check() is None
    now[0] += 1.5
    _beat_file(tmp_path, 1, 9, b"w")          # now rank 1 waits too: a deadlock, once
    assert watch.check() is None
    now[0] += 2.5
    assert "every running rank (0, 1) has waited in communication" in watch.check()
    _beat_file(tmp_path, 0, 6, b"d")
    _beat_file(tmp_path, 1, 10, b"d")
    assert watch.check() is None              # all finished
    assert launcher._Watch(str(tmp_path), 2, 0).check() is None   # 0: off


def test_heartbeat_file_and_reap(tmp_path, monkeypatch):
    folder = tmp_path / "job"
    folder.mkdir()
    path = folder / "rank0.beat"
    for name, value in (("_PATH", None), ("_FD", None), ("_DONE", False)):
        monkeypatch.setattr(_heartbeat, name, value)
    n = _heartbeat.heartbeat()
    assert not path.exists()                  # outside shendu run: only the counter
    _heartbeat._start(str(path))
    assert _heartbeat.heartbeat() == n + 1
    assert path.read_bytes() == b"%020d r\n" % (n + 1)
    with _heartbeat._waiting():
        assert path.read_bytes() == b"%020d w\n" % (n + 2)
    _heartbeat._finish()
    _heartbeat.heartbeat()                    # after the script: no more writes
    assert path.read_bytes() == b"%020d d\n" % (n + 3)
    # a beat file never passes for a pid file, and the job folder goes, whatever it holds
    _beat_file(folder, 1, os.getpid(), b"r")
    (folder / "rank0.pid").write_text("not a pid")
    launcher._reap(str(folder), "no-such-job")
    assert not folder.exists()
