"""Pipeline (model) parallelism over MPI: ``Pipe`` puts one stage of an ``nn.Sequential`` on
each rank and trains it on micro-batches.

Every rank builds the whole ``Sequential`` (same seed, so the same weights) and keeps only
its own contiguous slice of layers, the stage. A batch is split into ``chunks``
micro-batches (``np.array_split`` sizes: as equal as possible, so a batch that ``chunks``
does not divide still works). Activations go forward to the next rank and gradients come
back with point-to-point messages on a communicator of the pipe's own. Each activation is
preceded by a small header (dtype and shape), so the receiver allocates the right buffer; a
gradient has the shape and dtype of the activation it answers. Sends are non-blocking and
receives blocking, which cannot deadlock for these schedules:

- ``"gpipe"``: all forwards, then all backwards (every stage stores ``chunks`` micro-batches'
  activations at the peak);
- ``"1f1b"``: stage ``s`` of ``p`` runs ``p - s - 1`` warm-up forwards, then alternates one
  forward and one backward, then finishes the remaining backwards (PipeDream-flush), so it
  stores at most ``p - s`` micro-batches at once and has the same bubble as GPipe.

Parameter gradients accumulate over the micro-batches; the loss of each micro-batch is
weighted by its share of the batch (for a ``"mean"`` loss), so after ``step`` every
stage's ``.grad`` is the gradient of the whole-batch loss, as in the unsplit model.
"""
from __future__ import annotations

import time

import numpy as np

from ..nn.containers import Sequential
from ..nn.module import Module
from ._heartbeat import _waiting, heartbeat
from .process_group import _world

__all__ = ["Pipe", "balance_by_params", "split_sequential", "pipeline_schedule"]

SCHEDULES = ("gpipe", "1f1b")
_TAG_HEADER, _TAG_ACTIVATION, _TAG_GRAD = 101, 102, 103
_MAX_DIM = 8
# dtypes an activation may have, by position in the header (the same table on every rank)
_DTYPES = ("float64", "float32", "float16", "complex128", "complex64", "int64", "int32",
           "int16", "int8", "uint8", "bool")


def balance_by_params(module: Sequential, num_stages: int) -> list[int]:
    """Layers per stage for splitting ``module`` into ``num_stages`` contiguous stages whose
    largest parameter count is as small as possible (ties: fewer layers in the largest
    stage, then later cuts, which keep an activation after its layer more often).

    Example:
        >>> from shendu import nn
        >>> net = nn.Sequential(nn.Linear(10, 10), nn.ReLU(), nn.Linear(10, 10), nn.ReLU(),
        ...                     nn.Linear(10, 2))
        >>> balance_by_params(net, 2)
        [2, 3]
    """
    if not isinstance(module, Sequential):
        raise TypeError(f"balance_by_params: expected an nn.Sequential, got "
                        f"{type(module).__name__}")
    n = len(module)
    if not 1 <= num_stages <= n:
        raise ValueError(f"balance_by_params: cannot split a Sequential of {n} layers into "
                         f"{num_stages} non-empty stages")
    # a parameter outweighs any number of layers; the layer count only breaks ties
    costs = [sum(p.numel() for p in m.parameters()) * (n + 1) + 1 for m in module]
    prefix = np.concatenate([[0], np.cumsum(costs, dtype=np.int64)])
    inf = np.iinfo(np.int64).max
    best = np.full((num_stages + 1, n + 1), inf, dtype=np.int64)
    cut = np.zeros((num_stages + 1, n + 1), dtype=np.int64)
    best[0, 0] = 0
    for k in range(1, num_stages + 1):
        for j in range(k, n + 1):          # the first j layers in k stages
            for i in range(k - 1, j):      # the k-th stage is layers i .. j-1
                if best[k - 1, i] == inf:
                    continue
                c = max(best[k - 1, i], prefix[j] - prefix[i])
                if c <= best[k, j]:   # ties: the later cut
                    best[k, j], cut[k, j] = c, i
    sizes, j = [], n
    for k in range(num_stages, 0, -1):
        i = int(cut[k, j])
        sizes.append(j - i)
        j = i
    return sizes[::-1]


def split_sequential(module: Sequential, balance: list[int]) -> list[Sequential]:
    """``module`` cut into consecutive ``Sequential`` stages of ``balance[k]`` layers each
    (sharing the layers; names keep their positions in ``module``).

    Example:
        >>> from shendu import nn
        >>> stages = split_sequential(nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)),
        ...                           [2, 1])
        >>> [len(s) for s in stages], list(stages[1].state_dict())
        ([2, 1], ['2.weight', '2.bias'])
    """
    balance = [int(b) for b in balance]
    if any(b < 1 for b in balance) or sum(balance) != len(module):
        raise ValueError(f"split_sequential: balance={balance} must be positive layer counts "
                         f"that sum to the Sequential's {len(module)} layers")
    bounds = np.concatenate([[0], np.cumsum(balance)]).tolist()
    return [module[lo:hi] for lo, hi in zip(bounds[:-1], bounds[1:])]


