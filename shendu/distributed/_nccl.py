"""The NCCL backend: collectives on GPU (CuPy) tensors through ``cupy.cuda.nccl``.

``init_process_group(backend="nccl")`` still starts the MPI group (``shendu run`` places
the ranks, and MPI carries everything that is not a GPU tensor: CPU tensors, the
collective checks, DDP's setup), then rank 0 makes an NCCL unique id, MPI broadcasts it,
and every rank builds its ``NcclCommunicator`` on GPU ``LOCAL_RANK % device_count``. A
collective on CuPy tensors is enqueued on the current CUDA stream and returns at once, so
it is ordered with the kernels around it without a host synchronisation; ``Work.wait()``
has nothing more to wait for on the host. ``ReduceOp.AVG`` is NCCL's ``ncclAvg`` from
NCCL 2.10 on, else a SUM followed by a division on the same stream.

Not run on a GPU yet: the logic that needs none (op and dtype mapping, argument checks,
the errors when CuPy, NCCL or a GPU is missing, the calls made on a communicator) is
tested with stand-ins; see docs/distributed.md.
"""
from __future__ import annotations

import numpy as np

from ._rank import launched
from .process_group import ReduceOp

__all__ = ["NcclBackend", "require", "reduce_op", "nccl_dtype"]

_AVG_SINCE = 21000   # NCCL_VERSION_CODE of 2.10.0, the first with ncclAvg


def require():
    """``(cupy, cupy.cuda.nccl)``, or an error that says what is missing and the fix."""
    try:
        import cupy
        from cupy.cuda import nccl
    except ImportError as exc:
        raise ImportError(
            "init_process_group: backend 'nccl' needs CuPy built with NCCL and an NVIDIA "
            "GPU (pip install cupy-cuda13x; CuPy's wheels load NCCL from the nvidia-nccl "
            f"package); CuPy could not be imported: {exc}. On CPUs use backend='mpi'"
        ) from exc
    if not getattr(nccl, "available", True):
        raise RuntimeError("init_process_group: backend 'nccl': this CuPy has no NCCL "
                           "(cupy.cuda.nccl.available is False); install nvidia-nccl-cu13 "
                           "or use backend='mpi'")
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:   # noqa: BLE001 - no driver: CUDARuntimeError
        raise RuntimeError(f"init_process_group: backend 'nccl' needs a CUDA GPU; the CUDA "
                           f"runtime reports none ({exc}); use backend='mpi'") from exc
    if count < 1:
        raise RuntimeError("init_process_group: backend 'nccl' needs a CUDA GPU; none is "
                           "visible (CUDA_VISIBLE_DEVICES?); use backend='mpi'")
    return cupy, nccl


def reduce_op(op, version: int, nccl) -> tuple[int, bool]:
    """``(NCCL reduction, divide_after)`` for a ``ReduceOp``: AVG is ncclAvg when the
    library has it (NCCL >= 2.10 and CuPy names it), else SUM and a division afterwards.

    >>> from types import SimpleNamespace as NS
    >>> lib = NS(NCCL_SUM=0, NCCL_PROD=1, NCCL_MAX=2, NCCL_MIN=3, NCCL_AVG=4)
    >>> reduce_op(ReduceOp.AVG, 21003, lib), reduce_op(ReduceOp.AVG, 2804, lib)
    ((4, False), (0, True))
    """
    table = {ReduceOp.SUM: "NCCL_SUM", ReduceOp.PRODUCT: "NCCL_PROD",
             ReduceOp.MAX: "NCCL_MAX", ReduceOp.MIN: "NCCL_MIN"}
    if op == ReduceOp.AVG:
        if version >= _AVG_SINCE and hasattr(nccl, "NCCL_AVG"):
            return nccl.NCCL_AVG, False
        return nccl.NCCL_SUM, True
    if op not in table:
        raise ValueError(f"nccl: unknown reduce op {op!r}; expected one of ReduceOp.SUM, "
                         "AVG, PRODUCT, MAX, MIN")
    return getattr(nccl, table[op]), False


_DTYPES = {"int8": "NCCL_INT8", "uint8": "NCCL_UINT8", "int32": "NCCL_INT32",
           "uint32": "NCCL_UINT32", "int64": "NCCL_INT64", "uint64": "NCCL_UINT64",
           "float16": "NCCL_FLOAT16", "float32": "NCCL_FLOAT32", "float64": "NCCL_FLOAT64"}


