"""``DataLoader``: iterate a dataset in (shuffled) mini-batches of tensors.

Speed comes from two things. When the dataset can hand over whole arrays
(``get_batch``: ``TensorDataset``, the built-in datasets, ``Subset``/``ConcatDataset`` of
them) and no ``collate_fn`` is given, a batch is one fancy-index per array, not a Python
loop over samples. And with ``prefetch=k`` a background thread builds up to ``k``
batches ahead, so loading overlaps the model's compute.

Randomness: the sampler's order is drawn when iteration starts; then one seed is drawn
(from ``generator``, else the global generator) and batch ``i`` of the epoch gets its own
stream derived from (seed, i) for random transforms. Results therefore depend only on
``sd.manual_seed`` / ``generator``, and are the same with and without prefetch or worker
processes (``num_workers``; see ``_workers.py``).
"""
from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterator

import numpy as np

from ..tensor import Tensor
from . import _workers
from ._prefetch import Prefetcher
from ._rng import draw_seed, using_rng
from .collate import default_collate, default_convert
from .dataset import IterableDataset
from .sampler import BatchSampler, RandomSampler, SequentialSampler

__all__ = ["DataLoader"]


def _check_positive_int(name: str, value, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"DataLoader: {name} must be a positive integer, got {value!r}")


