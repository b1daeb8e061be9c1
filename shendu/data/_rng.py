"""Where the data pipeline draws random numbers from.

Transforms and samplers draw from, in order of preference: an explicit ``generator``
argument, the stream the ``DataLoader`` installed for the batch being built (a
thread-local, so a prefetch thread never races the training loop for the global
generator), or shendu's global generator (``sd.manual_seed``).
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from .. import random as _random

_local = threading.local()


def data_rng(generator=None) -> np.random.Generator:
    """The NumPy generator a data transform should draw from (see module docstring)."""
    if generator is not None:
        if isinstance(generator, np.random.Generator):
            return generator
        return _random._rng(generator)
    override = getattr(_local, "rng", None)
    if override is None:
        return _random._rng(None)
    if isinstance(override, tuple):  # made on first use: most batches draw nothing
        override = _local.rng = batch_rng(*override)
    return override


@contextmanager
def using_rng(rng: np.random.Generator | tuple[int, int] | None) -> Iterator[None]:
    """Make ``data_rng()`` return ``rng`` in this thread for the duration of the block
    (a ``(base_seed, batch_index)`` pair stands for ``batch_rng(base_seed, batch_index)``)."""
    previous = getattr(_local, "rng", None)
    _local.rng = rng
    try:
        yield
    finally:
        _local.rng = previous


def draw_seed(generator=None) -> int:
    """One 63-bit seed drawn from ``generator`` (or the global generator)."""
    return int(data_rng(generator).integers(2 ** 63))


def batch_rng(base_seed: int, batch_index: int) -> np.random.Generator:
    """The stream for batch ``batch_index`` of an epoch: depends on nothing else, so
    batches come out the same whether or not they were built ahead in a thread."""
    return np.random.default_rng(np.random.SeedSequence((base_seed, batch_index)))
