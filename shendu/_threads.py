"""How many threads shendu's CPU work may use.

Up to four kinds of threads do the work: the BLAS behind the matrix products (Intel MKL
when its wheel is installed, see ``backend/blas.py``; else NumPy's OpenBLAS), numba's
threads running the compiled kernels (``backend/jit``; they share MKL's OpenMP pool, and
run on one thread beside OpenBLAS), and shendu's own small pool (optimizer updates and
large elementwise passes on the plain NumPy paths, ``shendu/backend/pool.py``).
``sd.set_num_threads`` sets them all, as PyTorch's does for its intra-op threads;
``blas_threads(n)`` limits BLAS inside a ``with`` block. BLAS picks its thread count at
start-up, and only ``threadpoolctl`` (``pip install threadpoolctl``; the ``train`` extra
installs it) reaches every BLAS loaded in the process.

Why training defaults to one thread: LeNet-sized products are a few MFLOP, so a second
thread gains little even on an idle 2-core machine, while on shared cores OpenBLAS's
threads wait for a partner that is not running: ``shendu train`` epochs measured many
times slower with two threads than with one on the same busy machine.
"""
from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

from .backend import pool, runtime

__all__ = ["set_num_threads", "get_num_threads", "blas_threads"]


def _check(n, who: str, minimum: int) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or n < minimum:
        raise ValueError(f"{who}: expected an int >= {minimum}, got {n!r}")


def set_num_threads(n: int) -> None:
    """Use ``n`` threads from now on, in BLAS and in shendu's own pool.

    Without threadpoolctl only shendu's pool follows, and a warning says so.

    >>> import shendu as sd
    >>> before = sd.get_num_threads()
    >>> sd.set_num_threads(1); sd.get_num_threads()
    1
    >>> sd.set_num_threads(before)
    >>> sd.set_num_threads(0)
    Traceback (most recent call last):
    ValueError: set_num_threads: expected an int >= 1, got 0
    """
    _check(n, "set_num_threads", 1)
    runtime.threads_chosen(f"set by sd.set_num_threads({n})")  # no longer follows the load
    pool.set_num_threads(n)
    runtime.set_mkl_threads(n)
    runtime.set_kernel_threads(n)
    blas = runtime.blas_controller()
    if blas is None:
        warnings.warn("set_num_threads: threadpoolctl is not installed, so NumPy's BLAS "
                      "keeps its own thread count (pip install threadpoolctl)", stacklevel=2)
    else:
        blas.limit(limits=n)
        if runtime.mkl_loaded():
            # MKL does shendu's products; OpenBLAS's spinning threads would only fight its
            # threads for the cores on the products NumPy still runs itself.
            blas.select(internal_api="openblas").limit(limits=1)


def get_num_threads() -> int:
    """How many threads shendu's own pool uses (``set_num_threads`` also gives BLAS this)."""
    return pool.get_num_threads()


@contextlib.contextmanager
def blas_threads(n: int | None) -> Iterator[int | None]:
    """Let BLAS, and the compiled kernels that share its threads, use at most ``n``
    threads inside the block, then restore the old counts.

    Yields ``n`` when applied; None when ``n`` is None/0 (leave BLAS alone) or when
    threadpoolctl is not installed (the block then runs with BLAS's own setting).

    >>> with blas_threads(1) as n:
    ...     n in (1, None)
    True
    """
    if n is not None:
        _check(n, "blas_threads", 0)
    blas = runtime.blas_controller() if n else None
    if blas is None:
        yield None
        return
    with runtime.tuner_paused(), blas.limit(limits=n), runtime.kernel_threads_at_most(n):
        yield n


one_blas_thread = runtime.one_blas_thread  # ``blas_threads(1)`` for hot loops, no rescan
