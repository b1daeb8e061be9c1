"""Parallel wrappers under PyTorch's names: ``DistributedDataParallel`` (MPI, see
``shendu.distributed``)."""
from ...distributed.ddp import DistributedDataParallel

__all__ = ["DistributedDataParallel"]
