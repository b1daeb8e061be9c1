"""``sd.set_num_threads`` / ``sd.get_num_threads``: how many threads BLAS may use.

NumPy's heavy lifting (matrix products, hence linear and conv layers) runs in its BLAS
library, which picks its own thread count at start-up. Changing it at run time needs
``threadpoolctl`` (``pip install threadpoolctl``); without it these functions say so
instead of silently doing nothing.
"""
from __future__ import annotations


def _controller():
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError as e:
        raise RuntimeError("set_num_threads/get_num_threads need threadpoolctl to reach "
                           "NumPy's BLAS: pip install threadpoolctl") from e
    return ThreadpoolController()


def set_num_threads(n: int) -> None:
    """Let BLAS (matrix products, conv and linear layers) use ``n`` threads.

    >>> import shendu as sd
    >>> before = sd.get_num_threads()
    >>> sd.set_num_threads(1); sd.get_num_threads()
    1
    >>> sd.set_num_threads(before)
    >>> sd.set_num_threads(0)
    Traceback (most recent call last):
    ValueError: set_num_threads: expected a positive int, got 0
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"set_num_threads: expected a positive int, got {n!r}")
    _controller().limit(limits=n, user_api="blas")


def get_num_threads() -> int:
    """The largest number of threads any loaded BLAS library will use (1 if none found)."""
    pools = [p.num_threads for p in _controller().select(user_api="blas").lib_controllers]
    return max(pools, default=1)
