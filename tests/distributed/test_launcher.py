"""``shendu run``: rank environment, prefixed output, exit codes, timeouts, and no process
left behind."""
import os
import subprocess

import pytest
from mpijob import ps_has as _ps_has
from mpijob import rank_lines

ENV = """
import os, sys
import shendu.distributed as dist
dist.init_process_group("mpi")
print(os.environ["RANK"], os.environ["WORLD_SIZE"], os.environ["LOCAL_RANK"],
      os.environ["OMP_NUM_THREADS"], dist.get_rank(), " ".join(sys.argv[1:]))
print("partial", end="")
print(" line")
dist.destroy_process_group()
"""


def test_ranks_get_environment_args_and_prefixes(run_job):
    res = run_job(ENV, args=("--lr", "0.5"))
    assert res.returncode == 0, res.stdout + res.stderr
    for r in (0, 1):
        assert rank_lines(res.stdout, r) == [f"{r} 2 {r} 1 {r} --lr 0.5", "partial line"]


FAIL = """
import sys, time
import shendu.distributed as dist
dist.init_process_group("mpi")
if dist.get_rank() == 1:
    {action}
dist.barrier()      # rank 0 waits here for a rank that never comes
print("unreachable")
"""


@pytest.mark.parametrize("action, code, text", [
    ("sys.exit(7)", 7, None),
    ("raise ValueError('boom in rank one')", 1, "ValueError: boom in rank one"),
])
def test_failing_rank_ends_job_with_its_code(run_job, tmp_path, action, code, text):
    res = run_job(FAIL.format(action=action), timeout=40)
    assert res.returncode == code, res.stdout + res.stderr
    assert "unreachable" not in res.stdout
    if text:
        assert any(text in line for line in rank_lines(res.stderr, 1)), res.stderr
    assert not _ps_has(str(tmp_path / "job.py")), "a rank outlived its job"


def test_hanging_job_ends_at_timeout_without_survivors(run_job, tmp_path):
    marker = "sleep_forever_marker"
    res = run_job(f"import time\n{marker} = 1\ntime.sleep(600)\n", timeout=3)
    assert res.returncode == 124, res.stdout + res.stderr
    assert "ran past --timeout 3 s" in res.stderr
    assert not _ps_has(str(tmp_path / "job.py"))


def test_no_mpiexec_says_how_to_install(tmp_path, monkeypatch, capsys):
    from shendu.distributed import launcher
    (tmp_path / "s.py").write_text("")
    monkeypatch.delenv("SHENDU_MPIEXEC", raising=False)
    monkeypatch.setattr(launcher.sysconfig, "get_path", lambda name: str(tmp_path))
    monkeypatch.setattr(launcher.sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    assert launcher.main(["--nproc", "2", str(tmp_path / "s.py")]) == 127
    err = capsys.readouterr().err
    assert "no MPI found" in err and "shendu[distributed]" in err


def test_bad_arguments(tmp_path, capsys):
    from shendu.distributed import launcher
    assert launcher.main(["--nproc", "2", str(tmp_path / "missing.py")]) == 2
    assert "not found" in capsys.readouterr().err
    (tmp_path / "s.py").write_text("")
    assert launcher.main(["--nproc", "0", str(tmp_path / "s.py")]) == 2
    assert "at least 1" in capsys.readouterr().err


def test_hostfile_goes_to_mpiexec():
    from shendu.distributed.launcher import build_command
    hydra = build_command("mpiexec", 4, "t.py", ["-x"], hosts="hosts.txt")
    assert hydra[:5] == ["mpiexec", "-n", "4", "-f", "hosts.txt"] and hydra[-2:] == ["t.py", "-x"]
    ompi = build_command("mpiexec", 4, "t.py", [], hosts="h", flavor="openmpi",
                         env_names=["RANKVAR"])
    assert ompi[3:7] == ["--hostfile", "h", "-x", "RANKVAR"]


def test_hostfile_run_on_localhost(run_job, tmp_path):
    hosts = tmp_path / "hosts"
    hosts.write_text("localhost:2\n")
    res = run_job("import os\nprint(os.environ['RANK'])\n", launcher_args=("--hosts", str(hosts)))
    assert res.returncode == 0, res.stdout + res.stderr
    assert rank_lines(res.stdout, 0) == ["0"] and rank_lines(res.stdout, 1) == ["1"]
    assert os.path.exists(hosts)


def test_sigterm_to_launcher_ends_every_rank(tmp_path):
    import signal
    import sys

    from mpijob import MPI_MISSING, ROOT
    if MPI_MISSING is not None:
        pytest.skip(MPI_MISSING)
    script = tmp_path / "job.py"
    script.write_text("import time\nprint('ready', flush=True)\ntime.sleep(600)\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (ROOT, os.environ.get("PYTHONPATH")) if p))
    proc = subprocess.Popen([sys.executable, "-m", "shendu.cli", "run", "--nproc", "2",
                             "--timeout", "60", str(script)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        seen = 0
        while seen < 2:                  # both ranks are up
            line = proc.stdout.readline()
            assert line, "the job ended before its ranks started"
            seen += line.endswith("ready\n")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not _ps_has(str(script))
