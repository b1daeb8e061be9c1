"""Helpers for the distributed tests: real multi-process jobs through ``shendu run``.

Every job has a wall-clock limit (the launcher's ``--timeout`` and a larger one around the
launcher itself), so a hang fails its test instead of blocking the suite. The tests skip,
with the reason shown, only when mpi4py or mpiexec is truly missing.
"""
import os
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _mpi_missing():
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return "mpi4py is not installed (pip install -e '.[distributed]')"
    from shendu.distributed.launcher import find_mpiexec
    try:
        find_mpiexec()
    except FileNotFoundError:
        return "no mpiexec (pip install -e '.[distributed]' brings the mpich wheel's)"
    return None


MPI_MISSING = _mpi_missing()
needs_mpi = pytest.mark.skipif(MPI_MISSING is not None, reason=str(MPI_MISSING))


def rank_lines(out, rank):
    """The lines rank ``rank`` printed, without their prefix."""
    p = f"[rank{rank}]: "
    return [line[len(p):] for line in out.splitlines() if line.startswith(p)]


def ps_has(marker):
    """The command lines of running processes that contain ``marker``."""
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if marker in line]
