"""Datasets: indexable collections of samples, and ways to combine and split them.

A dataset maps an index to a sample (``ds[i]``) and knows its length. A dataset that
holds whole arrays may also define ``get_batch(indices)``, returning an already
collated batch (a tuple of arrays, one row per index); ``DataLoader`` then builds each
batch with one fancy-index per array instead of a Python loop over samples.
"""
from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence

import numpy as np

from ..backend import get_array_module
from ..tensor import Tensor
from ._rng import data_rng
from ._split import split_lengths, stratified_indices

__all__ = ["Dataset", "IterableDataset", "TensorDataset", "Subset", "ConcatDataset",
           "random_split", "stratified_split"]


class Dataset:
    """Base class of map-style datasets: define ``__getitem__`` and ``__len__``.

    ``a + b`` concatenates two datasets.

    >>> class Squares(Dataset):
    ...     def __len__(self):
    ...         return 4
    ...     def __getitem__(self, i):
    ...         return i * i
    >>> ds = Squares() + Squares()
    >>> len(ds), ds[5]
    (8, 1)
    """

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")

    def __add__(self, other: Dataset) -> ConcatDataset:
        return ConcatDataset([self, other])


class IterableDataset(Dataset):
    """Base class of stream-style datasets: define ``__iter__`` (and ``__len__`` if known).

    >>> class Count(IterableDataset):
    ...     def __iter__(self):
    ...         return iter(range(3))
    >>> list(Count())
    [0, 1, 2]
    """

    def __iter__(self) -> Iterator:
        raise NotImplementedError(f"{type(self).__name__} must define __iter__")

    def __add__(self, other):
        raise TypeError("IterableDataset does not support '+'; chain the iterators instead")


def _rows(x) -> int:
    shape = x.shape if hasattr(x, "shape") else np.shape(x)
    if len(shape) == 0:
        raise ValueError("TensorDataset: got a 0-d tensor; every tensor needs a first "
                         "(sample) dimension")
    return shape[0]


