"""DLPack: share tensor memory with NumPy, PyTorch, CuPy, JAX... without copying.

``sd.from_dlpack(x)`` views any object with ``__dlpack__`` (or a legacy DLPack capsule) as a
shendu tensor, and ``torch.from_dlpack(t)`` / ``np.from_dlpack(t)`` view a shendu tensor;
a write through either side is seen by the other. CPU memory becomes a NumPy array, CUDA
memory a CuPy array, chosen by the producer's ``__dlpack_device__``.

>>> import numpy as np, shendu as sd
>>> a = np.zeros(3, np.float32)
>>> t = sd.from_dlpack(a)
>>> a[0] = 5.0
>>> t
tensor([5., 0., 0.])
"""
from __future__ import annotations

import numpy as np

from .. import dtypes
from ..tensor import Tensor

# DLDeviceType codes of the DLPack header
KDL_CPU, KDL_CUDA, KDL_CUDA_HOST, KDL_ROCM, KDL_CUDA_MANAGED = 1, 2, 3, 10, 13


class _Capsule:
    """A legacy DLPack capsule (``torch.utils.dlpack.to_dlpack``) as a producer object."""

    def __init__(self, capsule, device) -> None:
        self.capsule, self.device = capsule, device

    def __dlpack__(self, **_):
        return self.capsule

    def __dlpack_device__(self):
        return self.device


def _import(ext, device_type: int):
    if device_type in (KDL_CPU, KDL_CUDA_HOST):
        return np.from_dlpack(ext)
    if device_type in (KDL_CUDA, KDL_ROCM, KDL_CUDA_MANAGED):
        from ..backend import cuda

        cp = cuda.require()
        return cp.from_dlpack(ext.capsule if isinstance(ext, _Capsule) else ext)
    raise BufferError(f"from_dlpack: memory on DLPack device type {device_type} is neither "
                      "the CPU nor a CUDA GPU")


def from_dlpack(ext) -> Tensor:
    """A tensor sharing memory with ``ext``, any object with ``__dlpack__`` and
    ``__dlpack_device__`` (a NumPy array, a PyTorch or CuPy tensor) or a DLPack capsule.

    Args:
        ext: the producer; a PyTorch tensor must not require grad (``.detach()`` it).

    >>> import numpy as np, shendu as sd
    >>> sd.from_dlpack(np.arange(3.0))
    tensor([0., 1., 2.], dtype=shendu.float64)
    """
    if not hasattr(ext, "__dlpack__"):
        if type(ext).__name__ != "PyCapsule":
            raise TypeError(f"from_dlpack: expected an object with __dlpack__ (a NumPy "
                            f"array, a PyTorch or CuPy tensor) or a DLPack capsule, got "
                            f"{type(ext).__name__}")
        try:  # a capsule does not say where its memory is: try the CPU first
            return _checked(_import(_Capsule(ext, (KDL_CPU, 0)), KDL_CPU))
        except BufferError:
            return _checked(_import(_Capsule(ext, (KDL_CUDA, 0)), KDL_CUDA))
    device_type, _ = ext.__dlpack_device__()
    try:
        arr = _import(ext, int(device_type))
    except (BufferError, TypeError, ValueError, RuntimeError) as exc:
        raise BufferError(f"from_dlpack: cannot share the memory of a "
                          f"{type(ext).__name__}: {exc}") from exc
    return _checked(arr)


def _checked(arr) -> Tensor:
    if arr.dtype not in dtypes._SUPPORTED:
        raise TypeError(f"from_dlpack: dtype {arr.dtype} is not a shendu dtype (expected one "
                        f"of {sorted(map(str, dtypes._SUPPORTED))})")
    return Tensor._wrap(arr)


def to_dlpack_capsule(tensor: Tensor, *, stream=None, max_version=None, dl_device=None,
                      copy=None):
    """``Tensor.__dlpack__``: the capsule of the tensor's array (NumPy or CuPy)."""
    if tensor.requires_grad:
        raise RuntimeError("__dlpack__: can't export a tensor that requires grad (the "
                           "consumer would not see its graph); use tensor.detach()")
    kwargs = {k: v for k, v in (("stream", stream), ("max_version", max_version),
                                ("dl_device", dl_device), ("copy", copy)) if v is not None}
    return tensor._data.__dlpack__(**kwargs)


__all__ = ["from_dlpack"]
