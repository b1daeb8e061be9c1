"""Samplers: the order in which a ``DataLoader`` visits dataset indices.

Every sampler here draws all its random numbers when ``iter()`` is called (not lazily,
sample by sample), so the order is fixed on the caller's thread even when batches are
then built in a prefetch thread. ``_index_array()`` hands the same order over as one
NumPy array, which lets ``BatchSampler`` cut batches by slicing.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from ._rng import data_rng

__all__ = ["Sampler", "SequentialSampler", "RandomSampler", "SubsetRandomSampler",
           "WeightedRandomSampler", "BatchSampler", "DistributedSampler"]


class Sampler:
    """Base class: ``__iter__`` yields dataset indices; ``__len__`` says how many."""

    def __iter__(self) -> Iterator[int]:
        raise NotImplementedError(f"{type(self).__name__} must define __iter__")


class _ArraySampler(Sampler):
    """A sampler whose whole order for one pass is ``_index_array()``."""

    def __iter__(self) -> Iterator[int]:
        return iter(self._index_array().tolist())

    def _index_array(self) -> np.ndarray:
        raise NotImplementedError


def _as_index_array(sampler) -> np.ndarray | None:
    """The sampler's order as one array, if it offers that and does not override iter."""
    if isinstance(sampler, _ArraySampler) and type(sampler).__iter__ is _ArraySampler.__iter__:
        return np.asarray(sampler._index_array(), dtype=np.intp)
    return None


class SequentialSampler(_ArraySampler):
    """Indices 0, 1, ..., len(data_source) - 1.

    >>> list(SequentialSampler(range(3)))
    [0, 1, 2]
    """

    def __init__(self, data_source):
        self.data_source = data_source

    def __len__(self) -> int:
        return len(self.data_source)

    def _index_array(self) -> np.ndarray:
        return np.arange(len(self.data_source))


class RandomSampler(_ArraySampler):
    """A random order of the indices (a new one each ``iter()``).

    Args:
        data_source: the dataset (only its length is used).
        replacement: draw with replacement (then ``num_samples`` can be anything).
        num_samples: how many indices per pass; ``len(data_source)`` by default.
            Without replacement, more than that chains several permutations.
        generator: an ``sd.Generator``; the global generator when None.

    >>> import shendu as sd
    >>> sorted(RandomSampler(range(5), generator=sd.Generator().manual_seed(0)))
    [0, 1, 2, 3, 4]
    """

    def __init__(self, data_source, replacement: bool = False, num_samples: int | None = None,
                 generator=None):
        self.data_source = data_source
        self.replacement = bool(replacement)
        self._num_samples = num_samples
        self.generator = generator
        if num_samples is not None and (not isinstance(num_samples, (int, np.integer))
                                        or num_samples <= 0):
            raise ValueError(f"RandomSampler: num_samples must be a positive integer, "
                             f"got {num_samples!r}")

    @property
    def num_samples(self) -> int:
        return len(self.data_source) if self._num_samples is None else int(self._num_samples)

    def __len__(self) -> int:
        return self.num_samples

    def _index_array(self) -> np.ndarray:
        n, k = len(self.data_source), self.num_samples
        rng = data_rng(self.generator)
        if self.replacement:
            return rng.integers(0, n, size=k)
        reps = -(-k // n) if n else 0
        return np.concatenate([rng.permutation(n) for _ in range(reps)] or
                              [np.empty(0, np.int64)])[:k]


class SubsetRandomSampler(_ArraySampler):
    """The given indices in a random order (a new one each ``iter()``).

    >>> import shendu as sd
    >>> sorted(SubsetRandomSampler([7, 3, 5], generator=sd.Generator().manual_seed(1)))
    [3, 5, 7]
    """

    def __init__(self, indices: Sequence[int], generator=None):
        self.indices = indices
        self.generator = generator

    def __len__(self) -> int:
        return len(self.indices)

    def _index_array(self) -> np.ndarray:
        idx = np.asarray(self.indices, dtype=np.int64)
        return idx[data_rng(self.generator).permutation(len(idx))]


class WeightedRandomSampler(_ArraySampler):
    """``num_samples`` indices drawn with probability proportional to ``weights``.

    Args:
        weights: one non-negative weight per index (need not sum to 1).
        num_samples: how many indices per pass.
        replacement: draw with replacement (the usual way to oversample rare classes).
        generator: an ``sd.Generator``; the global generator when None.

    >>> import shendu as sd
    >>> list(WeightedRandomSampler([0, 0, 1.0], 3, generator=sd.Generator().manual_seed(0)))
    [2, 2, 2]
    """

    def __init__(self, weights: Sequence[float], num_samples: int, replacement: bool = True,
                 generator=None):
        w = np.asarray(weights, dtype=np.float64).reshape(-1)
        if w.size == 0 or np.any(w < 0) or not np.all(np.isfinite(w)) or w.sum() <= 0:
            raise ValueError("WeightedRandomSampler: weights must be finite, non-negative and "
                             f"not all zero, got {w.size} weights")
        if not isinstance(num_samples, (int, np.integer)) or num_samples <= 0:
            raise ValueError(f"WeightedRandomSampler: num_samples must be a positive integer, "
                             f"got {num_samples!r}")
        if not replacement and num_samples > np.count_nonzero(w):
            raise ValueError(f"WeightedRandomSampler: cannot draw {num_samples} samples without "
                             f"replacement from {np.count_nonzero(w)} non-zero weights")
        self.weights = w
        self.num_samples = int(num_samples)
        self.replacement = bool(replacement)
        self.generator = generator

    def __len__(self) -> int:
        return self.num_samples

    def _index_array(self) -> np.ndarray:
        return data_rng(self.generator).choice(len(self.weights), size=self.num_samples,
                                               replace=self.replacement,
                                               p=self.weights / self.weights.sum())


class BatchSampler(Sampler):
    """Groups the indices of ``sampler`` into lists of ``batch_size``.

    Args:
        sampler: any iterable of indices (usually a ``Sampler``).
        batch_size: indices per batch.
        drop_last: drop the last batch when it is smaller than ``batch_size``.

    >>> list(BatchSampler(SequentialSampler(range(5)), 2, drop_last=False))
    [[0, 1], [2, 3], [4]]
    """

    def __init__(self, sampler: Iterable[int], batch_size: int, drop_last: bool):
        if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) \
                or batch_size <= 0:
            raise ValueError(f"BatchSampler: batch_size must be a positive integer, "
                             f"got {batch_size!r}")
        self.sampler = sampler
        self.batch_size = int(batch_size)
        self.drop_last = bool(drop_last)

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        return (b.tolist() if isinstance(b, np.ndarray) else b for b in self._batches())

    def _batches(self) -> Iterator:
        """Batches as index arrays where the sampler can give one whole (the fast way),
        else as lists. The sampler is iterated (its random numbers drawn) right away."""
        order = _as_index_array(self.sampler)
        if order is not None:
            return self._sliced(order)
        return self._chunked(iter(self.sampler))

    def _sliced(self, order: np.ndarray) -> Iterator[np.ndarray]:
        bs = self.batch_size
        stop = len(order) - len(order) % bs if self.drop_last else len(order)
        for start in range(0, stop, bs):
            yield order[start:start + bs]

    def _chunked(self, it: Iterator[int]) -> Iterator[list[int]]:
        batch: list[int] = []
        for idx in it:
            batch.append(idx)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch


