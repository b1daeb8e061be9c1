"""``shendu run``: start a script on N ranks through ``mpiexec`` and own the job.

``mpiexec`` is looked up next to this Python first (the ``mpich`` wheel installs it in the
environment's scripts folder, which need not be on PATH), then on PATH; ``--mpiexec`` or
``SHENDU_MPIEXEC`` name another. Each rank runs ``shendu.distributed._rank``, which sets
``RANK``/``WORLD_SIZE``/``LOCAL_RANK``, prefixes its output with ``[rankN]: `` and aborts
the job when its script fails. The launcher ends ``mpiexec`` (which ends its ranks) on
Ctrl-C, SIGTERM or ``--timeout``, then kills any rank that outlived it, so no process is
left behind; the job's exit status is the failing rank's.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
import uuid

__all__ = ["find_mpiexec", "build_command", "main"]


def find_mpiexec(explicit: str | None = None) -> str:
    """Path of the ``mpiexec`` to use; raises FileNotFoundError with the fix if none."""
    explicit = explicit or os.environ.get("SHENDU_MPIEXEC")
    if explicit:
        path = shutil.which(explicit)
        if path is None:
            raise FileNotFoundError(f"shendu run: mpiexec {explicit!r} was not found")
        return path
    for folder in (sysconfig.get_path("scripts"), os.path.dirname(sys.executable)):
        cand = os.path.join(folder, "mpiexec")
        if os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    path = shutil.which("mpiexec")
    if path is None:
        raise FileNotFoundError(
            "shendu run: no MPI found (no mpiexec next to this Python or on PATH). Install "
            "one with: pip install 'shendu[distributed]' (mpi4py and the mpich wheel), or "
            "load your cluster's MPI module, or name it with --mpiexec PATH")
    return path


def _flavor(mpiexec: str) -> str:
    try:
        out = subprocess.run([mpiexec, "--version"], capture_output=True, text=True,
                             timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return "hydra"
    return "openmpi" if ("Open MPI" in out or "OpenRTE" in out) else "hydra"


_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                "NUMBA_NUM_THREADS")


def build_command(mpiexec: str, nproc: int, script: str, args: list[str],
                  hosts: str | None = None, flavor: str = "hydra",
                  env_names: list[str] = ()) -> list[str]:
    """The ``mpiexec`` command line that runs ``script`` on ``nproc`` ranks.

    Example:
        >>> build_command("mpiexec", 2, "train.py", ["--lr", "0.1"])[:3]
        ['mpiexec', '-n', '2']
    """
    cmd = [mpiexec, "-n", str(nproc)]
    if hosts:
        cmd += ["--hostfile", hosts] if flavor == "openmpi" else ["-f", hosts]
    if flavor == "openmpi":  # Open MPI forwards only the variables it is told to
        for name in env_names:
            cmd += ["-x", name]
    return cmd + [sys.executable, "-u", "-m", "shendu.distributed._rank", script, *args]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="shendu run", description="Run a script on N processes through mpiexec "
        "(MPI). In the script: shendu.distributed.init_process_group('mpi').")
    p.add_argument("--nproc", "--nproc-per-node", dest="nproc", type=int, required=True,
                   help="number of ranks")
    p.add_argument("--hosts", help="hostfile for mpiexec (one host[:slots] per line)")
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads per rank (OMP/MKL/numba; default 1: a rank blocked "
                   "in a collective spins a core)")
    p.add_argument("--timeout", type=float, default=None,
                   help="end the job after this many seconds (exit status 124)")
    p.add_argument("--mpiexec", help="the mpiexec to use (default: next to this Python, "
                   "then PATH)")
    p.add_argument("script", help="Python script to run on every rank")
    p.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the script")
    return p


def _alive_ours(pid: int, job: str) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return f"SHENDU_RUN_JOB={job}".encode() in f.read().split(b"\0")
    except OSError:
        return False


def _end(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """Ask mpiexec to end its ranks (it forwards the signal and cleans up), then insist."""
    if proc.poll() is not None:
        return
    try:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``shendu run``; returns the job's exit status."""
    args = _parser().parse_args(argv)
    if args.nproc < 1:
        print(f"shendu run: error: --nproc must be at least 1, got {args.nproc}",
              file=sys.stderr)
        return 2
    if not os.path.isfile(args.script):
        print(f"shendu run: error: script {args.script!r} not found", file=sys.stderr)
        return 2
    if args.hosts and not os.path.isfile(args.hosts):
        print(f"shendu run: error: hostfile {args.hosts!r} not found", file=sys.stderr)
        return 2
    try:
        mpiexec = find_mpiexec(args.mpiexec)
    except FileNotFoundError as exc:
        print(exc, file=sys.stderr)
        return 127
    job = uuid.uuid4().hex
    piddir = tempfile.mkdtemp(prefix="shendu-run-")
    env = dict(os.environ)
    for name in _THREAD_VARS:
        env.setdefault(name, str(args.threads))
    env.update(PYTHONUNBUFFERED="1", SHENDU_RUN_JOB=job, SHENDU_RUN_PIDDIR=piddir,
               SHENDU_RUN_NPROC=str(args.nproc))
    # the ranks import shendu from wherever this launcher did
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    names = [*_THREAD_VARS, "PYTHONUNBUFFERED", "PYTHONPATH", "SHENDU_RUN_JOB",
             "SHENDU_RUN_PIDDIR", "SHENDU_RUN_NPROC"]
    cmd = build_command(mpiexec, args.nproc, args.script, args.args, args.hosts,
                        _flavor(mpiexec), names)
    # mpiexec gets its own session so a terminal's Ctrl-C reaches only the launcher, which
    # then ends the job in order (signalling a proxy or rank first would orphan the rest)
    shm_before = _shm_segments()
    proc = subprocess.Popen(cmd, env=env, start_new_session=True)
    stopping = []

    def on_signal(signum, frame):
        stopping.append(signum)
        raise KeyboardInterrupt
    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGHUP)}
    code = None
    try:
        deadline = None if args.timeout is None else time.monotonic() + args.timeout
        while code is None:
            try:
                code = proc.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                if deadline is not None and time.monotonic() > deadline:
                    print(f"shendu run: the job ran past --timeout {args.timeout:g} s; "
                          "ending it", file=sys.stderr)
                    _end(proc)
                    code = 124
    except KeyboardInterrupt:
        _end(proc)
        code = 128 + (stopping[0] if stopping else signal.SIGINT)
    finally:
        if proc.poll() is None:
            _end(proc)
        for s, h in old.items():
            signal.signal(s, h)
        _reap(piddir, job)
    if code != 0:  # an abnormal end leaves MPICH's shared-memory segments behind
        _remove_shm(_shm_segments() - shm_before)
    if code < 0:  # mpiexec itself died of a signal
        code = 128 - code
    return code


def _shm_segments() -> set[str]:
    try:
        return {n for n in os.listdir("/dev/shm") if n.startswith("mpich_shm_")}
    except OSError:
        return set()


def _remove_shm(names) -> None:
    uid = os.getuid()
    for name in names:
        path = os.path.join("/dev/shm", name)
        try:
            if os.stat(path).st_uid == uid:
                os.remove(path)
        except OSError:
            pass


def _reap(piddir: str, job: str) -> None:
    """Kill any rank of this job that outlived mpiexec, then remove the pid folder."""
    try:
        names = os.listdir(piddir)
    except OSError:
        return
    for name in names:
        path = os.path.join(piddir, name)
        try:
            with open(path) as f:
                pid = int(f.read().strip() or 0)
        except (OSError, ValueError):
            pid = 0
        if pid and _alive_ours(pid, job):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            os.remove(path)
        except OSError:
            pass
    try:
        os.rmdir(piddir)
    except OSError:
        pass


if __name__ == "__main__":
    sys.exit(main())
