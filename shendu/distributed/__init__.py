"""Distributed training on MPI (mpi4py): process groups, collectives, the ``shendu run``
launcher and ``shendu.nn.parallel.DistributedDataParallel``; torch.distributed's names.
Pipeline parallelism (``pipeline.Pipe``) and asynchronous SGD with a ``ParameterServer``.

Start a job with ``shendu run --nproc 2 train.py``; in the script call
``init_process_group(backend="mpi")``. Without a launcher the process is a world of one.
"""
from . import checkpoint, pipeline
from ._heartbeat import heartbeat
from .collectives import (
    all_gather,
    all_gather_into_tensor,
    all_reduce,
    broadcast,
    irecv,
    isend,
    recv,
    reduce_scatter,
    send,
)
from .param_server import ParameterServer
from .pipeline import Pipe
from .process_group import (
    ReduceOp,
    Work,
    barrier,
    destroy_process_group,
    get_backend,
    get_rank,
    get_world_size,
    init_process_group,
    is_available,
    is_initialized,
    is_mpi_available,
)

__all__ = ["checkpoint", "heartbeat", "ReduceOp", "Work", "init_process_group",
           "destroy_process_group", "is_initialized", "is_available", "is_mpi_available",
           "get_rank", "get_world_size", "get_backend", "barrier", "all_reduce", "broadcast",
           "all_gather", "all_gather_into_tensor", "reduce_scatter", "send", "recv", "isend",
           "irecv", "pipeline", "Pipe", "ParameterServer"]