def nccl_dtype(dtype, nccl, name: str) -> int:
    """NCCL's data type for a NumPy/CuPy dtype (``bool`` travels as ``uint8``).

    >>> from types import SimpleNamespace as NS
    >>> nccl_dtype(np.float32, NS(NCCL_FLOAT32=7), "all_reduce")
    7
    """
    dt = np.dtype(dtype)
    key = "uint8" if dt == np.bool_ else dt.name
    if key not in _DTYPES or not hasattr(nccl, _DTYPES[key]):
        raise TypeError(f"{name}: NCCL cannot reduce or move dtype {dt}; expected one of "
                        f"{', '.join(sorted(_DTYPES))} or bool")
    return getattr(nccl, _DTYPES[key])


class NcclBackend:
    """One NCCL communicator over the ranks of the MPI group ``comm``.

    ``cupy`` and ``nccl`` default to the real modules (via :func:`require`); tests pass
    stand-ins."""

    def __init__(self, comm, rank: int, size: int, cupy=None, nccl=None):
        if cupy is None or nccl is None:
            cupy, nccl = require()
        self.cupy, self.lib, self.rank, self.size = cupy, nccl, rank, size
        local = launched("LOCAL_RANK", rank)
        self.device = local % cupy.cuda.runtime.getDeviceCount()
        cupy.cuda.Device(self.device).use()
        uid = nccl.get_unique_id() if rank == 0 else None
        uid = comm.bcast(uid, root=0) if size > 1 else uid
        self.comm = nccl.NcclCommunicator(size, uid, rank)
        self.version = int(nccl.get_version())

    def is_device_array(self, data) -> bool:
        return isinstance(data, self.cupy.ndarray)

    def _stream(self) -> int:
        return self.cupy.cuda.get_current_stream().ptr

    def _contiguous(self, data, name):
        if not data.flags.c_contiguous:
            raise ValueError(f"{name}: the NCCL backend needs a contiguous GPU tensor, got "
                             f"strides {data.strides} for shape {data.shape}; call "
                             ".contiguous() first")
        return data

    def all_reduce(self, data, op, name: str = "all_reduce") -> None:
        self._contiguous(data, name)
        red, divide = reduce_op(op, self.version, self.lib)
        if op == ReduceOp.AVG and not np.issubdtype(np.dtype(data.dtype), np.inexact):
            raise TypeError(f"{name}: ReduceOp.AVG needs a floating-point tensor, got "
                            f"{data.dtype}")
        self.comm.allReduce(data.data.ptr, data.data.ptr, data.size,
                            nccl_dtype(data.dtype, self.lib, name), red, self._stream())
        if divide and self.size > 1:
            data /= self.size   # a kernel on the same stream, after the reduction

    def broadcast(self, data, src: int) -> None:
        self._contiguous(data, "broadcast")
        self.comm.bcast(data.data.ptr, data.size, nccl_dtype(data.dtype, self.lib,
                                                             "broadcast"),
                        src, self._stream())

    def all_gather(self, out, src) -> None:
        """``out`` (world_size * src.size elements, contiguous) gets every rank's ``src``."""
        self._contiguous(src, "all_gather")
        self._contiguous(out, "all_gather")
        self.comm.allGather(src.data.ptr, out.data.ptr, src.size,
                            nccl_dtype(src.dtype, self.lib, "all_gather"), self._stream())

    def reduce_scatter(self, out, stacked, op) -> None:
        """``stacked`` holds world_size blocks of ``out.size``; rank r gets block r reduced."""
        self._contiguous(out, "reduce_scatter")
        self._contiguous(stacked, "reduce_scatter")
        red, divide = reduce_op(op, self.version, self.lib)
        self.comm.reduceScatter(stacked.data.ptr, out.data.ptr, out.size,
                                nccl_dtype(out.dtype, self.lib, "reduce_scatter"), red,
                                self._stream())
        if divide and self.size > 1:
            out /= self.size

    def send(self, data, dst: int) -> None:
        self._contiguous(data, "send")
        self.comm.send(data.data.ptr, data.size, nccl_dtype(data.dtype, self.lib, "send"),
                       dst, self._stream())

    def recv(self, data, src: int) -> None:
        self._contiguous(data, "recv")
        self.comm.recv(data.data.ptr, data.size, nccl_dtype(data.dtype, self.lib, "recv"),
                       src, self._stream())

    def synchronize(self) -> None:
        """Wait on the host for everything enqueued on the current stream."""
        self.cupy.cuda.get_current_stream().synchronize()

    def destroy(self) -> None:
        self.comm.destroy()