class DataLoader:
    """Mini-batches from a dataset, as tensors.

    Args:
        dataset: a map-style ``Dataset`` (``ds[i]``, ``len(ds)``) or an ``IterableDataset``.
        batch_size: samples per batch; None yields single samples (converted to tensors).
        shuffle: a new random order every epoch.
        sampler: the order of indices (excludes ``shuffle``).
        batch_sampler: yields lists of indices, one per batch (excludes ``batch_size``,
            ``shuffle``, ``sampler`` and ``drop_last``).
        num_workers: worker processes building batches in parallel (0: build them in
            this process). Each gets batches of indices in turn; batches come back in
            sampler order. See ``shendu.data._workers`` for seeding and start methods.
        collate_fn: turns a list of samples into a batch; ``default_collate`` when None.
            Giving one disables the whole-array fast path.
        pin_memory: accepted for compatibility; has no effect on the CPU.
        drop_last: drop the last, smaller batch.
        timeout: seconds to wait for a batch from a worker or the prefetch thread before
            raising (0: no limit).
        worker_init_fn: called in each worker process with its id (after seeding), or
            with id 0 on the prefetch thread when ``num_workers=0``.
        generator: an ``sd.Generator`` for shuffling and transforms; the global one if None.
        prefetch_factor: batches each worker builds ahead (default 2; needs workers).
        persistent_workers: keep the worker processes between epochs.
        multiprocessing_context: ``'fork'`` (the default where available), ``'spawn'``,
            ``'forkserver'``, or a ``multiprocessing`` context.
        pin_memory_device, in_order: accepted for compatibility; batches always come in
            sampler order (``in_order=False`` permits, not requires, another order).
        prefetch: with ``num_workers=0``, batches to build ahead on a background thread
            (0: build on demand).
        transform: called on each batch's inputs (the first element of a tuple batch, or
            the whole batch), as a NumPy array; e.g. a ``shendu.data.transforms`` pipeline.
        target_transform: likewise for the second element (the targets).
        device: move every batch to this device (on the prefetch thread, when on).

    >>> import shendu as sd
    >>> from shendu.data import TensorDataset
    >>> ds = TensorDataset(sd.arange(10).reshape(5, 2), sd.arange(5))
    >>> loader = DataLoader(ds, batch_size=2, shuffle=True, generator=sd.Generator().manual_seed(0))
    >>> len(loader), [tuple(y.shape) for x, y in loader]
    (3, [(2,), (2,), (1,)])
    """

    def __init__(self, dataset, batch_size: int | None = 1, shuffle: bool | None = None,
                 sampler=None, batch_sampler=None, num_workers: int = 0,
                 collate_fn: Callable | None = None, pin_memory: bool = False,
                 drop_last: bool = False, timeout: float = 0,
                 worker_init_fn: Callable[[int], None] | None = None, generator=None, *,
                 prefetch_factor: int | None = None, persistent_workers: bool = False,
                 multiprocessing_context=None, pin_memory_device: str = "",
                 in_order: bool = True, prefetch: int = 0,
                 transform: Callable | None = None, target_transform: Callable | None = None,
                 device=None):
        shuffle = bool(shuffle)
        iterable = isinstance(dataset, IterableDataset)
        if iterable and (shuffle or sampler is not None or batch_sampler is not None):
            raise ValueError("DataLoader: an IterableDataset sets its own order; shuffle, "
                             "sampler and batch_sampler must be left unset")
        if batch_sampler is not None and (batch_size != 1 or shuffle or sampler is not None
                                          or drop_last):
            raise ValueError("DataLoader: batch_sampler is mutually exclusive with batch_size, "
                             "shuffle, sampler and drop_last")
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler is mutually exclusive with shuffle=True; "
                             "use a RandomSampler (or shuffle the sampler's indices) instead")
        if batch_size is None and drop_last:
            raise ValueError("DataLoader: drop_last needs a batch_size (got batch_size=None)")
        _check_positive_int("batch_size", batch_size, allow_none=True)
        if isinstance(prefetch, bool) or not isinstance(prefetch, (int, np.integer)) \
                or prefetch < 0 or num_workers < 0:
            raise ValueError(f"DataLoader: prefetch and num_workers must be non-negative "
                             f"integers, got prefetch={prefetch!r}, num_workers={num_workers!r}")
        if isinstance(num_workers, bool) or not isinstance(num_workers, (int, np.integer)):
            raise ValueError(f"DataLoader: num_workers must be an integer, got {num_workers!r}")
        if num_workers == 0 and (prefetch_factor is not None or persistent_workers):
            raise ValueError("DataLoader: prefetch_factor and persistent_workers need worker "
                             "processes (num_workers > 0)")
        _check_positive_int("prefetch_factor", prefetch_factor, allow_none=True)
        if timeout < 0:
            raise ValueError(f"DataLoader: timeout must be non-negative, got {timeout!r}")
        if num_workers > 0:
            _workers._context(multiprocessing_context)  # a bad one fails here, not later
        self.dataset = dataset
        self.batch_size = batch_size
        self.drop_last = bool(drop_last)
        self.generator = generator
        # (base seed, first batch index) for the next iter only: a checkpoint resuming
        # mid-epoch sets it so batches keep their random streams and the generator is not
        # drawn from twice for one epoch (see shendu.distributed.checkpoint)
        self._resume: tuple[int, int] | None = None
        self._base_seed: int | None = None   # the seed of the current/last epoch
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.timeout = timeout
        self.worker_init_fn = worker_init_fn
        self.prefetch = int(prefetch)
        self.prefetch_factor = int(prefetch_factor or 2) if num_workers > 0 else None
        self.persistent_workers = bool(persistent_workers)
        self.multiprocessing_context = multiprocessing_context
        self._pool = None  # the persistent workers, started by the first epoch
        self.transform = transform
        self.target_transform = target_transform
        self.device = device
        self._iterable = iterable
        if not iterable and batch_sampler is None:
            if sampler is None:
                sampler = (RandomSampler(dataset, generator=generator) if shuffle
                           else SequentialSampler(dataset))
            if batch_size is not None:
                batch_sampler = BatchSampler(sampler, batch_size, self.drop_last)
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.collate_fn = collate_fn
        self._whole_arrays = (collate_fn is None and not iterable and batch_sampler is not None
                              and hasattr(dataset, "get_batch"))

    def __len__(self) -> int:
        if self._iterable:
            n = len(self.dataset)  # TypeError when the stream has no length, as in PyTorch
            if self.batch_size is None:
                return n
            return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
        if self.batch_sampler is not None:
            return len(self.batch_sampler)
        return len(self.sampler)

    def __iter__(self) -> Iterator:
        # Everything random is drawn here, on the caller's thread, in a fixed order.
        workers = self.num_workers > 0
        try:
            length = len(self)   # before the keys: a resumed sampler's length is its rest
        except TypeError:
            length = None
        keys = None if workers and self._iterable else self._keys()  # (workers iterate)
        resume, self._resume = self._resume, None
        base_seed, first = resume if resume is not None else (draw_seed(self.generator), 0)
        self._base_seed = base_seed
        if workers:
            return _LoaderIter(self._worker_iter(keys, base_seed, first), length)
        source = self._produce(keys, base_seed, first)
        if self.prefetch > 0:
            source = Prefetcher(source, self.prefetch, self.timeout, self.worker_init_fn)
        elif self.worker_init_fn is not None:
            self.worker_init_fn(0)
        return _LoaderIter(source, length)

    def _worker_iter(self, keys, base_seed: int, first: int = 0) -> _workers.WorkerIter:
        finish = None if self.device is None else functools.partial(_to_device,
                                                                     device=self.device)
        pool, owns = self._pool, not self.persistent_workers
        if pool is None or not pool.alive:
            pool = _workers.WorkerPool(self._fetcher(), self.num_workers, base_seed,
                                       self.worker_init_fn, self.multiprocessing_context)
            if self.persistent_workers:
                self._pool = pool
        return _workers.WorkerIter(pool, keys, base_seed, self.prefetch_factor,
                                   self.timeout, owns, finish, first)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_pool"] = None  # worker processes stay with the loader that started them
        return state

    def _keys(self) -> Iterator:
        """What each batch is built from: index arrays/lists, indices, or sample lists."""
        if self._iterable:
            return self._fetcher().keys()
        if self.batch_sampler is None:
            return iter(self.sampler)
        if isinstance(self.batch_sampler, BatchSampler):
            return self.batch_sampler._batches()
        return iter(self.batch_sampler)

    def _produce(self, keys: Iterator, base_seed: int, first: int = 0) -> Iterator:
        fetcher = self._fetcher()
        for i, key in enumerate(keys, first):
            with using_rng((base_seed, i)):
                try:
                    batch = fetcher.fetch(key)
                    if self.device is not None:
                        batch = _to_device(batch, self.device)
                except Exception as exc:
                    if hasattr(exc, "add_note"):
                        exc.add_note(f"(raised by DataLoader while building batch {i})")
                    raise
            yield batch

    def _fetch(self, key):
        batch = self._fetcher().fetch(key)
        return batch if self.device is None else _to_device(batch, self.device)

    def _fetcher(self) -> _Fetcher:
        return _Fetcher(self.dataset, self.batch_size, self.drop_last, self.collate_fn,
                        self.transform, self.target_transform, self._whole_arrays,
                        self._iterable, self.batch_sampler is None)


