"""What ``mpiexec`` runs on each rank for ``shendu run``: set the rank's environment,
prefix its output with the rank, run the user's script as ``__main__``, and on an
uncaught error abort the whole MPI job (so the other ranks do not wait forever in a
collective) with the failing rank's exit code.

Run as ``python -m shendu.distributed._rank script.py args...``.
"""
from __future__ import annotations

import os
import runpy
import sys
import time
import traceback


def _rank_env() -> tuple[int, int]:
    env = os.environ
    # MPICH/Intel MPI (hydra) set PMI_*, Open MPI sets OMPI_COMM_WORLD_*
    rank = env.get("PMI_RANK", env.get("OMPI_COMM_WORLD_RANK", "0"))
    size = env.get("PMI_SIZE", env.get("OMPI_COMM_WORLD_SIZE", "1"))
    local = env.get("MPI_LOCALRANKID", env.get("OMPI_COMM_WORLD_LOCAL_RANK", rank))
    nlocal = env.get("MPI_LOCALNRANKS", env.get("OMPI_COMM_WORLD_LOCAL_SIZE", size))
    env.update(RANK=rank, WORLD_SIZE=size, LOCAL_RANK=local, LOCAL_WORLD_SIZE=nlocal)
    return int(rank), int(size)


def launched(name: str, default: int) -> int:
    """``RANK``, ``LOCAL_RANK``, ... as ``shendu run`` set them for this rank, else
    ``default`` (a process started without the launcher)."""
    return int(os.environ.get(name, default))


class _Prefixed:
    """A text stream that starts every line it writes with ``[rankN]: ``.

    Whole lines go out in one write, so the lines of two ranks never mix mid-line."""

    def __init__(self, stream, prefix: str):
        self._stream, self._prefix, self._pending = stream, prefix, ""

    def write(self, s: str) -> int:
        text = self._pending + s
        cut = text.rfind("\n") + 1
        self._pending = text[cut:]
        if cut:
            lines = text[:cut].splitlines(keepends=True)
            self._stream.write("".join(self._prefix + line for line in lines))
            self._stream.flush()
        return len(s)

    def flush(self):
        if self._pending:
            self._stream.write(self._prefix + self._pending)
            self._pending = ""
        self._stream.flush()

    def __getattr__(self, name):
        return getattr(self._stream, name)


ABORT_GRACE_S = 0.3  # seconds between a failing rank's last output and MPI_Abort


def _abort(code: int) -> None:
    """End every rank of the job if MPI is up and there are other ranks."""
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is not None and mpi.Is_initialized() and not mpi.Is_finalized():
        if mpi.COMM_WORLD.Get_size() > 1:
            sys.stdout.flush()
            sys.stderr.flush()
            # hydra's proxy forwards a rank's output asynchronously and drops what it has
            # not forwarded when the abort kills the job (a traceback lost all but its
            # first line, about once in 40 runs): give it a moment to catch up
            time.sleep(ABORT_GRACE_S)
            mpi.COMM_WORLD.Abort(code)


def _write_pid(rank: int) -> None:
    piddir = os.environ.get("SHENDU_RUN_PIDDIR")
    if piddir and os.path.isdir(piddir):
        with open(os.path.join(piddir, f"rank{rank}.pid"), "w") as f:
            f.write(str(os.getpid()))


def _start_heartbeat(rank: int) -> None:
    folder = os.environ.get("SHENDU_HEARTBEAT_DIR")
    if folder and os.path.isdir(folder):   # not on another host, where it does not exist
        from ._heartbeat import _start
        _start(os.path.join(folder, f"rank{rank}.beat"))


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m shendu.distributed._rank script.py [args...]", file=sys.stderr)
        return 2
    rank, _ = _rank_env()
    _write_pid(rank)
    _start_heartbeat(rank)
    prefix = f"[rank{rank}]: "
    sys.stdout = _Prefixed(sys.stdout, prefix)
    sys.stderr = _Prefixed(sys.stderr, prefix)
    script = argv[0]
    sys.argv = list(argv)
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    try:
        try:
            runpy.run_path(script, run_name="__main__")
        finally:
            sys.stdout.flush()
            from ._heartbeat import _finish
            _finish()   # this rank is done: the launcher stops expecting its beats
    except SystemExit as exc:
        code = exc.code
        if code is None or code == 0:
            return 0
        if not isinstance(code, int):
            print(code, file=sys.stderr)
            code = 1
        _abort(code)
        return code
    except BaseException:
        sys.stderr.write(traceback.format_exc())   # one write: the lines leave together
        _abort(1)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
