"""``SyncBatchNorm``: batch normalisation whose statistics span every rank's batch.

In training each rank computes its per-channel count, mean and sum of squared deviations,
the ranks exchange those (one small allgather) and combine them exactly (Chan's parallel
formula, as stable as a two-pass variance over the whole batch). Backward all-reduces the
two per-channel gradient sums the input gradient needs; the weight and bias gradients
stay local, and ``DistributedDataParallel`` averages them as it does every parameter's.
So on R ranks with half batches the outputs, running statistics and (DDP-averaged)
gradients are those of ``BatchNorm`` on the whole batch in one process.

Without an initialised process group, with one rank, or in eval mode it is ``BatchNorm``
and communicates nothing.
"""
from __future__ import annotations

import numpy as np

from ...autograd.grad_mode import no_grad
from ...errors import ShapeError
from ...ops._util import xp_of
from ...ops.nn_ops import BatchNorm as _BatchNormOp
from ...tensor import Tensor
from ..module import Module
from .instancenorm import _InstanceNorm
from .norm import _BatchNorm

__all__ = ["SyncBatchNorm"]


def _host(a):
    return a if isinstance(a, np.ndarray) else a.get()


def _world_comm(process_group):
    """The communicator to synchronise over, or None when there is nobody to talk to."""
    from ...distributed import process_group as pg
    world = process_group if process_group is not None else pg._WORLD
    if world is None or world.size == 1:
        return None
    return world.comm


class _SyncBatchNormOp(_BatchNormOp):
    """Training-mode batch norm with global statistics; forward is ``BatchNorm``'s (given the
    global mean/invstd), backward sums the per-channel gradient terms over all ranks."""

    forward_graph = None   # double backward would need collectives in the recorded graph

    @staticmethod
    def forward(ctx, x, *wb, mean, invstd, axes, count, comm):
        out = _BatchNormOp.forward(ctx, x, *wb, mean=mean, invstd=invstd, axes=axes,
                                   training=True)
        ctx.count, ctx.comm = count, comm
        return out

    @staticmethod
    def backward(ctx, g):
        from mpi4py import MPI
        saved = ctx.saved_tensors           # (x,) or (x, weight): BatchNorm keeps its input
        invstd, axes, shape = ctx.invstd, ctx.axes, ctx.shape
        xhat = _BatchNormOp._xhat(ctx, saved[0])
        xp = xp_of(g)
        gsum = g.sum(axis=axes)
        gxhat_sum = (g * xhat).sum(axis=axes)
        both = np.ascontiguousarray(np.concatenate([_host(gsum), _host(gxhat_sum)]),
                                    dtype=np.float64)
        ctx.comm.Allreduce(MPI.IN_PLACE, both, op=MPI.SUM)
        c = gsum.shape[0]
        n = ctx.count
        tot_g = xp.asarray(both[:c] / n, dtype=g.dtype).reshape(shape)
        tot_gx = xp.asarray(both[c:] / n, dtype=g.dtype).reshape(shape)
        scale = invstd if len(saved) == 1 else invstd * saved[1]
        gx = (g - tot_g - xhat * tot_gx) * scale.reshape(shape)
        needs = ctx.needs_input_grad
        if len(needs) == 1:
            return gx
        return gx, (gxhat_sum if needs[1] else None), (gsum if needs[2] else None)

    @staticmethod
    def jvp(ctx, *tangents):
        raise NotImplementedError("SyncBatchNorm: forward-mode AD (jvp) is not supported in "
                                  "training with several ranks; use eval mode or BatchNorm")


def _global_stats(xa, axes, comm):
    """(count, mean, biased variance) per channel over every rank's batch, in float64."""
    c = xa.shape[1]
    n = xa.size // c if c else 0
    if n:
        mean = _host(xa.mean(axis=axes, dtype=np.float64))
        m2 = _host(((xa - xa.mean(axis=axes, keepdims=True)) ** 2).sum(axis=axes,
                                                                         dtype=np.float64))
    else:   # an empty local batch contributes nothing
        mean = m2 = np.zeros(c)
    everyone = comm.allgather((c, n, mean, m2))
    if any(e[0] != c for e in everyone):
        raise ShapeError("SyncBatchNorm: the ranks' inputs have different channel counts "
                         f"({[e[0] for e in everyone]}); every rank must run the same model")
    counts = np.array([e[1] for e in everyone], dtype=np.float64)
    total = counts.sum()
    if total <= 1:
        raise ValueError(f"SyncBatchNorm: expected more than 1 value per channel over all "
                         f"ranks when training, got {int(total)}")
    means = np.stack([e[2] for e in everyone])
    gmean = (counts[:, None] * means).sum(axis=0) / total
    m2 = sum(e[3] for e in everyone) + (counts[:, None] * (means - gmean) ** 2).sum(axis=0)
    return int(total), gmean, m2 / total


