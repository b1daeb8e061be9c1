"""Collectives and point-to-point messages on tensors, with torch.distributed's names.

Tensors travel through MPI's buffer interface: a C-contiguous, writable NumPy array goes
to MPI as it is (no copy); other layouts and GPU arrays pass through a contiguous host
copy that is written back into the tensor afterwards. Before each collective the ranks
compare the op's name, shape and dtype (one small allgather), so a shape mismatch or a
rank calling a different collective raises a clear error on every rank instead of giving
wrong numbers; ``SHENDU_DISTRIBUTED_CHECK=0`` skips that check. Under backend ``"nccl"``
GPU tensors go through NCCL instead (``_nccl``), enqueued on the current CUDA stream.
"""
from __future__ import annotations

import numpy as np

from ..backend import runtime
from ._heartbeat import _waiting
from .process_group import ReduceOp, Work, _world

__all__ = ["all_reduce", "broadcast", "all_gather", "all_gather_into_tensor", "reduce_scatter",
           "send", "recv", "isend", "irecv"]


def _op(op, name):
    from mpi4py import MPI
    table = {ReduceOp.SUM: MPI.SUM, ReduceOp.AVG: MPI.SUM, ReduceOp.PRODUCT: MPI.PROD,
             ReduceOp.MAX: MPI.MAX, ReduceOp.MIN: MPI.MIN}
    if op not in table:
        raise ValueError(f"{name}: unknown reduce op {op!r}; expected one of ReduceOp.SUM, "
                         "AVG, PRODUCT, MAX, MIN")
    return table[op]


def _host(data):
    if isinstance(data, np.ndarray):
        return data
    return data.get() if hasattr(data, "get") else np.asarray(data)  # a CuPy array


def _buffer(t, name):
    """A C-contiguous NumPy array holding the tensor's values, and how to write it back."""
    from ..tensor import Tensor
    if not isinstance(t, Tensor):
        raise TypeError(f"{name}: expected a shendu Tensor, got {type(t).__name__}")
    data = t._data
    if isinstance(data, np.ndarray) and data.flags.c_contiguous and data.flags.writeable:
        return data, None
    arr = np.ascontiguousarray(_host(data))

    def write_back():
        if isinstance(t._data, np.ndarray):
            if t._data.flags.writeable:
                t._data[...] = arr
            else:
                t._data = arr
        else:
            import cupy
            t._data[...] = cupy.asarray(arr)
    return arr, write_back


def _check(comm, name, *sig):
    """Every rank must call the same collective on tensors of the same shape and dtype."""
    if comm.Get_size() == 1 or runtime._env("SHENDU_DISTRIBUTED_CHECK", "1") == "0":
        return
    mine = (name,) + tuple(sig)
    with _waiting():
        everyone = comm.allgather(mine)
    if any(other != mine for other in everyone):
        lines = "; ".join(f"rank {r}: {s[0]}{tuple(s[1:])}" for r, s in enumerate(everyone))
        raise RuntimeError(f"{name}: the ranks disagree on the collective or its tensors "
                           f"({lines}); every rank must call the same collective with tensors "
                           "of the same shape and dtype")


def _sig(arr):
    return (tuple(arr.shape), str(arr.dtype))


def _gpu(w, name, *tensors):
    """The group's NCCL backend when these are GPU tensors under backend 'nccl', else None
    (MPI carries them). A mix of GPU and CPU tensors in one call is refused."""
    if w.nccl is None:
        return None
    from ..tensor import Tensor
    for t in tensors:
        if not isinstance(t, Tensor):
            raise TypeError(f"{name}: expected a shendu Tensor, got {type(t).__name__}")
    on_gpu = [w.nccl.is_device_array(t._data) for t in tensors]
    if all(on_gpu):
        return w.nccl
    if any(on_gpu):
        raise ValueError(f"{name}: the tensors are partly on the GPU and partly on the CPU; "
                         "with backend 'nccl' give all of them on the GPU (NCCL) or all on "
                         "the CPU (MPI)")
    return None


def _done(work, async_op):
    if async_op:
        return work
    work._comm = _world().comm   # every rank waits on it now: see process_group._wait_all
    work.wait()
    return None