class TensorDataset(Dataset):
    """Samples are rows of the given tensors (or NumPy arrays), which share a first dimension.

    Args:
        *tensors: tensors or arrays with the same length along dimension 0.

    >>> import shendu as sd
    >>> ds = TensorDataset(sd.arange(6).reshape(3, 2), sd.tensor([0, 1, 0]))
    >>> len(ds), ds[1]
    (3, (tensor([2, 3]), tensor(1)))
    """

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset: expected at least one tensor")
        tensors = tuple(t if isinstance(t, Tensor) else np.asarray(t) for t in tensors)
        sizes = [_rows(t) for t in tensors]
        if any(s != sizes[0] for s in sizes):
            shapes = ", ".join(f"tensor {i}: {tuple(t.shape)}" for i, t in enumerate(tensors))
            raise ValueError(f"TensorDataset: size mismatch along dimension 0 ({shapes}); "
                             "every tensor needs one row per sample")
        self.tensors = tensors

    def __len__(self) -> int:
        return _rows(self.tensors[0])

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def get_batch(self, indices: np.ndarray) -> tuple:
        """Rows ``indices`` of every tensor, as backend arrays (one gather per tensor)."""
        out = []
        for t in self.tensors:
            arr = t._data if isinstance(t, Tensor) else t
            xp = get_array_module(arr)
            out.append(arr[indices if xp is np else xp.asarray(indices)])
        return tuple(out)


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``, in that order.

    >>> Subset(list("abcdef"), [4, 0])[0]
    'e'
    """

    def __init__(self, dataset, indices: Sequence[int]):
        self.dataset = dataset
        self.indices = indices
        self._idx = np.asarray(indices, dtype=np.intp).reshape(-1)

    def __len__(self) -> int:
        return len(self._idx)

    def __getitem__(self, index):
        if isinstance(index, (list, np.ndarray)):
            return [self.dataset[int(i)] for i in self._idx[index]]
        return self.dataset[int(self._idx[index])]

    def __getattr__(self, name):
        # Offer get_batch only when the wrapped dataset has one; DataLoader checks hasattr.
        if name == "get_batch" and hasattr(self.__dict__.get("dataset"), "get_batch"):
            return lambda indices: self.dataset.get_batch(self._idx[indices])
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


class ConcatDataset(Dataset):
    """Several datasets one after another.

    >>> ds = ConcatDataset([[1, 2], [3, 4, 5]])
    >>> len(ds), ds[2], ds.cumulative_sizes
    (5, 3, [2, 5])
    """

    def __init__(self, datasets):
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("ConcatDataset: expected at least one dataset")
        for d in self.datasets:
            if isinstance(d, IterableDataset):
                raise TypeError("ConcatDataset: cannot index an IterableDataset")
        self.cumulative_sizes = np.cumsum([len(d) for d in self.datasets]).tolist()

    def __len__(self) -> int:
        return self.cumulative_sizes[-1]

    def __getitem__(self, index: int):
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"ConcatDataset: index out of range for length {n}")
        which = bisect.bisect_right(self.cumulative_sizes, index)
        start = self.cumulative_sizes[which - 1] if which else 0
        return self.datasets[which][index - start]

    def __getattr__(self, name):
        if name == "get_batch" and all(hasattr(d, "get_batch")
                                       for d in self.__dict__.get("datasets", [None])):
            return self._get_batch
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def _get_batch(self, indices):
        indices = np.asarray(indices, dtype=np.intp)
        which = np.searchsorted(self.cumulative_sizes, indices, side="right")
        starts = np.concatenate([[0], self.cumulative_sizes[:-1]])
        order = np.argsort(which, kind="stable")
        parts = [self.datasets[d].get_batch(indices[order][which[order] == d] - starts[d])
                 for d in np.unique(which)]
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        return tuple(get_array_module(cols[0]).concatenate(cols)[inverse]
                     for cols in zip(*parts))


def random_split(dataset, lengths: Sequence[float], generator=None) -> list[Subset]:
    """Split ``dataset`` at random into non-overlapping subsets of the given lengths.

    Args:
        dataset: any sized dataset.
        lengths: sizes summing to ``len(dataset)``, or fractions summing to 1 (rounded
            down, with the leftover samples handed out one each from the first split on,
            as in PyTorch).
        generator: an ``sd.Generator``; the global generator when None.

    >>> import shendu as sd
    >>> parts = random_split(range(10), [0.7, 0.3], generator=sd.Generator().manual_seed(0))
    >>> [len(p) for p in parts]
    [7, 3]
    """
    n = len(dataset)
    sizes = split_lengths("random_split", n, lengths)
    perm = data_rng(generator).permutation(n)
    bounds = np.cumsum([0] + sizes)
    return [Subset(dataset, perm[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]


def _labels_of(obj) -> np.ndarray:
    if isinstance(obj, Tensor):
        return np.asarray(obj)
    if isinstance(obj, np.ndarray):
        return obj
    targets = getattr(obj, "targets", None)
    if targets is not None:
        return np.asarray(targets)
    if isinstance(obj, Dataset):
        return np.asarray([int(obj[i][1]) for i in range(len(obj))])
    return np.asarray(obj)


def stratified_split(labels_or_dataset, fractions: Sequence[float] = (0.8, 0.1, 0.1),
                     seed: int | None = 0) -> tuple:
    """Split indices into parts (e.g. train/dev/test) that keep each class's proportion.

    Each class is divided by the fractions (largest-remainder rounding, chosen so the
    part sizes also match ``len * fraction`` as closely as whole samples allow), and each
    part's indices come out shuffled.

    Args:
        labels_or_dataset: integer class labels (array or tensor), or a dataset with
            ``.targets`` or ``(input, label)`` samples.
        fractions: one fraction per part, summing to 1.
        seed: seed of the shuffle; None draws it from shendu's global generator.

    Returns:
        A tuple of index arrays (given labels) or of ``Subset`` s (given a dataset).

    >>> labels = [0] * 80 + [1] * 20
    >>> train, dev, test = stratified_split(labels, (0.8, 0.1, 0.1), seed=0)
    >>> len(train), len(dev), len(test), int(sum(labels[i] for i in test))
    (80, 10, 10, 2)
    """
    labels = _labels_of(labels_or_dataset)
    if labels.ndim != 1:
        raise ValueError(f"stratified_split: expected one label per sample (a 1-d array), "
                         f"got shape {labels.shape}")
    rng = np.random.default_rng(seed) if seed is not None else data_rng(None)
    parts = stratified_indices(labels, fractions, rng)
    if isinstance(labels_or_dataset, Dataset):
        return tuple(Subset(labels_or_dataset, p) for p in parts)
    return tuple(parts)
