"""GNU OpenMP's idle threads are set to spin only briefly, lazily, without leaking into the
environment, and the user's own choice wins. Each case runs in a fresh process, since
libgomp reads its setting once, when it loads."""
import json
import os
import subprocess
import sys

import pytest

CHILD = """
import json, os, sys
import shendu as sd
from shendu.backend import runtime
before = runtime.openmp_wait_state()
loaded_by_import = runtime._gomp_loaded()
info = sd.backend.info()   # loads MKL and sets the kernels up, as a first fast op would
print(json.dumps({"before": before, "after": info["openmp_wait"],
                  "import_loaded_libgomp": loaded_by_import,
                  "gomp_loaded": runtime._gomp_loaded(), "mkl": runtime.mkl_loaded(),
                  "env_left": [os.environ.get(k) for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")]}))
"""


def run(**env):
    full = {k: v for k, v in os.environ.items()
            if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "SHENDU_OMP_WAIT")}
    full.update(env)
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                         env=full, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_short_spin_by_default_applied_lazily_and_not_inherited():
    from shendu.backend.runtime import OMP_SPIN_COUNT

    r = run()
    assert r["before"] == "not applied yet" and not r["import_loaded_libgomp"]
    if not r["gomp_loaded"]:
        pytest.skip("no GNU OpenMP in this process (no MKL): nothing to set")
    assert r["after"] == f"short spin ({OMP_SPIN_COUNT} rounds), then sleep"
    assert r["env_left"] == [None, None]  # child processes inherit nothing


def test_user_choices_are_kept():
    r = run(OMP_WAIT_POLICY="active")
    if not r["gomp_loaded"]:
        pytest.skip("no GNU OpenMP in this process (no MKL): nothing to set")
    assert r["after"] == "as set by the user (OMP_WAIT_POLICY=active)"
    assert r["env_left"] == ["active", None]
    r = run(GOMP_SPINCOUNT="77")
    assert r["after"] == "as set by the user (GOMP_SPINCOUNT=77)"
    r = run(SHENDU_OMP_WAIT="spin")
    assert r["after"] == "libgomp's default spinning (SHENDU_OMP_WAIT=spin)"
    assert r["env_left"] == [None, None]
    r = run(SHENDU_OMP_WAIT="passive")
    assert r["after"] == "passive (SHENDU_OMP_WAIT=passive)"
    assert r["env_left"] == [None, None]