def all_reduce(tensor, op=ReduceOp.SUM, group=None, async_op: bool = False):
    """Reduce ``tensor`` across all ranks, in place, on every rank.

    Args:
        tensor: the same shape and dtype on every rank; holds the result afterwards.
        op: ``ReduceOp.SUM`` (default), ``AVG``, ``PRODUCT``, ``MAX`` or ``MIN``.
        async_op: return a ``Work`` handle instead of waiting.

    Example:
        >>> import shendu as sd, shendu.distributed as dist
        >>> dist.init_process_group("mpi")
        >>> t = sd.tensor([1.0, 2.0])
        >>> dist.all_reduce(t, op=dist.ReduceOp.AVG)
        >>> t.tolist()
        [1.0, 2.0]
        >>> dist.destroy_process_group()
    """
    from mpi4py import MPI
    w = _world()
    mpi_op = _op(op, "all_reduce")
    if (gpu := _gpu(w, "all_reduce", tensor)) is not None:
        _check(w.comm, "all_reduce", *_sig(tensor._data), str(op))
        gpu.all_reduce(tensor._data, op)
        return _done(Work(), async_op)
    arr, write_back = _buffer(tensor, "all_reduce")
    if op == ReduceOp.AVG and not np.issubdtype(arr.dtype, np.inexact):
        raise TypeError(f"all_reduce: ReduceOp.AVG needs a floating-point tensor, got "
                        f"{arr.dtype}")
    _check(w.comm, "all_reduce", *_sig(arr), str(op))

    def finish():
        if op == ReduceOp.AVG and w.size > 1:
            np.divide(arr, w.size, out=arr)
        if write_back is not None:
            write_back()
    req = w.comm.Iallreduce(MPI.IN_PLACE, arr, op=mpi_op)
    return _done(Work([req], finish), async_op)


def broadcast(tensor, src: int = 0, group=None, async_op: bool = False):
    """Copy ``tensor`` from rank ``src`` into the same tensor on every other rank.

    Example:
        >>> import shendu as sd, shendu.distributed as dist
        >>> dist.init_process_group("mpi")
        >>> t = sd.arange(3)
        >>> dist.broadcast(t, src=0)
        >>> t.tolist()
        [0, 1, 2]
        >>> dist.destroy_process_group()
    """
    w = _world()
    _rank_arg("broadcast", "src", src, w.size)
    if (gpu := _gpu(w, "broadcast", tensor)) is not None:
        _check(w.comm, "broadcast", *_sig(tensor._data), src)
        gpu.broadcast(tensor._data, src)
        return _done(Work(), async_op)
    arr, write_back = _buffer(tensor, "broadcast")
    _check(w.comm, "broadcast", *_sig(arr), src)
    req = w.comm.Ibcast(arr, root=src)
    return _done(Work([req], write_back), async_op)


def all_gather(tensor_list, tensor, group=None, async_op: bool = False):
    """Gather ``tensor`` from every rank into ``tensor_list[r]`` (one entry per rank).

    Example:
        >>> import shendu as sd, shendu.distributed as dist
        >>> dist.init_process_group("mpi")
        >>> out = [sd.zeros(2)]
        >>> dist.all_gather(out, sd.tensor([3.0, 4.0]))
        >>> out[0].tolist()
        [3.0, 4.0]
        >>> dist.destroy_process_group()
    """
    w = _world()
    if len(tensor_list) != w.size:
        raise ValueError(f"all_gather: tensor_list has {len(tensor_list)} tensors but the "
                         f"world size is {w.size}; expected one per rank")
    if (gpu := _gpu(w, "all_gather", tensor, *tensor_list)) is not None:
        data = tensor._data
        for i, t in enumerate(tensor_list):
            if tuple(t.shape) != data.shape or t._data.dtype != data.dtype:
                raise ValueError(f"all_gather: tensor_list[{i}] is {tuple(t.shape)} "
                                 f"{t._data.dtype} but the input is {data.shape} "
                                 f"{data.dtype}; expected the same")
        _check(w.comm, "all_gather", *_sig(data))
        out = gpu.cupy.empty((w.size,) + data.shape, dtype=data.dtype)
        gpu.all_gather(out, gpu.cupy.ascontiguousarray(data))
        for i, t in enumerate(tensor_list):
            t._data[...] = out[i]
        return _done(Work(), async_op)
    src, _ = _buffer(tensor, "all_gather")
    for i, t in enumerate(tensor_list):
        if tuple(t.shape) != src.shape:
            raise ValueError(f"all_gather: tensor_list[{i}] has shape {tuple(t.shape)} but the "
                             f"input has shape {src.shape}; expected equal shapes")
    _check(w.comm, "all_gather", *_sig(src))
    out = np.empty((w.size,) + src.shape, dtype=src.dtype)
    req = w.comm.Iallgather(src, out)

    def finish():
        for i, t in enumerate(tensor_list):
            _store(t, out[i])
    return _done(Work([req], finish), async_op)