class DistributedSampler(_ArraySampler):
    """This rank's share of the dataset in data-parallel training (PyTorch's semantics).

    All ranks shuffle with the same seed (``seed + epoch``, so call ``set_epoch`` at the
    start of each epoch for a new order), the order is padded by repeating its start
    until it divides evenly (or cut short with ``drop_last=True``), and rank ``r`` takes
    every ``num_replicas``-th index starting at ``r``.

    Args:
        dataset: the dataset (only its length is used).
        num_replicas, rank: default to the process group's world size and rank (1 and 0
            when no process group is initialised).
        shuffle: a new permutation each epoch; otherwise the natural order.
        seed: the shuffling seed, the same on every rank.
        drop_last: drop the tail instead of padding.

    >>> s = DistributedSampler(range(5), num_replicas=2, rank=1, shuffle=False)
    >>> list(s), len(s)
    ([1, 3, 0], 3)
    """

    def __init__(self, dataset, num_replicas: int | None = None, rank: int | None = None,
                 shuffle: bool = True, seed: int = 0, drop_last: bool = False):
        if num_replicas is None or rank is None:
            from ..distributed import process_group as pg
            world = pg._WORLD
            if num_replicas is None:
                num_replicas = world.size if world is not None else 1
            if rank is None:
                rank = world.rank if world is not None else 0
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"DistributedSampler: invalid rank {rank} for num_replicas "
                             f"{num_replicas}; expected 0 <= rank < num_replicas")
        self.dataset, self.num_replicas, self.rank = dataset, int(num_replicas), int(rank)
        self.shuffle, self.seed, self.drop_last, self.epoch = bool(shuffle), int(seed), \
            bool(drop_last), 0
        n = len(dataset)
        if self.drop_last and n % self.num_replicas:
            self.num_samples = n // self.num_replicas
        else:
            self.num_samples = -(-n // self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas
        self._resume_at = 0   # samples of this epoch already consumed (set by a checkpoint)

    def set_epoch(self, epoch: int) -> None:
        """Use this epoch's order (every rank must set the same epoch). Setting the epoch a
        checkpoint was restored in keeps its resume position."""
        if int(epoch) != self.epoch:
            self._resume_at = 0
        self.epoch = int(epoch)

    def state_dict(self, position: int = 0) -> dict:
        """Plain data to resume from: the epoch, ``position`` (this rank's samples of that
        epoch already consumed) and the settings that fix the order."""
        return {"epoch": self.epoch, "position": int(position), "seed": self.seed,
                "num_replicas": self.num_replicas, "shuffle": self.shuffle,
                "drop_last": self.drop_last, "dataset_len": len(self.dataset)}

    def load_state_dict(self, state: dict) -> None:
        """Resume: the next pass yields this epoch's order from ``position`` on (once)."""
        mine = self.state_dict()
        for key in ("seed", "num_replicas", "shuffle", "drop_last", "dataset_len"):
            if key in state and state[key] != mine[key]:
                raise ValueError(f"DistributedSampler.load_state_dict: saved {key}="
                                 f"{state[key]!r} but this sampler has {mine[key]!r}; the "
                                 "order would differ, so the position cannot be restored")
        position = int(state.get("position", 0))
        if not 0 <= position <= self.num_samples:
            raise ValueError(f"DistributedSampler.load_state_dict: position {position} is "
                             f"outside 0..{self.num_samples}")
        self.epoch, self._resume_at = int(state["epoch"]), position

    def __len__(self) -> int:
        return self.num_samples - self._resume_at

    def _index_array(self) -> np.ndarray:
        n = len(self.dataset)
        if self.shuffle:
            order = np.random.default_rng(self.seed + self.epoch).permutation(n)
        else:
            order = np.arange(n)
        if self.total_size > n and n:
            order = np.resize(order, self.total_size)   # repeats the start as padding
        order = order[:self.total_size]
        mine = order[self.rank:self.total_size:self.num_replicas]
        skip, self._resume_at = self._resume_at, 0
        return mine[skip:]
