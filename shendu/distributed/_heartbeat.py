"""Progress heartbeats that ``shendu run`` watches to find a hung job.

A heartbeat is a counter, not a timer: a thread that beats every second would go on beating
while its rank is stuck in a collective or a sleep (both release the GIL), so the counter
moves only when the rank makes progress. Collectives, ``send``/``recv``, ``barrier`` and each
``DistributedDataParallel`` forward bump it; a loop that does none of these for a long time
(a long evaluation on rank 0, say) calls :func:`heartbeat` itself.

Under ``shendu run`` each rank writes ``<count> <state>`` to ``rank<N>.beat`` in the
launcher's job folder (``_rank`` calls :func:`_start`); the state is ``r`` (running), ``w``
(blocked in communication, so waiting for another rank) or ``d`` (its script returned). The
launcher reads these files without MPI: the job is hung when no rank that is still running
has beaten for ``--heartbeat-timeout`` seconds, and the ranks that stopped outside
communication are the ones it names. The state only serves that naming, so the blocking
calls that mark it (:func:`_waiting`) are the common ones, not every MPI call. The file is
created at the first beat, so imports and data loading before it are never taken for a hang.
Outside the launcher a beat only bumps the counter.
"""
from __future__ import annotations

import contextlib
import os

__all__ = ["heartbeat", "beats"]

_COUNT = 0
_PATH: str | None = None   # the beat file, set by _start under shendu run
_FD: int | None = None     # opened at the first beat
_DONE = False


def _start(path: str) -> None:
    """Beat into ``path`` from now on (called by ``shendu.distributed._rank``)."""
    global _PATH
    _PATH = path


def _write(state: bytes) -> None:
    global _FD, _PATH
    if _PATH is None or _DONE:
        return
    try:
        if _FD is None:
            _FD = os.open(_PATH, os.O_WRONLY | os.O_CREAT, 0o600)
        # one fixed-width write at offset 0: the launcher never reads a mix of two beats
        os.pwrite(_FD, b"%020d %s\n" % (_COUNT, state), 0)
    except OSError:   # the job folder is gone (the launcher is ending the job): stop beating
        _PATH = None


def _beat(state: bytes) -> int:
    global _COUNT
    _COUNT += 1
    _write(state)
    return _COUNT


def heartbeat() -> int:
    """Report progress to ``shendu run``; returns this rank's beat count.

    Call it in a long loop that does no communication, so that the launcher's
    ``--heartbeat-timeout`` does not take the job for hung.

    Example:
        >>> import shendu.distributed as dist
        >>> n = dist.heartbeat()
        >>> dist.heartbeat() == n + 1
        True
    """
    return _beat(b"r")


@contextlib.contextmanager
def _waiting():
    """Around a blocking MPI call: this rank is waiting for others, not stuck itself."""
    _beat(b"w")
    try:
        yield
    finally:
        _beat(b"r")


def _finish() -> None:
    """The script returned: say so, so the launcher no longer expects beats from this rank
    (it may sit in MPI_Finalize or exit while the others go on)."""
    global _DONE, _FD
    _write(b"d")
    _DONE = True
    if _FD is not None:
        os.close(_FD)
        _FD = None


def beats() -> int:
    """How many heartbeats this process has sent."""
    return _COUNT
