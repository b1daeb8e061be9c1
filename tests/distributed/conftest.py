"""The ``run_job`` fixture: a script run on 2 ranks through ``shendu run`` (see mpijob)."""
import os
import subprocess
import sys
import textwrap

import pytest
from mpijob import MPI_MISSING, ROOT


@pytest.fixture
def run_job(tmp_path):
    """``run_job(code, nproc=2, args=(), timeout=60, launcher_args=(), env=None)`` writes
    ``code`` to a script, runs it with ``shendu run`` (``env``: extra variables) and
    returns the CompletedProcess."""
    if MPI_MISSING is not None:
        pytest.skip(MPI_MISSING)

    def run(code, nproc=2, args=(), timeout=60, launcher_args=(), env=None):
        script = tmp_path / "job.py"
        script.write_text(textwrap.dedent(code))
        env = dict(os.environ, **(env or {}), PYTHONPATH=os.pathsep.join(
            p for p in (ROOT, os.environ.get("PYTHONPATH")) if p))
        cmd = [sys.executable, "-m", "shendu.cli", "run", "--nproc", str(nproc),
               "--timeout", str(timeout), *launcher_args, str(script), *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 30,
                              env=env, cwd=str(tmp_path))
    return run
