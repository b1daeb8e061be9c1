"""``shendu run``: start a script on N ranks through ``mpiexec`` and own the job.

``mpiexec`` is looked up next to this Python first (the ``mpich`` wheel installs it in the
environment's scripts folder, which need not be on PATH), then on PATH; ``--mpiexec`` or
``SHENDU_MPIEXEC`` name another. Each rank runs ``shendu.distributed._rank``, which sets
``RANK``/``WORLD_SIZE``/``LOCAL_RANK``, prefixes its output with ``[rankN]: `` and aborts
the job when its script fails. The launcher ends ``mpiexec`` (which ends its ranks) on
Ctrl-C, SIGTERM or ``--timeout``, then kills any rank that outlived it, so no process is
left behind; the job's exit status is the failing rank's. It also watches the ranks'
progress heartbeats (``--heartbeat-timeout``, see ``_heartbeat``) and can start a failed
or hung job again (``--max-restarts``), each attempt in a fresh job folder.
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
        "(MPI). In the script: shendu.distributed.init_process_group('mpi').",
        epilog="Exit status: the failing rank's; 124 after --timeout, 125 when the job "
        "hung, 128+N after signal N, 2 for bad arguments.")
    p.add_argument("--nproc", "--nproc-per-node", dest="nproc", type=int, required=True,
                   help="number of ranks")
    p.add_argument("--hosts", help="hostfile for mpiexec (one host[:slots] per line)")
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads per rank (OMP/MKL/numba; default 1: one rank per "
                   "core, whose threads would otherwise compete with the other ranks)")
    p.add_argument("--timeout", type=float, default=None,
                   help="end the job after this many seconds, restarts included (exit "
                   "status 124; never restarted)")
    p.add_argument("--heartbeat-timeout", type=float, default=300.0, metavar="S",
                   help="end the job when no running rank has made progress for S seconds "
                   "(exit status 125). Progress is a heartbeat: every collective, send/recv, "
                   "barrier and DDP forward beats; a long loop without them calls "
                   "shendu.distributed.heartbeat(). Watching starts at every rank's first "
                   "beat (slow imports are no hang); stderr names the rank that stopped "
                   "outside communication. Default 300; 0: off")
    p.add_argument("--max-restarts", type=int, default=0, metavar="K",
                   help="start the job again, up to K times, when it fails (a rank failed, "
                   "died or hung); never after --timeout, Ctrl-C or SIGTERM. Each attempt "
                   "sees SHENDU_RESTART_COUNT=0,1,...; a script resumes from its last "
                   "shendu.distributed.checkpoint when that file exists. The exit status is "
                   "the last attempt's")
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


HUNG_EXIT = 125  # the exit status when the job stopped making progress


def _check_args(args) -> str | None:
    if args.nproc < 1:
        return f"--nproc must be at least 1, got {args.nproc}"
    if args.max_restarts < 0:
        return f"--max-restarts must be at least 0, got {args.max_restarts}"
    if args.heartbeat_timeout < 0:
        return (f"--heartbeat-timeout must be >= 0 (0 turns the watch off), got "
                f"{args.heartbeat_timeout:g}")
    if args.timeout is not None and args.timeout <= 0:
        return f"--timeout must be positive, got {args.timeout:g}"
    if not os.path.isfile(args.script):
        return f"script {args.script!r} not found"
    if args.hosts and not os.path.isfile(args.hosts):
        return f"hostfile {args.hosts!r} not found"
    return None


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``shendu run``; returns the job's exit status."""
    args = _parser().parse_args(argv)
    error = _check_args(args)
    if error:
        print(f"shendu run: error: {error}", file=sys.stderr)
        return 2
    try:
        mpiexec = find_mpiexec(args.mpiexec)
    except FileNotFoundError as exc:
        print(exc, file=sys.stderr)
        return 127
    flavor = _flavor(mpiexec)
    # --timeout bounds the whole run, restarts included
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    # SIGTERM/SIGHUP become KeyboardInterrupt, like Ctrl-C, for the whole run (restarts and
    # the moments between them included), so every way of stopping us ends the job in order
    stopping = []

    def on_signal(signum, frame):
        stopping.append(signum)
        raise KeyboardInterrupt
    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        attempt = 0
        while True:
            code, why = _attempt(args, mpiexec, flavor, attempt, deadline)
            # success and --timeout are final (so is a signal: see below)
            if why in ("ok", "timeout") or attempt == args.max_restarts:
                return code
            attempt += 1
            print(f"shendu run: the job {why} (exit status {code}); restarting it "
                  f"(restart {attempt} of {args.max_restarts}, "
                  f"SHENDU_RESTART_COUNT={attempt})", file=sys.stderr, flush=True)
    except KeyboardInterrupt:   # the user's Ctrl-C or signal: final, never restarted
        return 128 + (stopping[0] if stopping else signal.SIGINT)
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _attempt(args, mpiexec: str, flavor: str, attempt: int, deadline) -> tuple[int, str]:
    """Run the job once; returns its exit status and how it ended: ``ok``, ``failed``
    (a rank failed or died), ``hung`` (``--heartbeat-timeout``) or ``timeout``. A
    KeyboardInterrupt (Ctrl-C, SIGTERM) ends the job and goes on up."""
    job = uuid.uuid4().hex
    piddir = tempfile.mkdtemp(prefix="shendu-run-")   # pid and heartbeat files; one per try
    env = dict(os.environ)
    for name in _THREAD_VARS:
        env.setdefault(name, str(args.threads))
    env.update(PYTHONUNBUFFERED="1", SHENDU_RUN_JOB=job, SHENDU_RUN_PIDDIR=piddir,
               SHENDU_RUN_NPROC=str(args.nproc), SHENDU_HEARTBEAT_DIR=piddir,
               SHENDU_RESTART_COUNT=str(attempt), SHENDU_MAX_RESTARTS=str(args.max_restarts))
    # the ranks import shendu from wherever this launcher did
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    names = [*_THREAD_VARS, "PYTHONUNBUFFERED", "PYTHONPATH", "SHENDU_RUN_JOB",
             "SHENDU_RUN_PIDDIR", "SHENDU_RUN_NPROC", "SHENDU_HEARTBEAT_DIR",
             "SHENDU_RESTART_COUNT", "SHENDU_MAX_RESTARTS"]
    cmd = build_command(mpiexec, args.nproc, args.script, args.args, args.hosts, flavor,
                        names)
    watch = _Watch(piddir, args.nproc, args.heartbeat_timeout)
    # mpiexec gets its own session so a terminal's Ctrl-C reaches only the launcher, which
    # then ends the job in order (signalling a proxy or rank first would orphan the rest)
    shm_before = _shm_segments()
    proc = None
    code, why = None, "failed"
    try:
        proc = subprocess.Popen(cmd, env=env, start_new_session=True)
        while code is None:
            try:
                code = proc.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                if deadline is not None and time.monotonic() > deadline:
                    print(f"shendu run: the job ran past --timeout {args.timeout:g} s; "
                          "ending it", file=sys.stderr, flush=True)
                    _end(proc)
                    code, why = 124, "timeout"
                elif (hung := watch.check()) is not None:
                    print(f"shendu run: {hung}; ending the job (exit status {HUNG_EXIT})",
                          file=sys.stderr, flush=True)
                    _end(proc)
                    code, why = HUNG_EXIT, "hung"
    finally:   # also on KeyboardInterrupt: no rank, file or segment outlives the try
        if proc is not None and proc.poll() is None:
            _end(proc)
        _reap(piddir, job)
        if code != 0:  # an abnormal end leaves MPICH's shared-memory segments behind
            _remove_shm(_shm_segments() - shm_before)
    if code < 0:  # mpiexec itself died of a signal
        code = 128 - code
    return code, ("ok" if code == 0 else why)


