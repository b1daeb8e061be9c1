"""A background thread that builds batches ahead of the training loop.

The thread runs ``source`` (a generator of finished batches) and puts them in a bounded
queue; the consumer takes them out. NumPy gathers and BLAS release the GIL, so building
the next batch overlaps the model's work on this one. The thread never holds a reference
to the iterator object, so dropping the iterator (``break`` out of a loop) closes it.
"""
from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator

_END = object()


class _Failure:
    __slots__ = ("exc",)

    def __init__(self, exc: BaseException):
        self.exc = exc


def _put(q: queue.Queue, stop: threading.Event, item) -> bool:
    while not stop.is_set():
        try:
            q.put(item, timeout=0.05)
            return True
        except queue.Full:
            continue
    return False


def _work(source: Iterator, q: queue.Queue, stop: threading.Event,
          init_fn: Callable[[int], None] | None) -> None:
    try:
        if init_fn is not None:
            init_fn(0)
        for batch in source:
            if not _put(q, stop, batch):
                return
        _put(q, stop, _END)
    except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
        _put(q, stop, _Failure(exc))


class Prefetcher:
    """Iterate ``source`` on a daemon thread, at most ``depth`` batches ahead.

    Args:
        source: iterator of batches; runs on the thread.
        depth: queue size (batches ready ahead of the consumer).
        timeout: seconds to wait for one batch before giving up (0: forever).
        init_fn: called on the thread with worker id 0 before the first batch.
    """

    def __init__(self, source: Iterator, depth: int, timeout: float = 0,
                 init_fn: Callable[[int], None] | None = None):
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, int(depth)))
        self._stop = threading.Event()
        self._timeout = float(timeout)
        self._done = False
        self._thread = threading.Thread(target=_work, name="shendu-DataLoader-prefetch",
                                        args=(source, self._queue, self._stop, init_fn),
                                        daemon=True)
        self._thread.start()

    def __iter__(self) -> Prefetcher:
        return self

    def __next__(self):
        if self._done:
            raise StopIteration
        item = self._get()
        if item is _END:
            self.close()
            raise StopIteration
        if isinstance(item, _Failure):
            self.close()
            raise item.exc
        return item

    def _get(self):
        deadline = time.monotonic() + self._timeout if self._timeout > 0 else None
        while True:
            wait = 0.5 if deadline is None else min(0.5, max(0.0, deadline - time.monotonic()))
            try:
                return self._queue.get(timeout=wait)
            except queue.Empty:
                pass
            if not self._thread.is_alive() and self._queue.empty():
                self.close()
                raise RuntimeError("DataLoader: the prefetch thread stopped without "
                                   "finishing the epoch")
            if deadline is not None and time.monotonic() >= deadline:
                self.close()
                raise RuntimeError(f"DataLoader: timed out after {self._timeout:g} s "
                                   "waiting for a batch (timeout=...)")

    def close(self) -> None:
        """Stop the thread (finishing at most the batch it is building) and wait for it."""
        self._done = True
        self._stop.set()
        while True:  # free the queue so a thread blocked in put() sees the stop flag
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=30)

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown; nothing left to do
            pass
