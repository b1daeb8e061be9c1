"""Worker processes behind ``DataLoader(num_workers=N)``.

The main process walks the sampler and hands batch keys (index lists) to the workers in
turn, keeping at most ``prefetch_factor`` batches outstanding per worker; each worker
builds whole batches (``__getitem__``, collate, transforms) and sends them back through
one result queue: a small pickle, with arrays of 64 KiB and more in shared memory (see
``_Transport``). The main process yields them in sampler order whatever order they
finish in.

Randomness, as in PyTorch: a base seed is drawn from the loader's generator when the
workers start; worker ``k`` seeds Python's ``random``, NumPy's global generator and
shendu's global generator with ``base_seed + k`` before ``worker_init_fn(k)``. The
``transform=`` streams of batch ``i`` stay the loader's own ``(seed, i)`` streams, so
batches built with and without workers are identical.

Processes start with ``fork`` on Linux (the default of ``multiprocessing`` there and of
PyTorch). A fork child of a process that has used GNU OpenMP hangs in MKL; shendu's
fork handler (``backend/blas.py``) puts MKL on one thread and turns the OpenMP kernels
off in every fork child, so workers forked after a training step work. ``'spawn'`` and
``'forkserver'`` (``multiprocessing_context=``) start fresh interpreters instead; then
the dataset, ``collate_fn`` and transforms must be picklable.
"""
from __future__ import annotations

import glob
import itertools
import mmap
import multiprocessing as mp
import os
import pickle
import queue
import random
import time
import traceback
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from ._rng import using_rng

__all__ = ["WorkerInfo", "get_worker_info"]

_POLL_S = 0.1      # how often a blocked side re-checks that the other side is alive
_JOIN_S = 5.0      # how long shutdown waits for a worker before terminating it
_SHM_DIR = "/dev/shm"
_SHM_MIN_BYTES = 1 << 16  # arrays at least this large travel through shared memory


@dataclass(frozen=True)
class WorkerInfo:
    """What ``get_worker_info()`` returns inside a worker process."""

    id: int
    num_workers: int
    seed: int
    dataset: object


_worker_info: WorkerInfo | None = None


def get_worker_info() -> WorkerInfo | None:
    """In a DataLoader worker process: its ``WorkerInfo`` (``id``, ``num_workers``,
    ``seed``, ``dataset`` — the worker's own copy). In the main process: None.

    An ``IterableDataset`` uses it to give each worker its own share of the stream.

    >>> get_worker_info() is None
    True
    """
    return _worker_info


class _IterEnd:
    """A worker's reply when its copy of an ``IterableDataset`` is exhausted."""


class _Failure:
    """An exception raised in a worker, carried to the main process."""

    def __init__(self, exc: BaseException, worker_id: int, index: int):
        self.worker_id = worker_id
        self.index = index
        self.type_name = type(exc).__qualname__
        self.message = str(exc)
        self.trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        try:
            self.pickled = pickle.dumps(exc)
            pickle.loads(self.pickled)
        except Exception:  # noqa: BLE001 - an unpicklable exception travels as text
            self.pickled = None

    def reraise(self):
        exc = None
        if self.pickled is not None:
            try:
                exc = pickle.loads(self.pickled)
            except Exception:  # noqa: BLE001
                exc = None
        if not isinstance(exc, BaseException):
            exc = RuntimeError(f"{self.type_name}: {self.message}")
        exc.add_note(f"Caught {self.type_name} in DataLoader worker process {self.worker_id} "
                     f"(raised by DataLoader while building batch {self.index}).\n"
                     f"Original traceback in the worker:\n{self.trace}")
        raise exc