class _Watch:
    """Reads the ranks' heartbeat files (see ``_heartbeat``) and says when the job hangs.

    The job is hung when no rank that is still running has beaten for ``timeout`` seconds.
    A rank waiting in a collective is silent too, but it is not judged on its own: it may
    be waiting for a rank busy with long work that calls ``heartbeat()``. Judging starts
    once every rank has beaten (or finished), so slow imports and data loading before the
    first beat are never a hang, and with ``--hosts`` ranks on other machines (which cannot
    write here) keep it off. Times are the launcher's own clock at which it saw each count
    change, so the ranks' clocks never matter."""

    def __init__(self, folder: str, nproc: int, timeout: float):
        self.folder, self.nproc, self.timeout = folder, nproc, timeout
        self.seen: dict[int, tuple[bytes, bytes, float]] = {}   # rank: count, state, when

    def _read(self) -> dict[int, tuple[bytes, bytes]]:
        beats = {}
        for rank in range(self.nproc):
            try:
                with open(os.path.join(self.folder, f"rank{rank}.beat"), "rb") as f:
                    count, state = f.read().split()
            except (OSError, ValueError):   # no beat yet (or a file being created)
                continue
            beats[rank] = count, state
        return beats

    def check(self) -> str | None:
        """None while the job makes progress, else why it is taken for hung."""
        if not self.timeout:
            return None
        now = time.monotonic()
        for rank, (count, state) in self._read().items():
            if rank not in self.seen or self.seen[rank][:2] != (count, state):
                self.seen[rank] = (count, state, now)
        if len(self.seen) < self.nproc:
            return None
        live = {r: (state, now - t) for r, (_, state, t) in self.seen.items() if state != b"d"}
        if not live or min(q for _, q in live.values()) <= self.timeout:
            return None
        stuck = sorted(r for r, (state, _) in live.items() if state == b"r")
        waiting = sorted(r for r, (state, _) in live.items() if state == b"w")
        finished = sorted(set(self.seen) - set(live))
        names = ", ".join(map(str, stuck or waiting))
        quiet = max(live[r][1] for r in stuck or waiting)
        if stuck:
            msg = (f"rank {names} made no progress for {quiet:.1f} s outside communication "
                   f"(--heartbeat-timeout {self.timeout:g} s), declared hung")
            if waiting:
                msg += f"; rank {', '.join(map(str, waiting))} waited for it"
        else:
            msg = (f"every running rank ({names}) has waited in communication for "
                   f"{quiet:.1f} s (--heartbeat-timeout {self.timeout:g} s): a deadlock "
                   "or mismatched calls")
        if finished:
            msg += f"; rank {', '.join(map(str, finished))} had already finished"
        return msg


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
    """Kill any rank of this job that outlived mpiexec, then remove the job's folder."""
    try:
        names = os.listdir(piddir)
    except OSError:
        return
    for name in names:
        if not name.endswith(".pid"):   # heartbeat files hold counts, not pids
            continue
        try:
            with open(os.path.join(piddir, name)) as f:
                pid = int(f.read().strip() or 0)
        except (OSError, ValueError):
            continue
        if pid and _alive_ours(pid, job):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    # rmtree, not a listing's files: a rank killed just now may have made a file since
    shutil.rmtree(piddir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
