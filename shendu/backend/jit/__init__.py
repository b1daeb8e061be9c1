"""CPU kernels compiled by numba, beside the NumPy code they speed up.

A NumPy expression makes one pass over memory per ufunc, and usually a temporary per
pass: ``g * (y > 0)`` reads ``y``, writes a mask, reads it and ``g``, writes the result. A
compiled loop reads each input once and writes the output once. The ops that move the
most memory in a training step (ReLU, pooling, im2col/col2im, the optimizers' updates,
the LSTM's gate arithmetic, word2vec's and GloVe's sparse steps) call the kernels here
when ``on(...)`` says so, and otherwise run their plain NumPy code, which stays the
reference the kernels are tested against.

The ops never call these kernels directly: ``backend/cpu.py`` has one dispatch function per
fast op, which runs the kernel when ``on(...)`` says so and the NumPy reference otherwise.
The kernels are on when numba is importable (``pip install shendu[fast]``; the ``train``
and ``test`` extras include it) and ``SHENDU_JIT`` is not ``0``; ``set_enabled`` and
``use(False)`` switch them at run time. They apply to NumPy float32/float64 arrays only
(CuPy arrays keep their own kernels). Threads and their OpenMP layer are chosen by
``backend/runtime.py`` before the first kernel runs (on MKL's GNU OpenMP pool when MKL is
there, else one thread); in a ``fork()`` child the kernels are off.

Each kernel compiles on first use for the dtypes it meets and is cached on disk by numba
(``cache=True``), so later processes load it in milliseconds.

>>> import numpy as np
>>> from shendu.backend import jit
>>> jit.on(np.zeros(3, np.float32)) == jit.enabled()
True
>>> jit.on(np.zeros(3, np.int64))
False
"""
from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator

import numpy as np

from .. import runtime

__all__ = ["available", "enabled", "set_enabled", "use", "on", "on_all", "set_num_threads",
           "num_threads", "parts", "parallel"]

# Modules holding the kernels; their public names become attributes of this package.
_KERNEL_MODULES = ("elementwise", "pool", "conv", "conv_compact", "conv_taps", "conv_winograd",
                   "norm",
                   "layer_norm", "optim", "mkl", "rnn", "loss", "activation", "attention",
                   "embeddings", "linear_chain", "vision", "resample")
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))

available = runtime.numba_available
enabled = runtime.kernels_on
set_enabled = runtime.set_kernels
set_num_threads = runtime.set_kernel_threads
num_threads = runtime.kernel_threads
parts = runtime.kernel_parts   # how kernels cut their work; see runtime.kernel_parts
parallel = runtime.kernels_parallel


@contextlib.contextmanager
def use(flag: bool) -> Iterator[None]:
    """``with jit.use(False):`` runs the block on the plain NumPy paths (tests compare)."""
    with runtime.use(kernels=flag):
        yield


def on(a) -> bool:
    """Whether a kernel may take ``a``: kernels on, ``a`` a NumPy float32/float64 array."""
    return type(a) is np.ndarray and a.dtype in _FLOATS and runtime.kernels_on()


def on_all(*arrays) -> bool:
    """``on`` for several arrays of one dtype."""
    first = arrays[0]
    return (all(type(a) is np.ndarray and a.dtype == first.dtype for a in arrays)
            and first.dtype in _FLOATS and runtime.kernels_on())


def __getattr__(name: str):
    # The kernel modules import numba, so they load on the first kernel asked for.
    if name.startswith("_"):
        raise AttributeError(name)
    runtime.setup_kernels()
    for mod in _KERNEL_MODULES:
        module = importlib.import_module(f"{__name__}.{mod}")
        if hasattr(module, name):
            value = getattr(module, name)
            globals()[name] = value
            return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