class _Transport:
    """Pickles a worker's reply; large arrays go out of band into one shared-memory file.

    Pickle protocol 5 hands NumPy's buffers to a callback instead of copying them into
    the byte stream. The worker copies them into a file under ``/dev/shm`` and sends the
    small pickle with the file's name; the main process maps the file and unpickles the
    arrays as views of the mapping (no copy on that side), then unlinks the name at once:
    the memory is freed when the last array using it is. Names carry the pool's prefix,
    so shutdown removes any file a reply never reached the main process with.
    Without ``/dev/shm`` everything travels in the pickle.
    """

    def __init__(self, prefix: str | None):
        self.prefix = prefix
        self.count = 0

    def dumps(self, obj) -> tuple:
        bufs: list[pickle.PickleBuffer] = []
        callback = None
        if self.prefix is not None:
            def callback(b):
                if b.raw().nbytes < _SHM_MIN_BYTES:
                    return True  # in band
                bufs.append(b)
                return False
        payload = pickle.dumps(obj, protocol=5, buffer_callback=callback)
        if not bufs:
            return payload, None, ()
        sizes = tuple(b.raw().nbytes for b in bufs)
        self.count += 1
        name = f"{self.prefix}-{self.count}"
        fd = os.open(os.path.join(_SHM_DIR, name), os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.ftruncate(fd, sum(sizes))
            with mmap.mmap(fd, sum(sizes)) as m:
                at = 0
                for b, n in zip(bufs, sizes):
                    m[at:at + n] = b.raw()
                    at += n
        finally:
            os.close(fd)
        return payload, name, sizes

    @staticmethod
    def loads(message: tuple):
        payload, name, sizes = message
        if name is None:
            return pickle.loads(payload)
        path = os.path.join(_SHM_DIR, name)
        fd = os.open(path, os.O_RDWR)
        try:
            m = mmap.mmap(fd, sum(sizes))
        finally:
            os.close(fd)
            os.unlink(path)
        view, views, at = memoryview(m), [], 0
        for n in sizes:
            views.append(view[at:at + n])
            at += n
        return pickle.loads(payload, buffers=views)


def _seed_everything(seed: int) -> None:
    from .. import random as sd_random

    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    sd_random.manual_seed(seed)


def _limit_threads(start_method: str) -> None:
    # Several workers share the cores: one thread each, as PyTorch does. A fork child is
    # already limited by shendu's fork handler (and must not touch the OpenMP runtime).
    if start_method == "fork":
        return
    import warnings

    from .._threads import set_num_threads
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        set_num_threads(1)


def _worker_loop(fetcher, index_q, result_q, done, worker_id: int, num_workers: int,
                 seed: int, init_fn: Callable[[int], None] | None, start_method: str,
                 parent_pid: int, current_epoch, shm_prefix: str | None) -> None:
    global _worker_info
    transport = _Transport(shm_prefix)
    init_failure = None
    try:
        _limit_threads(start_method)
        _seed_everything(seed)
        _worker_info = WorkerInfo(worker_id, num_workers, seed, fetcher.dataset)
        if init_fn is not None:
            init_fn(worker_id)
    except Exception as exc:  # noqa: BLE001 - reported with the first batch asked for
        init_failure = exc
    stream, stream_epoch = None, None
    while True:
        try:
            task = index_q.get(timeout=_POLL_S)
        except queue.Empty:
            if done.is_set() or os.getppid() != parent_pid:
                break  # the loader is gone (or the main process died)
            continue
        if task is None:
            break
        epoch, i, base_seed, key = task
        if epoch < current_epoch.value:
            continue  # left over from an epoch the main process abandoned (a break)
        try:
            if init_failure is not None:
                raise init_failure
            if fetcher.iterable:
                if stream_epoch != epoch:
                    stream, stream_epoch = fetcher.keys(), epoch
                key = next(stream, _IterEnd)
            if key is _IterEnd:
                reply = _IterEnd
            else:
                with using_rng((base_seed, i)):
                    reply = fetcher.fetch(key)
            message = transport.dumps((epoch, i, reply))
        except Exception as exc:  # noqa: BLE001 - re-raised in the main process
            message = (pickle.dumps((epoch, i, _Failure(exc, worker_id, i))), None, ())
        result_q.put(message)
    result_q.cancel_join_thread()


def _context(spec):
    if spec is None:
        return mp.get_context("fork" if "fork" in mp.get_all_start_methods() else None)
    if isinstance(spec, str):
        if spec not in mp.get_all_start_methods():
            raise ValueError(f"DataLoader: multiprocessing_context {spec!r} is not available "
                             f"here; expected one of {mp.get_all_start_methods()}")
        return mp.get_context(spec)
    if hasattr(spec, "Process") and hasattr(spec, "get_start_method"):
        return spec
    raise TypeError("DataLoader: multiprocessing_context must be 'fork', 'spawn', "
                    f"'forkserver' or a multiprocessing context, got {spec!r}")


def _shutdown(procs, index_qs, result_q, done, shm_prefix) -> None:
    done.set()
    for q in index_qs:
        try:
            q.put(None)
        except Exception:  # noqa: BLE001 - a closed queue: the worker is going anyway
            pass
    deadline = time.monotonic() + _JOIN_S
    for p in procs:
        p.join(timeout=max(0.0, deadline - time.monotonic()))
    for p in procs:
        if p.is_alive():
            p.terminate()
            p.join(timeout=1.0)
    for q in (*index_qs, result_q):
        q.cancel_join_thread()
        q.close()
    if shm_prefix is not None:  # replies that never reached the main process
        for path in glob.glob(os.path.join(_SHM_DIR, glob.escape(shm_prefix) + "-*")):
            try:
                os.unlink(path)
            except OSError:
                pass


class WorkerPool:
    """``num_workers`` processes building batches; lives for one epoch, or for the
    loader's lifetime with ``persistent_workers=True``."""

    _count = 0

    def __init__(self, fetcher, num_workers: int, seed: int,
                 init_fn: Callable[[int], None] | None, context=None):
        ctx = _context(context)
        self.num_workers = num_workers
        self._start_method = ctx.get_start_method()
        self._result_q = ctx.Queue()
        self._index_qs = [ctx.Queue() for _ in range(num_workers)]
        self._done = ctx.Event()
        self._epoch = ctx.Value("q", 0, lock=False)
        self._procs = []
        WorkerPool._count += 1
        shm = (f"shendu-dl-{os.getpid()}-{WorkerPool._count}"
               if os.path.isdir(_SHM_DIR) and os.access(_SHM_DIR, os.W_OK) else None)
        self._shm_prefix = shm
        for wid in range(num_workers):
            p = ctx.Process(target=_worker_loop, name=f"shendu-DataLoader-worker-{wid}",
                            args=(fetcher, self._index_qs[wid], self._result_q, self._done,
                                  wid, num_workers, seed + wid, init_fn,
                                  self._start_method, os.getpid(), self._epoch,
                                  None if shm is None else f"{shm}-w{wid}"),
                            daemon=True)
            p.start()
            self._procs.append(p)
        self._finalizer = weakref.finalize(self, _shutdown, self._procs, self._index_qs,
                                           self._result_q, self._done, shm)

    def new_epoch(self) -> int:
        self._epoch.value += 1
        return self._epoch.value

    @property
    def epoch(self) -> int:
        return self._epoch.value

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs]

    def send(self, worker_id: int, task) -> None:
        self._index_qs[worker_id].put(task)

    def receive(self, timeout: float | None):
        """The next ``(epoch, index, batch)`` from any worker; raises ``queue.Empty``
        after ``timeout`` seconds, RuntimeError when a worker died."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = _POLL_S if deadline is None else min(_POLL_S, deadline - time.monotonic())
            try:
                return _Transport.loads(self._result_q.get(timeout=max(wait, 0.0)))
            except queue.Empty:
                pass
            dead = [(p.pid, p.exitcode) for p in self._procs if p.exitcode is not None]
            if dead:
                self.shutdown()
                raise RuntimeError("DataLoader: worker process(es) exited unexpectedly: "
                                   + ", ".join(f"pid {pid} with exit code {code}"
                                               for pid, code in dead))
            if deadline is not None and time.monotonic() >= deadline:
                raise queue.Empty

    def shutdown(self) -> None:
        self._finalizer()

    @property
    def alive(self) -> bool:
        return self._finalizer.alive


class WorkerIter:
    """One epoch of batches from a ``WorkerPool``, in sampler order."""

    def __init__(self, pool: WorkerPool, keys: Iterator | None, base_seed: int,
                 prefetch_factor: int, timeout: float, owns_pool: bool,
                 finish: Callable | None = None, first: int = 0):
        self._pool = pool
        self._epoch = pool.new_epoch()
        self._keys = keys            # None: an IterableDataset (each worker has its stream)
        self._seed = base_seed
        self._timeout = float(timeout) if timeout and timeout > 0 else None
        self._owns_pool = owns_pool
        self._finish = finish        # applied to each batch in the main process (device)
        self._active = list(range(pool.num_workers))
        self._turn = itertools.cycle(range(pool.num_workers))
        self._capacity = prefetch_factor * pool.num_workers
        self._sent = first           # batches handed out (first > 0: a resumed epoch)
        self._next = first           # the batch to yield next
        self._ready: dict = {}
        self._owner: dict = {}       # batch index -> worker id
        self._exhausted = False
        self._done = False
        while self._sent - self._next < self._capacity and self._dispatch():
            pass

    def _dispatch(self) -> bool:
        if self._exhausted or not self._active:
            return False
        if self._keys is None:
            key = None
        else:
            key = next(self._keys, _IterEnd)
            if key is _IterEnd:
                self._exhausted = True
                return False
        while True:
            wid = next(self._turn)
            if wid in self._active:
                break
        self._pool.send(wid, (self._epoch, self._sent, self._seed, key))
        self._owner[self._sent] = wid
        self._sent += 1
        return True

    def __iter__(self) -> WorkerIter:
        return self

    def __next__(self):
        while True:
            if self._done:
                raise StopIteration
            if self._next >= self._sent:
                self.close()
                raise StopIteration
            i = self._next
            if self._pool.epoch != self._epoch:
                self._done = True
                raise RuntimeError("DataLoader: this iterator's persistent workers moved on "
                                   "to a newer iter(loader); iterate one epoch at a time")
            while i not in self._ready:
                try:
                    epoch, j, batch = self._pool.receive(self._timeout)
                except queue.Empty:
                    self.close()
                    raise RuntimeError(f"DataLoader: timed out after {self._timeout:g} s "
                                       "waiting for a batch from the workers "
                                       "(timeout=...)") from None
                except BaseException:
                    self.close()
                    raise
                if epoch == self._epoch:
                    self._ready[j] = batch
            batch = self._ready.pop(i)
            wid = self._owner.pop(i)
            self._next += 1
            if batch is _IterEnd:
                if wid in self._active:
                    self._active.remove(wid)
                self._dispatch()
                continue
            self._dispatch()
            if isinstance(batch, _Failure):
                self.close()
                batch.reraise()
            return batch if self._finish is None else self._finish(batch)

    def close(self) -> None:
        """End the epoch; the workers stop unless they are persistent."""
        if self._done:
            return
        self._done = True
        self._ready.clear()
        if self._owns_pool:
            self._pool.shutdown()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown; nothing left to do
            pass
