"""How many threads NumPy's BLAS (matrix products, hence linear and conv layers) may use.

``sd.set_num_threads`` / ``sd.get_num_threads`` mirror PyTorch's; ``blas_threads(n)`` limits
the count inside a ``with`` block. All three go through ``threadpoolctl``
(``pip install threadpoolctl``; the ``train`` extra installs it), because BLAS picks its
thread count at start-up and only that library reaches every BLAS loaded in the process.

Why training defaults to one thread: LeNet-sized products are a few MFLOP, so a second
thread gains little even on an idle 2-core machine, while on shared cores OpenBLAS's
threads wait for a partner that is not running: ``shendu train`` epochs measured 10-40x
slower with two threads than with one on the same busy machine.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

__all__ = ["set_num_threads", "get_num_threads", "blas_threads"]


def _controller():
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError as e:
        raise RuntimeError("set_num_threads/get_num_threads need threadpoolctl to reach "
                           "NumPy's BLAS: pip install threadpoolctl") from e
    return ThreadpoolController()


def _check(n, who: str, minimum: int) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or n < minimum:
        raise ValueError(f"{who}: expected an int >= {minimum}, got {n!r}")


def set_num_threads(n: int) -> None:
    """Let BLAS use ``n`` threads from now on.

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
    _controller().limit(limits=n, user_api="blas")


def get_num_threads() -> int:
    """The largest number of threads any loaded BLAS library will use (1 if none found)."""
    pools = [p.num_threads for p in _controller().select(user_api="blas").lib_controllers]
    return max(pools, default=1)


@contextlib.contextmanager
def blas_threads(n: int | None) -> Iterator[int | None]:
    """Let BLAS use at most ``n`` threads inside the block, then restore the old counts.

    Yields ``n`` when applied; None when ``n`` is None/0 (leave BLAS alone) or when
    threadpoolctl is not installed (the block then runs with BLAS's own setting).

    >>> with blas_threads(1) as n:
    ...     n in (1, None)
    True
    """
    if n is not None:
        _check(n, "blas_threads", 0)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        threadpool_limits = None
    if not n or threadpool_limits is None:
        yield None
        return
    with threadpool_limits(limits=n, user_api="blas"):
        yield n