def all_gather_into_tensor(output_tensor, input_tensor, group=None, async_op: bool = False):
    """Gather ``input_tensor`` from every rank, concatenated along dim 0 into
    ``output_tensor`` (whose first dim is world_size times the input's)."""
    w = _world()
    if (gpu := _gpu(w, "all_gather_into_tensor", output_tensor, input_tensor)) is not None:
        src, out = input_tensor._data, output_tensor._data
        if out.size != src.size * w.size or out.dtype != src.dtype:
            raise ValueError(f"all_gather_into_tensor: output {out.shape} {out.dtype} cannot "
                             f"hold {w.size} inputs of {src.shape} {src.dtype}")
        _check(w.comm, "all_gather_into_tensor", *_sig(src))
        gpu.all_gather(out, gpu.cupy.ascontiguousarray(src))
        return _done(Work(), async_op)
    src, _ = _buffer(input_tensor, "all_gather_into_tensor")
    out, write_back = _buffer(output_tensor, "all_gather_into_tensor")
    if out.size != src.size * w.size or out.dtype != src.dtype:
        raise ValueError(f"all_gather_into_tensor: output {out.shape} {out.dtype} cannot hold "
                         f"{w.size} inputs of {src.shape} {src.dtype}")
    _check(w.comm, "all_gather_into_tensor", *_sig(src))
    req = w.comm.Iallgather(src, out)
    return _done(Work([req], write_back), async_op)


def reduce_scatter(output, input_list, op=ReduceOp.SUM, group=None, async_op: bool = False):
    """Reduce ``input_list`` element-wise across ranks; rank r receives the r-th result
    in ``output``.

    Example:
        >>> import shendu as sd, shendu.distributed as dist
        >>> dist.init_process_group("mpi")
        >>> out = sd.zeros(2)
        >>> dist.reduce_scatter(out, [sd.tensor([5.0, 6.0])])
        >>> out.tolist()
        [5.0, 6.0]
        >>> dist.destroy_process_group()
    """
    w = _world()
    mpi_op = _op(op, "reduce_scatter")
    if len(input_list) != w.size:
        raise ValueError(f"reduce_scatter: input_list has {len(input_list)} tensors but the "
                         f"world size is {w.size}; expected one per rank")
    if (gpu := _gpu(w, "reduce_scatter", output, *input_list)) is not None:
        out = output._data
        for i, t in enumerate(input_list):
            if t._data.shape != out.shape or t._data.dtype != out.dtype:
                raise ValueError(f"reduce_scatter: input_list[{i}] is {t._data.shape} "
                                 f"{t._data.dtype} but output is {out.shape} {out.dtype}; "
                                 "expected the same")
        _check(w.comm, "reduce_scatter", *_sig(out), str(op))
        gpu.reduce_scatter(out, gpu.cupy.stack([t._data for t in input_list]), op)
        return _done(Work(), async_op)
    out, write_back = _buffer(output, "reduce_scatter")
    parts = [_buffer(t, "reduce_scatter")[0] for t in input_list]
    for i, p in enumerate(parts):
        if p.shape != out.shape or p.dtype != out.dtype:
            raise ValueError(f"reduce_scatter: input_list[{i}] is {p.shape} {p.dtype} but "
                             f"output is {out.shape} {out.dtype}; expected the same")
    if op == ReduceOp.AVG and not np.issubdtype(out.dtype, np.inexact):
        raise TypeError(f"reduce_scatter: ReduceOp.AVG needs a floating-point tensor, got "
                        f"{out.dtype}")
    _check(w.comm, "reduce_scatter", *_sig(out), str(op))
    send_buf = np.stack(parts) if parts else np.empty((0,) + out.shape, out.dtype)
    req = w.comm.Ireduce_scatter_block(send_buf, out, op=mpi_op)

    def finish():
        if op == ReduceOp.AVG and w.size > 1:
            np.divide(out, w.size, out=out)
        if write_back is not None:
            write_back()
    return _done(Work([req], finish), async_op)


