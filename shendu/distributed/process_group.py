"""The process group: one MPI communicator shared by every rank of the job.

``init_process_group(backend="mpi")`` duplicates ``MPI.COMM_WORLD`` so shendu's messages
never mix with the user's own mpi4py traffic; ``destroy_process_group`` frees that
duplicate (MPI itself stays initialised until the interpreter exits, as mpi4py arranges),
so a later ``init_process_group`` works again. Started without ``mpiexec`` the process is
an MPI singleton: world size 1, every collective a local no-op with the same semantics.
``init_process_group(backend="nccl")`` adds an NCCL communicator (CuPy) over the same ranks
for GPU tensors (see ``_nccl``).
"""
from __future__ import annotations

from datetime import timedelta

from ._heartbeat import _waiting, heartbeat

__all__ = ["ReduceOp", "Work", "init_process_group", "destroy_process_group",
           "is_initialized", "is_available", "is_mpi_available", "get_rank",
           "get_world_size", "get_backend", "barrier"]


class ReduceOp:
    """Reduction operations for ``all_reduce``/``reduce_scatter`` (torch.distributed's
    names). ``AVG`` is a ``SUM`` divided by the world size (floating-point tensors only)."""

    SUM = "sum"
    AVG = "avg"
    PRODUCT = "product"
    MAX = "max"
    MIN = "min"


class Work:
    """Handle of an operation started with ``async_op=True``; ``wait()`` finishes it.

    Example:
        >>> import shendu as sd, shendu.distributed as dist
        >>> dist.init_process_group("mpi")
        >>> t = sd.ones(3)
        >>> dist.all_reduce(t, async_op=True).wait()
        True
        >>> t.tolist()
        [1.0, 1.0, 1.0]
        >>> dist.destroy_process_group()
    """

    def __init__(self, requests=(), finish=None):
        self._requests = list(requests)
        self._finish = finish
        self._done = False
        self._comm = None   # set for a synchronous collective: every rank waits right away
        heartbeat()  # an operation started is progress the launcher can see

    def is_completed(self) -> bool:
        """True once the operation has finished (tests without blocking)."""
        if self._done:
            return True
        from mpi4py import MPI
        if MPI.Request.Testall(self._requests):
            self._complete()
        return self._done

    def wait(self, timeout: timedelta | None = None) -> bool:
        """Block until the operation is done; its results are in place afterwards."""
        if not self._done:
            if self._requests:
                with _waiting():
                    _wait_all(self._requests, comm=self._comm)
            self._complete()
        return True

    def _complete(self):
        self._done = True
        heartbeat()
        if self._finish is not None:
            finish, self._finish = self._finish, None
            finish()


# How a rank waits for the others. MPICH's blocking wait spins its core all along; on a
# machine with more runnable processes than cores, a rank spinning while its partner is
# still computing holds the core that partner needs. So a rank first polls for SPIN_S
# seconds (a partner in step answers within microseconds), then sleeps between polls (from
# NAP_S doubling up to NAP_MAX_S) until every rank has arrived, and only then waits in MPI
# for the data itself: moving a large message takes many exchanges, each of which a
# sleeping partner would delay by a wake-up (milliseconds on a busy machine).
# Where the job's own threads fit the cores (``_spin_budget``), nobody needs the waiting
# rank's core and it polls for up to SPIN_FREE_S instead, giving the core up at each poll
# (``sched_yield``: free when nothing else is runnable), before it starts napping.
SPIN_S = 50e-6
SPIN_FREE_S = 1e-3
NAP_S = 20e-6
NAP_MAX_S = 200e-6


def _nap_until(test, spin_s: float = SPIN_S) -> None:
    import os
    import time
    clock = time.perf_counter
    deadline = clock() + spin_s
    give_way = spin_s > SPIN_S and hasattr(os, "sched_yield")
    while clock() < deadline:
        if test():
            return
        if give_way:
            os.sched_yield()
    _precise_naps()
    nap = NAP_S
    while not test():
        time.sleep(nap)
        nap = min(2 * nap, NAP_MAX_S)


_PER_THREAD = None


def _precise_naps() -> None:
    """Make this thread's sleeps end on time: Linux lets a sleep overrun by the thread's
    timer slack (50 µs by default), so a 20 µs nap took about 70 µs; 1 µs of slack costs
    nothing but a few more wake-ups. Once per thread; nothing where prctl is missing."""
    global _PER_THREAD
    import threading
    if _PER_THREAD is None:
        _PER_THREAD = threading.local()
    if getattr(_PER_THREAD, "slack_set", False):
        return
    _PER_THREAD.slack_set = True
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(29, 1000, 0, 0, 0)   # PR_SET_TIMERSLACK, in nanoseconds
    except (OSError, AttributeError):
        pass


def _spin_budget(comm) -> float:
    """How long a rank of ``comm`` (its ranks on one machine) may poll before napping:
    SPIN_FREE_S when the ranks' threads together fit the cores they may run on (the
    union of their CPU affinities), else SPIN_S. A collective: every rank calls it."""
    import os

    from .._threads import get_num_threads
    try:
        cores = set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = set(range(os.cpu_count() or 1))
    everyone = comm.allgather((cores, get_num_threads()))
    usable = set().union(*(c for c, _ in everyone))
    return SPIN_FREE_S if sum(t for _, t in everyone) <= len(usable) else SPIN_S


def _wait_all(requests, statuses=None, comm=None) -> None:
    """``MPI.Request.Waitall(requests, statuses)`` without spinning while others compute.

    ``comm``: every rank of it is waiting on the same operations right now (a synchronous
    collective, DDP's buckets): the ranks meet at a barrier, sleeping between polls, and then
    finish the transfer in MPI's own wait at full speed. Without it, sleep between polls
    to the end (a barrier, a single exchange)."""
    from mpi4py import MPI

    def test():
        return MPI.Request.Testall(requests, statuses)
    if comm is None or comm.Get_size() == 1:
        if not test():
            _nap_until(test)
        return
    # every rank must enter this barrier, even one whose part is already done (a
    # broadcast's root): no shortcut before it
    arrived = comm.Ibarrier()
    _nap_until(arrived.Test)
    MPI.Request.Waitall(requests, statuses)


class _Group:
    def __init__(self, comm, backend: str = "mpi"):
        self.comm = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        self.backend = backend
        self.nccl = None   # the NcclBackend of backend "nccl" (GPU tensors go through it)


_WORLD: _Group | None = None


def is_mpi_available() -> bool:
    """True when mpi4py can be imported (the ``distributed`` extra is installed)."""
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return True


is_available = is_mpi_available


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise ImportError("shendu.distributed needs mpi4py and an MPI library: "
                          "pip install 'shendu[distributed]' (mpi4py and the mpich wheel)"
                          ) from exc
    return MPI


def init_process_group(backend: str = "mpi", init_method: str | None = None,
                       timeout: timedelta | None = None, world_size: int = -1,
                       rank: int = -1, **kwargs) -> None:
    """Join the job's process group; every rank must call it.

    Args:
        backend: ``"mpi"`` (the ranks are those ``mpiexec`` started), or ``"nccl"``: the
            same MPI group, plus an NCCL communicator (CuPy) that carries the collectives
            on GPU tensors; CPU tensors still go through MPI (see ``_nccl``).
        init_method: accepted for torch compatibility; only ``None`` or ``"env://"``.
        timeout: accepted for torch compatibility (MPI has no collective timeout).
        world_size, rank: if given, checked against what MPI reports.

    Example:
        >>> import shendu.distributed as dist
        >>> dist.init_process_group(backend="mpi")
        >>> dist.get_rank(), dist.get_world_size()
        (0, 1)
        >>> dist.destroy_process_group()
    """
    global _WORLD
    if backend is None:
        backend = "mpi"
    backend = str(backend).lower()
    if backend not in ("mpi", "nccl"):
        raise ValueError(f"init_process_group: backend {backend!r} is not supported; "
                         "expected 'mpi' or 'nccl'")
    if backend == "nccl":   # fail before touching MPI when CuPy, NCCL or a GPU is missing
        from ._nccl import require
        require()
    if init_method not in (None, "env://"):
        raise ValueError(f"init_process_group: init_method {init_method!r} is not supported "
                         "with the MPI backend (mpiexec places the ranks); expected None")
    if _WORLD is not None:
        raise RuntimeError("init_process_group: the default process group is already "
                           "initialised; call destroy_process_group() first")
    MPI = _mpi()
    world = _Group(MPI.COMM_WORLD.Dup(), backend)
    if world_size not in (-1, None) and int(world_size) != world.size:
        world.comm.Free()
        raise RuntimeError(f"init_process_group: world_size={world_size} but MPI started "
                           f"{world.size} process(es); launch with "
                           f"'shendu run --nproc {world_size} ...'")
    if rank not in (-1, None) and int(rank) != world.rank:
        world.comm.Free()
        raise RuntimeError(f"init_process_group: rank={rank} but MPI gave this process "
                           f"rank {world.rank}")
    if backend == "nccl":
        from ._nccl import NcclBackend
        try:
            world.nccl = NcclBackend(world.comm, world.rank, world.size)
        except BaseException:
            world.comm.Free()
            raise
    _WORLD = world


def _world() -> _Group:
    if _WORLD is None:
        raise RuntimeError("shendu.distributed: the default process group is not "
                           "initialised; call init_process_group(backend='mpi') first")
    return _WORLD


def is_initialized() -> bool:
    """True between ``init_process_group`` and ``destroy_process_group``."""
    return _WORLD is not None


def get_backend(group=None) -> str:
    """The backend's name: ``"mpi"`` or ``"nccl"``."""
    return _world().backend


def get_rank(group=None) -> int:
    """This process's rank, 0 .. world_size - 1."""
    return _world().rank


def get_world_size(group=None) -> int:
    """How many processes the job has."""
    return _world().size


def barrier(group=None, async_op: bool = False, device_ids=None):
    """Wait until every rank has reached this call."""
    comm = _world().comm
    if async_op:
        return Work([comm.Ibarrier()])
    with _waiting():
        _wait_all([comm.Ibarrier()])   # not MPI_Barrier: it would spin a core meanwhile
    return None


def destroy_process_group(group=None) -> None:
    """Leave the process group (frees its communicator; MPI stays up until exit)."""
    global _WORLD
    if _WORLD is None:
        return
    world, _WORLD = _WORLD, None
    if world.nccl is not None:
        world.nccl.destroy()
    world.comm.Free()