def pipeline_schedule(schedule: str, num_stages: int, stage: int, chunks: int
                      ) -> list[tuple[str, int]]:
    """The order in which stage ``stage`` runs forwards ``("F", i)`` and backwards
    ``("B", i)`` of micro-batches ``i``.

    Example:
        >>> pipeline_schedule("1f1b", 2, 0, 3)
        [('F', 0), ('F', 1), ('B', 0), ('F', 2), ('B', 1), ('B', 2)]
        >>> pipeline_schedule("gpipe", 2, 0, 2)
        [('F', 0), ('F', 1), ('B', 1), ('B', 0)]
    """
    m = chunks
    if schedule == "gpipe":
        return [("F", i) for i in range(m)] + [("B", i) for i in reversed(range(m))]
    if schedule == "1f1b":
        warm = min(num_stages - stage - 1, m)
        ops = [("F", i) for i in range(warm)]
        for j in range(m - warm):
            ops += [("F", warm + j), ("B", j)]
        return ops + [("B", i) for i in range(m - warm, m)]
    raise ValueError(f"pipeline_schedule: schedule {schedule!r} is not one of {SCHEDULES}")


def _split_sizes(n: int, chunks: int) -> list[int]:
    return [n // chunks + (1 if i < n % chunks else 0) for i in range(chunks)]


def _rows(t, sizes):
    out, lo = [], 0
    for s in sizes:
        out.append(t[lo:lo + s])
        lo += s
    return out


def _host(data):
    return data.get() if hasattr(data, "get") else np.asarray(data)


class Pipe(Module):
    """One stage per rank of an ``nn.Sequential``, trained on micro-batches.

    Args:
        module: the whole model, built the same way on every rank.
        chunks: micro-batches per batch (at most the batch size).
        schedule: ``"gpipe"`` or ``"1f1b"``.
        balance: layers per stage (one entry per rank); default
            :func:`balance_by_params` for the world size.
        loss_fn: ``loss_fn(output, target)``, used on the last stage. A module with
            ``reduction="sum"`` adds the micro-batch losses; anything else is taken to be a
            mean over the samples, and micro-batch ``i`` of ``n_i`` of ``N`` rows is
            weighted ``n_i / N``.

    ``pipe.module`` is this rank's stage and ``pipe.parameters()`` its parameters. After a
    ``step``, ``pipe.timeline`` lists the stage's compute as ``(kind, micro_batch, start,
    end, cpu_seconds)`` (``time.perf_counter`` and ``time.thread_time``) and
    ``pipe.peak_in_flight`` is the most micro-batches whose activations it held at once.

    A training loop is the same script on every rank::

        pipe = Pipe(model, chunks=4, schedule="1f1b", loss_fn=nn.CrossEntropyLoss())
        opt = sd.optim.SGD(pipe.parameters(), lr=0.1)   # this stage's parameters
        for x, y in loader:              # rank 0 needs x, the last rank y; others may pass None
            opt.zero_grad()
            loss = pipe.step(x, target=y)   # a tensor on the last rank, None elsewhere
            opt.step()

    Example:
        >>> import shendu as sd, shendu.distributed as dist
        >>> from shendu import nn
        >>> dist.init_process_group("mpi")
        >>> _ = sd.manual_seed(0)
        >>> pipe = Pipe(nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)), chunks=2,
        ...             loss_fn=nn.MSELoss())
        >>> loss = pipe.step(sd.ones(5, 3), target=sd.zeros(5, 1))
        >>> pipe(sd.ones(5, 3)).shape, pipe.peak_in_flight
        ((5, 1), 2)
        >>> dist.destroy_process_group()
    """

    def __init__(self, module: Sequential, chunks: int = 1, schedule: str = "gpipe",
                 balance: list[int] | None = None, loss_fn=None) -> None:
        super().__init__()
        if not isinstance(module, Sequential):
            raise TypeError(f"Pipe: expected an nn.Sequential to split into stages, got "
                            f"{type(module).__name__}")
        if not isinstance(chunks, (int, np.integer)) or chunks < 1:
            raise ValueError(f"Pipe: chunks must be a positive integer, got {chunks!r}")
        if schedule not in SCHEDULES:
            raise ValueError(f"Pipe: schedule {schedule!r} is not one of {SCHEDULES}")
        w = _world()
        if balance is None:
            if len(module) < w.size:
                raise ValueError(f"Pipe: the Sequential has {len(module)} layers but the world "
                                 f"has {w.size} ranks; each rank needs a stage of at least "
                                 "one layer")
            balance = balance_by_params(module, w.size)
        elif len(balance) != w.size:
            raise ValueError(f"Pipe: balance={list(balance)} has {len(balance)} stages but the "
                             f"world has {w.size} ranks; launch with 'shendu run --nproc "
                             f"{len(balance)}' or give one stage per rank")
        stages = split_sequential(module, balance)
        if w.size > 1:   # ranks that disagree here would wait for each other forever
            mine = ([len(s) for s in stages], int(chunks), schedule)
            everyone = w.comm.allgather(mine)
            for r, theirs in enumerate(everyone):
                if theirs != mine:
                    raise ValueError(f"Pipe: rank {r} has (balance, chunks, schedule) = "
                                     f"{theirs} but rank {w.rank} has {mine}; every rank must "
                                     "build the same Pipe")
        self.balance = [len(s) for s in stages]
        self.chunks, self.schedule, self.loss_fn = int(chunks), schedule, loss_fn
        self.stage_index, self.num_stages = w.rank, w.size
        lo = sum(self.balance[:w.rank])
        self.layers = (lo, lo + self.balance[w.rank])   # this stage's positions in module
        self.module = stages[w.rank]
        self._comm = w.comm.Dup() if w.size > 1 else None
        self._sends: list = []
        self.timeline: list[tuple[str, int, float, float, float]] = []
        self.peak_in_flight = 0

    # ------------------------------------------------------------------ messages
    def _send_activation(self, out):
        arr = np.ascontiguousarray(_host(out._data))
        if arr.ndim > _MAX_DIM or str(arr.dtype) not in _DTYPES:
            raise TypeError(f"Pipe: stage {self.stage_index} produced an activation of shape "
                            f"{arr.shape} {arr.dtype}; expected at most {_MAX_DIM} dims of "
                            f"one of {_DTYPES}")
        header = np.full(2 + _MAX_DIM, -1, dtype=np.int64)
        header[0], header[1] = _DTYPES.index(str(arr.dtype)), arr.ndim
        header[2:2 + arr.ndim] = arr.shape
        dst = self.stage_index + 1
        self._sends += [(self._comm.Isend(header, dest=dst, tag=_TAG_HEADER), header),
                        (self._comm.Isend(arr, dest=dst, tag=_TAG_ACTIVATION), arr)]

    def _recv_activation(self):
        src = self.stage_index - 1
        header = np.empty(2 + _MAX_DIM, dtype=np.int64)
        with _waiting():
            self._comm.Recv(header, source=src, tag=_TAG_HEADER)
            shape = tuple(int(d) for d in header[2:2 + int(header[1])])
            arr = np.empty(shape, dtype=_DTYPES[int(header[0])])
            self._comm.Recv(arr, source=src, tag=_TAG_ACTIVATION)
        return self._on_device(arr)

    def _send_grad(self, inp):
        g = inp.grad
        arr = np.zeros(inp.shape, inp._data.dtype) if g is None else \
            np.ascontiguousarray(_host(g._data))
        self._sends.append((self._comm.Isend(arr, dest=self.stage_index - 1, tag=_TAG_GRAD),
                            arr))

    def _recv_grad(self, out):
        arr = np.empty(out.shape, dtype=_host(out._data).dtype)
        with _waiting():
            self._comm.Recv(arr, source=self.stage_index + 1, tag=_TAG_GRAD)
        return self._on_device(arr)

    def _on_device(self, arr):
        from ..tensor import Tensor
        t = Tensor._wrap(arr)
        p = next(iter(self.module.parameters()), None)
        return t.to(p.device) if p is not None and p.device != t.device else t

    def _finish_sends(self):
        if self._sends:
            from mpi4py import MPI
            with _waiting():
                MPI.Request.Waitall([r for r, _ in self._sends])
            self._sends = []

    # ------------------------------------------------------------------ compute
    def _run_stage(self, x, i):
        try:
            return self.module(x)
        except Exception as exc:
            came = "the input" if self.stage_index == 0 else \
                f"rank {self.stage_index - 1}'s activation"
            lo, hi = self.layers
            raise RuntimeError(
                f"Pipe: stage {self.stage_index} (layers {lo}..{hi - 1}) failed on micro-batch "
                f"{i} of shape {tuple(x.shape)} {x._data.dtype} from {came}: {exc}") from exc

    def _split_first(self, input, what):
        from ..tensor import Tensor
        if input is None:
            raise ValueError(f"Pipe.{what}: the first stage (rank 0) needs the input batch")
        if not isinstance(input, Tensor):
            raise TypeError(f"Pipe.{what}: expected the input as a Tensor, got "
                            f"{type(input).__name__}")
        n = input.shape[0] if input.ndim else 0
        if n < self.chunks:
            raise ValueError(f"Pipe.{what}: a batch of {n} rows cannot be split into "
                             f"chunks={self.chunks} non-empty micro-batches")
        return _rows(input, _split_sizes(n, self.chunks))

    def _weights(self, target):
        n = target.shape[0]
        if getattr(self.loss_fn, "reduction", "mean") == "sum":
            return [1.0] * self.chunks
        if getattr(self.loss_fn, "reduction", "mean") == "none":
            raise ValueError("Pipe.step: loss_fn must reduce to a scalar (reduction='mean' "
                             "or 'sum'), not reduction='none'")
        return [s / n for s in _split_sizes(n, self.chunks)]

    def step(self, input=None, *, target=None, losses: list | None = None):
        """Forward and backward of one batch through the whole pipeline.

        Every rank calls it: the first stage with the input batch, the last stage with
        ``target``. Afterwards this stage's ``.grad`` holds the gradient of the whole-batch
        loss (accumulated into existing gradients, as ``backward`` does); call the
        optimizer next. Returns the batch's loss (a detached scalar) on the last stage and
        None elsewhere; ``losses``, if given, receives each micro-batch's loss there.
        """
        first, last = self.stage_index == 0, self.stage_index == self.num_stages - 1
        if self.loss_fn is None:
            raise ValueError("Pipe.step: no loss_fn; give Pipe(..., loss_fn=...) to train")
        xs = self._split_first(input, "step") if first else None
        if last:
            if target is None:
                raise ValueError(f"Pipe.step: the last stage (rank {self.stage_index}) needs "
                                 "target=")
            n = target.shape[0] if target.ndim else 0
            if n < self.chunks:
                raise ValueError(f"Pipe.step: a target of {n} rows cannot be split into "
                                 f"chunks={self.chunks} non-empty micro-batches")
            ys, weights = _rows(target, _split_sizes(n, self.chunks)), self._weights(target)
        heartbeat()
        self.timeline, held, self.peak_in_flight = [], {}, 0
        total = 0.0
        for kind, i in pipeline_schedule(self.schedule, self.num_stages, self.stage_index,
                                         self.chunks):
            if kind == "F":
                x = xs[i] if first else self._recv_activation()
                if not first and x.is_floating_point():
                    x.requires_grad_()   # its gradient goes back to the previous stage
                start, cpu = time.perf_counter(), time.thread_time()
                out = self._run_stage(x, i)
                if last:
                    if out.shape[0] != ys[i].shape[0]:
                        raise ValueError(
                            f"Pipe.step: micro-batch {i} reaches the loss with {out.shape[0]} "
                            f"rows (output {tuple(out.shape)}) but its share of the target "
                            f"has {ys[i].shape[0]} rows (target {tuple(target.shape)} in "
                            f"{self.chunks} chunks); the input and the target must have the "
                            "same batch size")
                    micro_loss = self.loss_fn(out, ys[i])
                    out = micro_loss * weights[i]
                    total += float(out.item())
                    if losses is not None:
                        losses.append(micro_loss.detach())
                self.timeline.append(("F", i, start, time.perf_counter(),
                                      time.thread_time() - cpu))
                if not last:
                    self._send_activation(out)
                held[i] = (x, out)
                self.peak_in_flight = max(self.peak_in_flight, len(held))
            else:
                x, out = held.pop(i)
                g = None if last else self._recv_grad(out)
                start, cpu = time.perf_counter(), time.thread_time()
                if out.requires_grad:
                    out.backward(g)
                self.timeline.append(("B", i, start, time.perf_counter(),
                                      time.thread_time() - cpu))
                if not first:
                    self._send_grad(x)
        self._finish_sends()
        if not last:
            return None
        from ..tensor import Tensor
        return Tensor._wrap(np.asarray(total, dtype=np.float64))

    def forward(self, input=None):
        """Inference through the pipeline (no gradients): every rank calls it, the first
        with the input; returns the whole batch's output on the last stage, None elsewhere."""
        from ..autograd.grad_mode import no_grad
        from ..ops.movement import cat
        first, last = self.stage_index == 0, self.stage_index == self.num_stages - 1
        xs = self._split_first(input, "forward") if first else None
        outs = []
        with no_grad():
            for i in range(self.chunks):
                x = xs[i] if first else self._recv_activation()
                out = self._run_stage(x, i)
                if last:
                    outs.append(out)
                else:
                    self._send_activation(out)
        self._finish_sends()
        return cat(outs, 0) if last else None