class _Fetcher:
    """What builds one batch from its key: the dataset and the loader's batch settings,
    without the sampler; small and picklable, so worker processes get one each."""

    def __init__(self, dataset, batch_size, drop_last, collate_fn, transform,
                 target_transform, whole_arrays, iterable, single):
        self.dataset = dataset
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.collate_fn = collate_fn
        self.transform = transform
        self.target_transform = target_transform
        self.whole_arrays = whole_arrays
        self.iterable = iterable
        self.single = single  # no batch sampler: keys are single indices

    def keys(self) -> Iterator:
        """An IterableDataset's batches-to-be: samples, or lists of batch_size samples."""
        stream = iter(self.dataset)
        if self.batch_size is None:
            return stream
        return self._chunks(stream)

    def _chunks(self, stream: Iterator) -> Iterator[list]:
        while True:
            chunk = list(itertools.islice(stream, self.batch_size))
            if not chunk or (self.drop_last and len(chunk) < self.batch_size):
                return
            yield chunk

    def fetch(self, key):
        ds = self.dataset
        if self.whole_arrays:
            batch = ds.get_batch(np.asarray(key, dtype=np.intp))
        elif self.iterable:
            batch = key if self.batch_size is None else (self.collate_fn or default_collate)(key)
        elif self.single:
            batch = ds[key]
        else:
            keys = key.tolist() if isinstance(key, np.ndarray) else list(key)
            samples = ds.__getitems__(keys) if hasattr(ds, "__getitems__") else \
                [ds[k] for k in keys]
            batch = (self.collate_fn or default_collate)(samples)
        if self.transform is not None or self.target_transform is not None:
            batch = self._transform(batch)
        if self.collate_fn is None:
            batch = default_convert(batch)
        return batch

    def _transform(self, batch):
        if isinstance(batch, (tuple, list)):
            parts = list(batch)
            if self.transform is not None:
                parts[0] = _apply(self.transform, parts[0])
            if self.target_transform is not None:
                if len(parts) < 2:
                    raise ValueError("DataLoader: target_transform needs (input, target) "
                                     f"batches, got a {type(batch).__name__} of {len(parts)}")
                parts[1] = _apply(self.target_transform, parts[1])
            return tuple(parts) if isinstance(batch, tuple) else parts
        if isinstance(batch, dict):
            raise TypeError("DataLoader: transform= does not know which entry of a dict batch "
                            "holds the inputs; transform inside collate_fn instead")
        if self.target_transform is not None:
            raise ValueError("DataLoader: target_transform needs (input, target) batches")
        return _apply(self.transform, batch)


class _LoaderIter:
    """What ``iter(loader)`` returns: the batches, ``len()``, and ``close()`` (which stops
    the prefetch thread; dropping the iterator does the same)."""

    __slots__ = ("_source", "_length")

    def __init__(self, source: Iterator, length: int | None):
        self._source = source
        self._length = length

    def __iter__(self) -> _LoaderIter:
        return self

    def __next__(self):
        return next(self._source)

    def __len__(self) -> int:
        if self._length is None:
            raise TypeError("DataLoader: this dataset's length is unknown")
        return self._length

    def close(self) -> None:
        self._source.close()


def _apply(fn: Callable, x):
    # Transforms see plain NumPy arrays (cheap: the tensor shares memory).
    return fn(x._data if isinstance(x, Tensor) else x)


def _to_device(batch, device):
    if isinstance(batch, Tensor):
        return batch.to(device)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (tuple, list)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch
