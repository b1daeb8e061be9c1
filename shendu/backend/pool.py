"""shendu's own worker threads: optimizers' elementwise updates and large NumPy passes.

An update such as Adam's is a dozen in-place NumPy ufunc passes over a parameter, its
gradient and its state buffers. Each ufunc runs on one core but releases the GIL, so
updates spread over a few threads use every core, as PyTorch's intra-op threads do.

``Optimizer.step`` opens a ``batch()``: each parameter's update is queued by ``apply``,
and when the batch closes the queued work is cut into one contiguous share per thread
(large parameters are split between threads, medium ones handed out whole) and run. Small
updates, where the hand-off would cost more than it saves, GPU arrays (the device is
parallel already) and calls outside a batch run at once, in the caller's thread.

``split_rows`` lends the same threads to one large NumPy pass cut into row blocks (the
cross-entropy's exp over a vocabulary's scores), as PyTorch's intra-op threads do.

Kernels have the signature ``kernel(xp, arrays, scratch, *args)``: ``arrays`` is a list of
the parameter, its gradient and its state buffers (all the same shape), ``scratch`` a list
of temporaries of that shape the kernel may overwrite. Scratch memory is cached per thread
and per dtype, so a step allocates nothing once warm.
"""
from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import get_array_module, runtime

SMALL = 1 << 14          # updates below this many elements run at once, in the caller
MIN_PARALLEL = 1 << 16   # a batch below this many elements in all runs in the caller
_ALIGN = 64              # split points on 64-element multiples: whole cache lines

_pool: ThreadPoolExecutor | None = None
_threads = max(1, min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                      else (os.cpu_count() or 1)))
_limit: int | None = None  # fewer threads for now, chosen from the load (runtime's tuner)
_local = threading.local()


def _forget_pool() -> None:
    # a forked child inherits the pool object but none of its threads: start afresh
    global _pool
    _pool = None


_fork_watched = False


def get_num_threads() -> int:
    """How many threads (the caller's included) share a step's updates."""
    return _threads


def set_num_threads(n: int) -> None:
    """Use ``n`` threads for optimizer updates (1 runs everything in the caller). A
    choice: the count stops following the load (``runtime.threads_follow_load``)."""
    global _threads, _pool
    if int(n) < 1:
        raise ValueError(f"set_num_threads: n must be >= 1, got {n!r}")
    runtime.threads_chosen("a thread count was set (set_num_threads)")
    _threads = int(n)
    if _pool is not None:
        _pool.shutdown(wait=True)
        _pool = None


def limit_threads(n: int | None) -> None:
    """Use at most ``n`` of the threads for now (None: all); the pool stays up, so a
    changing limit costs nothing. Set by ``runtime``'s tuner, from the measured speed."""
    global _limit
    _limit = n


def _active() -> int:
    return _threads if _limit is None else max(1, min(_threads, _limit))


runtime.pool_controls(get_num_threads, limit_threads)  # the thread tuner's handles


def _scratch(dtype, n: int, k: int) -> list:
    """``k`` flat temporaries of ``n`` elements, from this thread's cache (grown on demand)."""
    cache = getattr(_local, "cache", None)
    if cache is None:
        cache = _local.cache = {}
    key = np.dtype(dtype)
    buf = cache.get(key)
    if buf is None or buf.size < n * k:
        buf = cache[key] = np.empty(max(n * k, 1024), key)
    return [buf[i * n:(i + 1) * n] for i in range(k)]


def _run_whole(kernel, arrays, n_scratch, args) -> None:
    p = arrays[0]
    tmp = [t.reshape(p.shape) for t in _scratch(p.dtype, p.size, n_scratch)]
    kernel(np, arrays, tmp, *args)


def _run_share(share) -> None:
    """Run one thread's share: a list of (task, start, end) element ranges."""
    for (kernel, arrays, n_scratch, args), s, e in share:
        if s == 0 and e == arrays[0].size:
            _run_whole(kernel, arrays, n_scratch, args)
        else:
            flat = [a.reshape(-1)[s:e] for a in arrays]  # views: the arrays are contiguous
            kernel(np, flat, _scratch(arrays[0].dtype, e - s, n_scratch), *args)


def _shares(tasks: list, parts: int) -> list[list]:
    """Cut the tasks into ``parts`` contiguous shares of about equal element counts."""
    total = sum(t[1][0].size for t in tasks)
    per = -(-total // parts)
    shares: list[list] = [[]]
    fill = 0
    for task in tasks:
        arrays = task[1]
        size = arrays[0].size
        splittable = all(a.flags.c_contiguous for a in arrays)
        start = 0
        while start < size:
            room = per - fill
            if not splittable or size - start <= room or len(shares) == parts:
                end = size
            else:
                end = min(size, start + max(_ALIGN, room // _ALIGN * _ALIGN))
            shares[-1].append((task, start, end))
            fill += end - start
            start = end
            if fill >= per and len(shares) < parts:
                shares.append([])
                fill = 0
    return [s for s in shares if s]


def _get_pool() -> ThreadPoolExecutor:
    global _pool, _fork_watched
    if _pool is None:
        if not _fork_watched and hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_forget_pool)  # (registered once, lazily)
            _fork_watched = True
        _pool = ThreadPoolExecutor(max_workers=max(_threads - 1, 1),
                                   thread_name_prefix="shendu-optim")
    return _pool


def _run_tasks(tasks: list) -> None:
    total = sum(t[1][0].size for t in tasks)
    threads = _active()
    if threads == 1 or total < MIN_PARALLEL:
        for kernel, arrays, n_scratch, args in tasks:
            _run_whole(kernel, arrays, n_scratch, args)
        return
    shares = _shares(tasks, threads)
    futures = [_get_pool().submit(_run_share, s) for s in shares[1:]]
    try:
        _run_share(shares[0])  # the caller works too instead of waiting idle
    finally:
        for f in futures:
            f.result()


@contextlib.contextmanager
def batch():
    """Queue the ``apply`` calls made inside, and run them together (in parallel) at exit."""
    outer = getattr(_local, "tasks", None)
    if outer is not None:  # nested: the outermost batch runs everything
        yield
        return
    _local.tasks = tasks = []
    try:
        yield
    finally:
        _local.tasks = None
        runtime.tick(step_end=True)  # an optimizer step: the thread tuner times steps
        if tasks:
            _run_tasks(tasks)


def apply(kernel, arrays: list, n_scratch: int, *args) -> None:
    """Run ``kernel(xp, arrays, scratch, *args)`` over the whole of ``arrays``: at once, or
    when the enclosing ``batch()`` closes."""
    p = arrays[0]
    xp = get_array_module(p)
    if xp is not np:
        kernel(xp, arrays, [xp.empty_like(p) for _ in range(n_scratch)], *args)
        return
    tasks = getattr(_local, "tasks", None)
    if tasks is None or p.size < SMALL or _active() == 1:
        _run_whole(kernel, arrays, n_scratch, args)
    else:
        tasks.append((kernel, arrays, n_scratch, args))


# ---------------------------------------------------------------------- row blocks
SPLIT_MIN = 1 << 20  # arrays below this many elements: one thread (the hand-off costs more)


def _blas_threads() -> int:
    """The BLAS thread count when threadpoolctl can read it, else ``_threads``: a caller
    that limited BLAS (``blas_threads(1)`` around a training run) limits this too."""
    n = runtime.blas_threads()
    return _threads if n is None else n


def split_rows(fn, n_rows: int, size: int) -> None:
    """Run ``fn(start, stop)`` over ``[0, n_rows)`` cut into one contiguous block of rows per
    thread, the caller's included. For NumPy passes over one large array (``size`` elements)
    whose ufuncs release the GIL, as PyTorch's intra-op threads split them; small arrays,
    one thread, or a call from a pool thread itself run ``fn(0, n_rows)`` in the caller.

    NumPy's ``errstate`` is per thread: an ``fn`` that needs one must enter it itself.

    Not split while MKL and the compiled kernels share an OpenMP pool (``backend.jit``):
    its threads spin on the other cores for a while after each product, and a worker
    thread handed a block there waited for them (the LSTM LM's step kept its mean time,
    but some steps took much longer).
    """
    split = size >= SPLIT_MIN and not runtime.kernels_parallel()
    parts = min(_active(), n_rows, _blas_threads()) if split else 1
    if parts <= 1 or threading.current_thread().name.startswith("shendu-optim"):
        fn(0, n_rows)
        return
    bounds = [n_rows * i // parts for i in range(parts + 1)]
    pool = _get_pool()
    futures = [pool.submit(fn, bounds[i], bounds[i + 1]) for i in range(1, parts)]
    try:
        fn(bounds[0], bounds[1])
    finally:
        for f in futures:
            f.result()