def _store(t, arr):
    if isinstance(t._data, np.ndarray) and t._data.flags.writeable:
        t._data[...] = arr
    elif isinstance(t._data, np.ndarray):
        t._data = np.array(arr)
    else:
        import cupy
        t._data[...] = cupy.asarray(arr)


def _rank_arg(name, what, r, size):
    if not isinstance(r, (int, np.integer)) or not 0 <= r < size:
        raise ValueError(f"{name}: {what}={r!r} is not a rank of a world of size {size}")


def _nccl_peer(name, src):
    if src is None:
        raise ValueError(f"{name}: the NCCL backend cannot receive from any rank; give "
                         "src=<rank> (NCCL point-to-point names both ends)")
    return src


def isend(tensor, dst: int, group=None, tag: int = 0) -> Work:
    """Start sending ``tensor`` to rank ``dst``; returns a ``Work`` handle."""
    w = _world()
    _rank_arg("isend", "dst", dst, w.size)
    if (gpu := _gpu(w, "isend", tensor)) is not None:
        gpu.send(tensor._data, dst)   # enqueued on the stream: nothing to wait for here
        return Work()
    arr, _ = _buffer(tensor, "isend")
    if arr is not tensor._data:
        arr = arr.copy()  # the copy must live until the send completes
    return Work([w.comm.Isend(arr, dest=dst, tag=tag)])


def irecv(tensor, src: int | None = None, group=None, tag: int = 0) -> Work:
    """Start receiving into ``tensor`` from rank ``src`` (any rank if None)."""
    from mpi4py import MPI
    w = _world()
    if src is not None:
        _rank_arg("irecv", "src", src, w.size)
    if (gpu := _gpu(w, "irecv", tensor)) is not None:
        gpu.recv(tensor._data, _nccl_peer("irecv", src))
        return Work()
    arr, write_back = _buffer(tensor, "irecv")
    req = w.comm.Irecv(arr, source=MPI.ANY_SOURCE if src is None else src, tag=tag)
    return Work([req], write_back)


def send(tensor, dst: int, group=None, tag: int = 0) -> None:
    """Send ``tensor`` to rank ``dst`` (blocks until the buffer may be reused)."""
    w = _world()
    _rank_arg("send", "dst", dst, w.size)
    if dst == w.rank:
        raise ValueError(f"send: dst={dst} is this rank; sending to oneself would deadlock")
    if (gpu := _gpu(w, "send", tensor)) is not None:
        gpu.send(tensor._data, dst)
        return None
    arr, _ = _buffer(tensor, "send")
    with _waiting():
        w.comm.Send(arr, dest=dst, tag=tag)


def recv(tensor, src: int | None = None, group=None, tag: int = 0) -> int:
    """Receive into ``tensor`` from rank ``src`` (any rank if None); returns the sender.

    The message must have the tensor's number of elements and dtype.
    """
    from mpi4py import MPI
    w = _world()
    if src is not None:
        _rank_arg("recv", "src", src, w.size)
    if (gpu := _gpu(w, "recv", tensor)) is not None:
        gpu.recv(tensor._data, _nccl_peer("recv", src))
        return src
    arr, write_back = _buffer(tensor, "recv")
    status = MPI.Status()
    with _waiting():
        w.comm.Recv(arr, source=MPI.ANY_SOURCE if src is None else src, tag=tag,
                    status=status)
    if write_back is not None:
        write_back()
    return status.Get_source()
