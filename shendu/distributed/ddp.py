"""Synchronous data parallelism: ``DistributedDataParallel`` (PyTorch's name and use).

Each rank holds a full replica. At wrap time rank 0's parameters and buffers are
broadcast to every rank. During backward a hook on each parameter copies that parameter's
gradient (plus any gradient accumulated under ``no_sync()``) into its bucket, a flat
buffer of about ``bucket_cap_mb``; a full bucket starts its non-blocking all-reduce at
once, while the remaining gradients are still being produced. When the last parameter's
gradient arrives, all buckets are waited for (see ``process_group._wait_all``: no core
spun while another rank still computes), and each ``.grad`` gets its bucket slice divided
by the world size in one pass, so after ``loss.backward()`` each rank holds the gradient
of the mean loss over all ranks' data and ``optimizer.step()`` keeps the replicas
identical. Under ``init_process_group("nccl")`` with the model on the GPU the buckets are
CuPy arrays reduced by NCCL on the current stream.

When every rank runs on one machine the buckets live in MPI shared memory (one window per
bucket, a row per rank, two sets of rows used on alternate steps) instead of MPI's message
exchanges, each of which needs both ranks on a core at once
(``SHENDU_DDP_SHARED_MEMORY=0``: MPI's all-reduce). When the last gradient arrives, a rank
writes every gradient, divided by the world size, into its rows, raises its flag (the
step's number, in shared memory), waits until every rank's flag is up (spinning, then
napping: ``process_group._nap_until``) and sums the rows, in rank order so that every rank
gets the same bits, into each ``.grad`` in place; the last parameter's mean is returned by
its hook. Two plain passes at the end, not a piece at a time during backward: a rank of
one thread has no idle core to overlap with, and on the MLP of ``benchmarks/ddp_floor.py``
per-piece flags cost more than they saved (docs/distributed.md, "Throughput: 2 ranks against 1").
Why two sets of rows: a rank that is done reading step k's rows may write step k+1's
while a slower rank still reads step k's; it cannot reach step k+2's writes (the same
rows as step k) before every rank has raised its flag for step k+1, which each does only
after reading step k's rows.

shendu's engine runs a parameter's hook as soon as its gradient is final (the last node
sending it a gradient has run), so a bucket's all-reduce starts while backward goes on
through the earlier layers; MPICH moves a non-blocking collective forward only inside MPI
calls, so each later hook also tests the pending ones.
"""
from __future__ import annotations

import contextlib

import numpy as np

from ..nn.module import Module
from ._heartbeat import _waiting, heartbeat
from .process_group import _nap_until, _spin_budget, _wait_all, _world

__all__ = ["DistributedDataParallel"]


class _Bucket:
    def __init__(self, indices, dtype, sizes, xp=np):
        self.indices = list(indices)
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        self.flat = xp.zeros(int(self.offsets[-1]), dtype=dtype)
        self.ready = 0
        self.request = None


