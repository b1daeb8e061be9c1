"""Making tensors: from data, filled, ranges and random draws (PyTorch's signatures)."""
from __future__ import annotations

import numpy as np

from . import dtypes
from .backend import to_device
from .random import _rng
from .tensor import Tensor, _asarray


def _size(size):
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    out = tuple(int(s) for s in size)
    if any(s < 0 for s in out):
        from .errors import ShapeError

        raise ShapeError(f"negative dimension in size {out}")
    return out


def _finish(arr, dtype, device, requires_grad):
    if dtype is not None:
        arr = arr.astype(dtypes.as_dtype(dtype), copy=False)
    if device is not None:
        arr = to_device(arr, device)
    t = Tensor._wrap(arr)
    if requires_grad:
        t.requires_grad_(True)
    return t


def tensor(data, dtype=None, device=None, requires_grad=False) -> Tensor:
    """A new tensor holding a copy of ``data`` (lists, numbers, arrays or tensors).

    >>> import shendu as sd
    >>> sd.tensor([[1, 2], [3, 4]]).shape
    (2, 2)
    """
    arr = _asarray(data, dtype)
    if isinstance(data, (np.ndarray, Tensor)) or arr is data:
        arr = arr.copy()
    return _finish(arr, None, device, requires_grad)


def as_tensor(data, dtype=None, device=None) -> Tensor:
    """Like ``tensor`` but shares memory with ``data`` when no conversion is needed."""
    if isinstance(data, Tensor):
        return data.to(*(a for a in (device, dtype) if a is not None))
    return _finish(_asarray(data, dtype), None, device, False)


asarray = as_tensor


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor sharing memory with a NumPy array."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected a numpy.ndarray, got {type(array).__name__}")
    return Tensor._wrap(array)


def from_dlpack(ext) -> Tensor:
    """A tensor sharing memory with a DLPack producer (NumPy, PyTorch, CuPy, ...).

    >>> import numpy as np, shendu as sd
    >>> sd.from_dlpack(np.ones(2, np.float32))
    tensor([1., 1.])
    """
    from .interop.dlpack import from_dlpack as _from_dlpack

    return _from_dlpack(ext)


def _filled(fn, size, dtype, device, requires_grad):
    dt = dtypes.get_default_dtype() if dtype is None else dtypes.as_dtype(dtype)
    return _finish(fn(_size(size), dt), None, device, requires_grad)


