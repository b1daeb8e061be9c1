"""GNU OpenMP's threads sleep when idle instead of spinning: shendu's threads under load.

MKL's products and numba's kernels share one GNU OpenMP (libgomp) pool. By default an idle
libgomp thread spins for a while before it sleeps, betting that the next parallel region
comes soon and that its core has nothing else to do. On shared cores (a laptop, a notebook
server, CI) the bet loses: the spinning thread holds a core that the thread it waits for
needs. The user-loop benchmark under ``shendu bench --contend`` measured a LeNet-5/Adam
step at 2 threads several times slower than at 1 thread with spinning, and as fast as 1
thread with passive waiting (numbers: ``benchmarks/README.md``).

libgomp reads ``OMP_WAIT_POLICY`` once, when it is loaded, so ``before_openmp()`` runs just
before shendu first loads MKL or starts numba's OpenMP layer: unless the user chose
(``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT`` set, or ``SHENDU_OMP_WAIT=spin``), it sets
``OMP_WAIT_POLICY=PASSIVE``, loads libgomp, and puts the environment back as it was, so
child processes inherit nothing. If libgomp was already loaded by someone else, its
setting stays and ``state()`` says so.
"""
from __future__ import annotations

import ctypes
import os

__all__ = ["before_openmp", "state"]

_state = "not applied yet"


def _gomp_loaded() -> bool:
    try:
        with open("/proc/self/maps") as f:
            return any("/libgomp.so" in line for line in f)
    except OSError:
        return False


def before_openmp() -> str:
    """Make GNU OpenMP's idle threads wait passively (see the module docstring), once;
    returns what was done."""
    global _state
    if _state != "not applied yet":
        return _state
    env = os.environ
    if env.get("SHENDU_OMP_WAIT", "passive") == "spin":
        _state = "spin (SHENDU_OMP_WAIT=spin)"
    elif "OMP_WAIT_POLICY" in env or "GOMP_SPINCOUNT" in env:
        _state = "as set by the user (" + ", ".join(
            f"{k}={env[k]}" for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT") if k in env) + ")"
    elif _gomp_loaded():
        _state = "spin (libgomp was loaded before shendu could set it)"
    else:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
        try:
            ctypes.CDLL("libgomp.so.1", mode=ctypes.RTLD_GLOBAL)
            _state = "passive"
        except OSError:
            _state = "spin (libgomp not found)"
        finally:
            del env["OMP_WAIT_POLICY"]  # read at load time: children inherit nothing
    return _state


def state() -> str:
    """``'passive'``, ``'spin (why)'``, ``'as set by the user (...)'`` or not applied yet."""
    return _state