class DistributedDataParallel(Module):
    """Wrap ``module`` so that gradients are averaged across all ranks during backward.

    Args:
        module: the model; every rank must build the same architecture.
        device_ids, output_device, dim: accepted for PyTorch compatibility (CPU/one device
            per rank: the module runs where its parameters are).
        broadcast_buffers: copy rank 0's buffers (e.g. batch-norm running statistics) to
            every rank at each forward in training mode, as PyTorch does.
        bucket_cap_mb: bucket size for the gradient all-reduce.
        find_unused_parameters: not supported; every parameter that requires grad must
            receive a gradient in each synchronised backward.

    Example:
        >>> import shendu as sd, shendu.distributed as dist
        >>> from shendu.nn.parallel import DistributedDataParallel as DDP
        >>> dist.init_process_group("mpi")
        >>> model = DDP(sd.nn.Linear(3, 1))
        >>> model(sd.ones(2, 3)).sum().backward()
        >>> model.module.weight.grad.shape
        (1, 3)
        >>> dist.destroy_process_group()
    """

    def __init__(self, module: Module, device_ids=None, output_device=None, dim: int = 0,
                 broadcast_buffers: bool = True, process_group=None,
                 bucket_cap_mb: float = 25.0, find_unused_parameters: bool = False,
                 gradient_as_bucket_view: bool = False, static_graph: bool = False) -> None:
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel: expected an nn.Module, got "
                            f"{type(module).__name__}")
        if find_unused_parameters:
            raise NotImplementedError("DistributedDataParallel: find_unused_parameters=True "
                                      "is not supported; every trainable parameter must get a "
                                      "gradient in each backward")
        if bucket_cap_mb <= 0:
            raise ValueError(f"DistributedDataParallel: bucket_cap_mb must be positive, got "
                             f"{bucket_cap_mb}")
        self.module = module
        self.broadcast_buffers = broadcast_buffers
        self.require_backward_grad_sync = True
        w = _world()
        self._comm, self._size = w.comm, w.size
        params, seen = [], set()
        for p in module.parameters():
            if p.requires_grad and id(p) not in seen:
                seen.add(id(p))
                params.append(p)
        self._params = params
        # backend 'nccl' with the model on the GPU: buckets live there and NCCL reduces
        # them on the stream; otherwise NumPy buckets and MPI
        self._nccl = w.nccl if (w.nccl is not None and params
                                and w.nccl.is_device_array(params[0]._data)) else None
        self._check_replicas(module)
        self._broadcast_state(module, params)
        self._buckets, self._where = self._make_buckets(params, bucket_cap_mb * 2 ** 20)
        self._node = self._share_buckets() if self._nccl is None and self._size > 1 else None
        self._hook_handles = [p.register_hook(self._hook(i)) for i, p in enumerate(params)]
        self._sync_now = False   # decided at forward time, as PyTorch does
        self._reset()

    # ------------------------------------------------------------------ setup
    def _share_buckets(self):
        """When every rank runs on this machine, put the buckets in MPI shared memory:
        rank r's bucket on step parity q is ``rows[q, r]`` of a (2, world, n) array all
        ranks can read, and each rank has a flag (the number of the last step whose rows
        it has written). None (MPI's all-reduce) across machines or with
        ``SHENDU_DDP_SHARED_MEMORY=0``."""
        from mpi4py import MPI

        from ..backend import runtime
        if runtime._env("SHENDU_DDP_SHARED_MEMORY", "1") == "0":
            return None
        node = self._comm.Split_type(MPI.COMM_TYPE_SHARED)
        if node.Get_size() != self._size:
            node.Free()
            return None
        me, ranks = node.Get_rank(), node.Get_size()
        for bucket in self._buckets:
            dtype, n = bucket.flat.dtype, bucket.flat.size
            nbytes = 2 * ranks * n * dtype.itemsize if me == 0 else 0
            win = MPI.Win.Allocate_shared(nbytes, dtype.itemsize, comm=node)
            buf, _ = win.Shared_query(0)
            rows = np.ndarray((2, ranks, n), dtype=dtype, buffer=buf)
            rows[:, me] = 0
            win.Lock_all(MPI.MODE_NOCHECK)   # passive target: Sync() orders the stores
            bucket.win, bucket.rows, bucket.flat = win, rows, rows[0, me]
        # where each parameter's gradient sits: its bucket's rows and its columns there
        self._slots = []
        for i in range(len(self._params)):
            b, k = self._where[i]
            bucket = self._buckets[b]
            self._slots.append((i, bucket, slice(bucket.offsets[k], bucket.offsets[k + 1])))
        self._flag_win = MPI.Win.Allocate_shared(8 * ranks if me == 0 else 0, 8, comm=node)
        buf, _ = self._flag_win.Shared_query(0)
        self._flags = np.ndarray((ranks,), dtype=np.int64, buffer=buf)
        self._flags[me] = 0
        self._flag_win.Lock_all(MPI.MODE_NOCHECK)
        self._me, self._steps = me, 0
        self._spin_s = _spin_budget(node)
        node.Barrier()   # every flag is 0 before anyone counts
        return node

    def _rows_arrived(self) -> bool:
        """Whether every rank has written this step's rows (flags looked at afresh)."""
        self._flag_win.Sync()
        return int(self._flags.min()) > self._steps

    def _exchange_shared(self, last, g):
        """Every gradient is in (``g``, the last parameter's, is not in its ``.grad``
        yet): write this rank's share of the mean (``grad / world``) into its rows, raise
        its flag, wait for every rank's, then sum the rows in rank order (every rank gets
        the same bits) into each ``.grad`` in place. Returns the last parameter's mean."""
        step, parity, me = self._steps + 1, (self._steps + 1) % 2, self._me
        scale = 1 / self._size
        for i, bucket, cols in self._slots:
            src = g if i == last else self._own_grad(i)
            np.multiply(src, scale, out=bucket.rows[parity, me, cols])
        for bucket in self._buckets:
            bucket.win.Sync()
        self._flags[me] = step
        self._flag_win.Sync()
        if not self._rows_arrived():
            with _waiting():
                _nap_until(self._rows_arrived, self._spin_s)
        for bucket in self._buckets:
            bucket.win.Sync()   # the others' rows, read after their flags
        p = self._params[last]
        avg = np.empty(p._data.size, p._data.dtype)
        for i, bucket, cols in self._slots:
            rows = bucket.rows[parity, :, cols]
            out = avg if i == last else self._params[i].grad._data.reshape(-1)
            np.add(rows[0], rows[1], out=out)
            for row in rows[2:]:
                out += row
        self._steps = step
        return avg.reshape(p._data.shape)

    def _own_grad(self, i):
        """Parameter ``i``'s ``.grad`` as a flat array the mean can be written into: the
        engine's own array, or a private C-ordered copy put in its place."""
        grad = self._params[i].grad
        if not (grad._data.flags.c_contiguous and getattr(grad._data.flags, "writeable", True)):
            grad._data = np.array(grad._data, order="C")
        return grad._data.reshape(-1)

    def _check_replicas(self, module):
        if self._size == 1:
            return
        mine = [(n, tuple(p.shape), str(p.dtype)) for n, p in module.named_parameters()]
        everyone = self._comm.allgather(mine)
        for r, theirs in enumerate(everyone):
            if theirs != mine:
                diff = next((f"{a} vs {b}" for a, b in zip(mine, theirs) if a != b),
                            f"{len(mine)} vs {len(theirs)} parameters")
                raise RuntimeError("DistributedDataParallel: the ranks' modules differ "
                                   f"(this rank vs rank {r}: {diff}); every rank must build "
                                   "the same model")

    def _broadcast_state(self, module, params):
        if self._size == 1:
            return
        for t in [*params, *module.buffers()]:
            self._bcast(t)

    def _bcast(self, t):
        data = t._data
        if self._nccl is not None and self._nccl.is_device_array(data):
            self._nccl.broadcast(data, 0)
            return
        if isinstance(data, np.ndarray) and data.flags.c_contiguous and data.flags.writeable:
            self._comm.Bcast(data, root=0)
        else:
            arr = np.ascontiguousarray(data.get() if hasattr(data, "get") else data)
            self._comm.Bcast(arr, root=0)
            t._data[...] = arr if isinstance(t._data, np.ndarray) else type(t._data)(arr)

    def _make_buckets(self, params, cap_bytes):
        # gradients arrive roughly from the last layer to the first: fill buckets that way
        buckets, where = [], {}
        current, size, dtype = [], 0, None
        order = list(range(len(params)))[::-1]
        for i in order:
            p = params[i]
            dt = np.dtype(p._data.dtype)
            nbytes = p._data.size * dt.itemsize
            if current and (dt != dtype or size + nbytes > cap_bytes):
                buckets.append(current)
                current, size = [], 0
            current.append(i)
            size += nbytes
            dtype = dt
        if current:
            buckets.append(current)
        out = []
        for b, idx in enumerate(buckets):
            bucket = _Bucket(idx, params[idx[0]]._data.dtype, [params[i]._data.size for i in idx],
                             self._nccl.cupy if self._nccl is not None else np)
            for k, i in enumerate(idx):
                where[i] = (b, k)
            out.append(bucket)
        return out, where

    # ------------------------------------------------------------------ use
    @contextlib.contextmanager
    def no_sync(self):
        """Inside this context, backward accumulates gradients locally without
        communicating; the first backward after it averages everything accumulated.

        Example:
            >>> import shendu as sd, shendu.distributed as dist
            >>> from shendu.nn.parallel import DistributedDataParallel as DDP
            >>> dist.init_process_group("mpi")
            >>> model = DDP(sd.nn.Linear(2, 1))
            >>> with model.no_sync():
            ...     model(sd.ones(1, 2)).sum().backward()
            >>> model(sd.ones(1, 2)).sum().backward()
            >>> model.module.bias.grad.tolist()
            [2.0]
            >>> dist.destroy_process_group()
        """
        old = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = old

    def forward(self, *args, **kwargs):
        if self._sync_now and self._seen:
            missing = [i for i in range(len(self._params)) if not self._arrived(i)]
            self._reset()
            raise RuntimeError(
                "DistributedDataParallel: the previous backward did not produce gradients for "
                f"parameter(s) {missing[:8]} (indices into module.parameters()); every "
                "trainable parameter must take part in the loss on every rank")
        self._reset()
        heartbeat()  # a training step is progress, even one under no_sync()
        self._sync_now = self.require_backward_grad_sync and self._size > 1
        if self.broadcast_buffers and self.training and self._size > 1:
            for b in self.module.buffers():
                self._bcast(b)
        return self.module(*args, **kwargs)

    def _reset(self):
        self._seen = 0
        for b in self._buckets:
            b.ready, b.request = 0, None
        self._got = [False] * len(self._params)

    def _arrived(self, i):
        return self._got[i]

    def _hook(self, i):
        def hook(grad):
            if not self._sync_now or self._got[i]:
                return None
            return self._on_grad(i, grad)
        return hook

    def _on_grad(self, i, grad):
        if self._node is not None:
            return self._on_grad_shared(i, grad)
        p = self._params[i]
        b, k = self._where[i]
        bucket = self._buckets[b]
        lo, hi = bucket.offsets[k], bucket.offsets[k + 1]
        g = grad._data.reshape(-1)
        if p.grad is not None:   # accumulated under no_sync(): averaged with this one
            g = p.grad._data.reshape(-1) + g
        bucket.flat[lo:hi] = g
        self._got[i] = True
        self._seen += 1
        bucket.ready += 1
        if bucket.ready == len(bucket.indices):
            if self._nccl is not None:   # enqueued on the stream, ordered before _finish
                from .process_group import ReduceOp
                self._nccl.all_reduce(bucket.flat, ReduceOp.SUM, "DistributedDataParallel")
            else:
                from mpi4py import MPI
                bucket.request = self._comm.Iallreduce(MPI.IN_PLACE, bucket.flat,
                                                       op=MPI.SUM)
        if self._nccl is None:
            self._progress()
        if self._seen < len(self._params):
            return None
        return self._finish(i)

    def _on_grad_shared(self, i, grad):
        """Count the gradient in; at the last one, exchange them all (two plain passes:
        on one machine's cores a rank of one thread has no idle core to overlap with)."""
        self._got[i] = True
        self._seen += 1
        if self._seen < len(self._params):
            return None
        p = self._params[i]
        g = grad._data.reshape(-1)
        if p.grad is not None:   # accumulated under no_sync(): averaged with this one
            g = p.grad._data.reshape(-1) + g
        avg = self._exchange_shared(i, g)
        self._sync_now = False
        self._seen = 0
        from ..tensor import Tensor
        if p.grad is None:
            return Tensor._wrap(avg)
        p.grad._data = avg   # the engine adds what the hook returns to an existing .grad
        return Tensor._wrap(np.zeros_like(avg))

    def _progress(self):
        """Let MPI advance the buckets already sent (it only does inside MPI calls)."""
        from mpi4py import MPI
        pending = [b.request for b in self._buckets if b.request is not None]
        if pending:
            MPI.Request.Testall(pending)

    def _finish(self, last):
        """All gradients are in: wait for the buckets and write the averages."""
        from ..tensor import Tensor
        requests = [b.request for b in self._buckets if b.request is not None]
        if requests:
            with _waiting():   # every rank is here for the same buckets
                _wait_all(requests, comm=self._comm)
        replacement = None
        size = self._size
        for bucket in self._buckets:
            xp = np if isinstance(bucket.flat, np.ndarray) else self._nccl.cupy
            for k, i in enumerate(bucket.indices):
                p = self._params[i]
                lo, hi = bucket.offsets[k], bucket.offsets[k + 1]
                grad = p.grad._data if p.grad is not None else None
                into = (grad is not None and i != last and grad.flags.c_contiguous
                        and getattr(grad.flags, "writeable", True))
                if into:
                    xp.divide(bucket.flat[lo:hi].reshape(grad.shape), size, out=grad)
                    continue
                avg = bucket.flat[lo:hi].reshape(p._data.shape) / size
                if i == last:
                    # the engine adds what this hook returns to an existing .grad
                    replacement = Tensor._wrap(avg - grad if grad is not None else avg)
                else:
                    p.grad._data = avg
        self._sync_now = False
        self._seen = 0
        return replacement