def sync_batch_norm(input: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
                    weight: Tensor | None, bias: Tensor | None, momentum: float, eps: float,
                    comm) -> Tensor:
    """Training-mode batch norm over the union of every rank's batch (see the module doc).

    Running statistics, when given, are updated in place with the global mean and the
    unbiased global variance.
    """
    x = input
    axes = (0,) + tuple(range(2, x.ndim))
    xa = x._data
    xp = xp_of(xa)
    n, mean, var = _global_stats(xa, axes, comm)
    if running_mean is not None:
        with no_grad():
            for buf, value in ((running_mean, mean), (running_var, var * (n / (n - 1)))):
                b = buf._data
                b *= 1 - momentum
                b += xp.asarray(momentum * value, dtype=b.dtype)
                buf._version[0] += 1
    mean_x = xp.asarray(mean, dtype=xa.dtype)
    invstd = xp.asarray(1.0 / np.sqrt(var + eps), dtype=xa.dtype)
    wb = () if weight is None else (weight, bias if bias is not None else weight * 0)
    return _SyncBatchNormOp.apply(x, *wb, mean=mean_x, invstd=invstd, axes=axes, count=n,
                                  comm=comm)


class SyncBatchNorm(_BatchNorm):
    """Batch normalisation with statistics over all ranks' batches (PyTorch's name and
    arguments); any input (N, C, ...) with at least 2 dims.

    Args:
        num_features, eps, momentum, affine, track_running_stats: as ``BatchNorm1d``.
        process_group: the group to synchronise over (None: the default one).

    Every rank must run each training forward and backward of the layer (they are
    collectives). Use ``SyncBatchNorm.convert_sync_batchnorm(model)`` to swap a model's
    batch norms.

    >>> import shendu as sd
    >>> bn = sd.nn.SyncBatchNorm(3)      # no process group: exactly BatchNorm
    >>> y = bn(sd.randn(8, 3, 2) * 4 + 1)
    >>> bool(y.mean((0, 2)).abs().max() < 1e-5), int(bn.num_batches_tracked)
    (True, 1)
    """

    _dims = tuple(range(2, 33))
    _shape_text = "at least 2-D (N, C, ...)"

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, process_group=None,
                 device=None, dtype=None) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device,
                         dtype)
        self.process_group = process_group

    def forward(self, input: Tensor) -> Tensor:
        comm = _world_comm(self.process_group) if self.training else None
        if comm is None:
            return super().forward(input)
        if input.ndim < 2 or input.shape[1] != self.num_features:
            raise ValueError(f"SyncBatchNorm({self.num_features}): expected {self._shape_text} "
                             f"input with C={self.num_features}, got shape {input.shape}")
        factor = self._momentum_factor()
        return sync_batch_norm(input, self.running_mean, self.running_var, self.weight,
                               self.bias, factor, self.eps, comm)

    @classmethod
    def convert_sync_batchnorm(cls, module: Module, process_group=None) -> Module:
        """Return ``module`` with every ``BatchNorm1d/2d/3d`` inside replaced by a
        ``SyncBatchNorm`` holding the same parameters, buffers and mode (instance norms are
        left alone). A batch norm passed directly comes back as a new module.

        >>> import shendu as sd
        >>> net = sd.nn.Sequential(sd.nn.Linear(2, 4), sd.nn.BatchNorm1d(4))
        >>> sd.nn.SyncBatchNorm.convert_sync_batchnorm(net)[1]
        SyncBatchNorm(4, eps=1e-05, momentum=0.1, affine=True, bias=True, track_running_stats=True)
        """
        out = module
        if isinstance(module, _BatchNorm) and not isinstance(module, (_InstanceNorm, cls)):
            out = cls(module.num_features, module.eps, module.momentum, module.affine,
                      module.track_running_stats, process_group)
            for name in ("weight", "bias"):
                out._parameters[name] = module._parameters.get(name)
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                out._buffers[name] = module._buffers.get(name)
            out.train(module.training)
        for name, child in list(module._modules.items()):
            if child is not None:
                out._modules[name] = cls.convert_sync_batchnorm(child, process_group)
        return out
