"""Collation: turning a list of samples into one batch of tensors."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .. import dtypes
from ..backend import get_array_module
from ..tensor import Tensor

__all__ = ["default_collate", "default_convert"]

_wrap = Tensor._wrap


def _describe(x) -> str:
    if isinstance(x, (Tensor, np.ndarray)):
        return f"{type(x).__name__} of shape {tuple(x.shape)} and dtype {x.dtype}"
    return type(x).__name__


def _stack_arrays(arrays: list, what: str) -> Tensor:
    first = arrays[0]
    for i, a in enumerate(arrays):
        if a.shape != first.shape:
            raise ValueError(f"default_collate: cannot stack {what}s of different shapes: sample "
                             f"0 has {tuple(first.shape)}, sample {i} has {tuple(a.shape)}; "
                             "pad them or pass a collate_fn")
    return _wrap(get_array_module(first).stack(arrays))


def default_collate(batch: Sequence):
    """Stack a list of samples into a batch, keeping the samples' structure.

    Tensors and NumPy arrays are stacked along a new first dimension; Python ints become
    an int64 tensor, floats a tensor of the default dtype (float32), bools a bool tensor;
    strings stay a list; tuples, lists, namedtuples and dicts are collated field by field.

    Args:
        batch: a non-empty list of samples with the same structure.

    >>> import numpy as np
    >>> x, y = default_collate([(np.zeros(3), 0), (np.ones(3), 1)])
    >>> x.shape, y
    ((2, 3), tensor([0, 1]))
    >>> default_collate([{"a": 1.5}, {"a": 2.5}])
    {'a': tensor([1.5000, 2.5000])}
    """
    if len(batch) == 0:
        raise ValueError("default_collate: got an empty batch")
    elem = batch[0]
    if isinstance(elem, Tensor):
        return _stack_arrays([b._data for b in batch], "tensor")
    if isinstance(elem, np.ndarray):
        if elem.dtype.kind in "OUS":
            raise TypeError(f"default_collate: cannot collate arrays of dtype {elem.dtype}")
        return _stack_arrays([np.asarray(b) for b in batch], "array")
    if isinstance(elem, (bool, np.bool_)):
        return _wrap(np.asarray(batch, dtype=np.bool_))
    if isinstance(elem, np.generic):
        return _wrap(np.asarray(batch, dtype=elem.dtype))
    if isinstance(elem, int):
        return _wrap(np.asarray(batch, dtype=np.int64))
    if isinstance(elem, float):
        return _wrap(np.asarray(batch, dtype=dtypes.get_default_dtype()))
    if isinstance(elem, (str, bytes)):
        return list(batch)
    if isinstance(elem, Mapping):
        return {key: default_collate([b[key] for b in batch]) for key in elem}
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):  # namedtuple
        return type(elem)(*(default_collate(list(f)) for f in zip(*batch)))
    if isinstance(elem, Sequence):
        if any(len(b) != len(elem) for b in batch):
            raise ValueError("default_collate: samples have different lengths "
                             f"({sorted({len(b) for b in batch})}); pass a collate_fn")
        fields = [default_collate(list(f)) for f in zip(*batch)]
        return tuple(fields) if isinstance(elem, tuple) else fields
    raise TypeError(f"default_collate: don't know how to collate a {_describe(elem)}; "
                    "samples should hold tensors, arrays, numbers, strings, tuples or dicts")


def default_convert(data):
    """Turn NumPy arrays (also inside tuples, lists and dicts) into tensors, sharing memory.

    >>> import numpy as np
    >>> default_convert((np.arange(2), "label"))
    (tensor([0, 1]), 'label')
    """
    if isinstance(data, Tensor):
        return data
    if isinstance(data, np.ndarray):
        return data if data.dtype.kind in "OUS" else _wrap(data)
    if isinstance(data, np.generic):
        return _wrap(np.asarray(data))
    if isinstance(data, Mapping):
        return {k: default_convert(v) for k, v in data.items()}
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(default_convert(v) for v in data))
    if isinstance(data, (tuple, list)):
        return type(data)(default_convert(v) for v in data)
    if get_array_module(data) is not np:  # a CuPy array
        return _wrap(data)
    return data