def zeros(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _filled(np.zeros, size, dtype, device, requires_grad)


def ones(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _filled(np.ones, size, dtype, device, requires_grad)


def empty(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _filled(np.empty, size, dtype, device, requires_grad)


def full(size, fill_value, dtype=None, device=None, requires_grad=False) -> Tensor:
    if dtype is None:
        dtype = dtypes.int64 if isinstance(fill_value, int) and not isinstance(fill_value, bool) \
            else (dtypes.bool if isinstance(fill_value, bool) else None)
    return _filled(lambda s, dt: np.full(s, fill_value, dt), (size,) if isinstance(size, int)
                   else (tuple(size),), dtype, device, requires_grad)


def _like(fn):
    def like(input, dtype=None, device=None, requires_grad=False, **kw):
        return fn(*input.shape, dtype=dtype or input.dtype, device=device or input.device,
                  requires_grad=requires_grad, **kw)
    like.__name__ = fn.__name__ + "_like"
    like.__doc__ = f"``{fn.__name__}`` with the shape (and dtype, device) of ``input``."
    return like


zeros_like = _like(zeros)
ones_like = _like(ones)
empty_like = _like(empty)


def full_like(input, fill_value, dtype=None, device=None, requires_grad=False) -> Tensor:
    return full(input.shape, fill_value, dtype=dtype or input.dtype,
                device=device or input.device, requires_grad=requires_grad)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False) -> Tensor:
    """``[start, end)`` in steps; int64 when all bounds are integers, else float32."""
    if end is None:
        start, end = 0, start
    if dtype is None:
        ints = all(isinstance(v, (int, np.integer)) for v in (start, end, step))
        dtype = dtypes.int64 if ints else dtypes.get_default_dtype()
    return _finish(np.arange(start, end, step), dtype, device, requires_grad)


def linspace(start, end, steps, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _finish(np.linspace(start, end, int(steps)),
                   dtype or dtypes.get_default_dtype(), device, requires_grad)


def logspace(start, end, steps, base=10.0, dtype=None, device=None) -> Tensor:
    return _finish(np.logspace(start, end, int(steps), base=base),
                   dtype or dtypes.get_default_dtype(), device, False)


def eye(n, m=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _finish(np.eye(n, m), dtype or dtypes.get_default_dtype(), device, requires_grad)


def rand(*size, generator=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Uniform samples from [0, 1)."""
    arr = _rng(generator).random(_size(size))
    return _finish(arr, dtype or dtypes.get_default_dtype(), device, requires_grad)


def randn(*size, generator=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Standard normal samples."""
    arr = _rng(generator).standard_normal(_size(size))
    return _finish(arr, dtype or dtypes.get_default_dtype(), device, requires_grad)


def randint(low=0, high=None, size=None, *, generator=None, dtype=None, device=None) -> Tensor:
    """Integers from [low, high); ``randint(high, size)`` also works, as in PyTorch."""
    if size is None:
        low, high, size = 0, low, high
    if high is None:
        low, high = 0, low
    arr = _rng(generator).integers(low, high, tuple(size))
    return _finish(arr, dtype or dtypes.int64, device, False)


def randperm(n, *, generator=None, dtype=None, device=None) -> Tensor:
    return _finish(_rng(generator).permutation(n), dtype or dtypes.int64, device, False)


def rand_like(input, dtype=None, device=None, requires_grad=False) -> Tensor:
    return rand(*input.shape, dtype=dtype or input.dtype, device=device or input.device,
                requires_grad=requires_grad)


def randn_like(input, dtype=None, device=None, requires_grad=False) -> Tensor:
    return randn(*input.shape, dtype=dtype or input.dtype, device=device or input.device,
                 requires_grad=requires_grad)


def randint_like(input, low=0, high=None, *, generator=None, dtype=None, device=None) -> Tensor:
    """``randint`` with the shape (and dtype, device) of ``input``; ``randint_like(x, high)``
    draws from [0, high), as in PyTorch."""
    if high is None:
        low, high = 0, low
    return randint(low, high, input.shape, generator=generator, dtype=dtype or input.dtype,
                   device=device or input.device)


def normal(mean=0.0, std=1.0, size=None, *, generator=None, dtype=None, device=None) -> Tensor:
    m = mean._data if isinstance(mean, Tensor) else mean
    s = std._data if isinstance(std, Tensor) else std
    if size is None:
        size = np.broadcast_shapes(np.shape(m), np.shape(s))
    arr = _rng(generator).normal(to_device(m, "cpu") if hasattr(m, "shape") else m,
                                 to_device(s, "cpu") if hasattr(s, "shape") else s, tuple(size))
    return _finish(arr, dtype or dtypes.get_default_dtype(), device, False)


def bernoulli(input, p=None, *, generator=None) -> Tensor:
    """1 with probability ``input`` (or ``p``), else 0."""
    probs = to_device(input._data, "cpu") if p is None else np.full(input.shape, p)
    arr = (_rng(generator).random(input.shape) < probs).astype(input.dtype)
    return _finish(arr, None, input.device, False)


def multinomial(input, num_samples, replacement=False, *, generator=None) -> Tensor:
    """Draw category indices from each row of (unnormalised) probabilities."""
    probs = np.asarray(to_device(input._data, "cpu"), dtype=np.float64)
    squeeze = probs.ndim == 1
    probs = np.atleast_2d(probs)
    rng = _rng(generator)
    rows = []
    for row in probs:
        if row.min() < 0 or row.sum() <= 0:
            raise ValueError("multinomial: probabilities must be non-negative with a "
                             "positive sum")
        rows.append(rng.choice(len(row), size=num_samples, replace=replacement,
                               p=row / row.sum()))
    out = np.stack(rows)
    return _finish(out[0] if squeeze else out, dtypes.int64, input.device, False)
