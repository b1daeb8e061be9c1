"""Asynchronous data parallelism: a parameter server.

One rank (the server, rank 0 by default) holds the model's parameters and the optimizer;
every other rank is a worker that loops: ``pull()`` the newest parameters, compute
gradients on its own data, ``push()`` them. The server applies each gradient the moment it
arrives (it waits for any worker's message, there is no barrier), so the version, the
number of updates applied, equals the number of pushes.

A gradient computed from version ``v`` and applied when the server is at version ``V`` has
staleness ``V - v``. ``max_staleness=k`` bounds it without throwing work away: the server
answers a worker's pull only when no gradient still being computed can end up more than
``k`` versions behind, that is when, for every worker ``A`` that has pulled and not pushed
yet, ``(V - v_A) + (number of such workers, the new one included) - 1 <= k``; otherwise
the pull waits until enough of those gradients are in. ``k=0`` lets one worker compute at a
time, which is plain sequential SGD; ``None`` never waits (fully asynchronous).

Messages use a communicator of their own. The server and a worker waiting for a reply poll
with short sleeps instead of spinning in MPI, so a server that shares cores with its workers
leaves them the CPU.
"""
from __future__ import annotations

import time
from collections import deque

import numpy as np

from ..nn.module import Module
from ._heartbeat import _waiting, heartbeat
from .process_group import _world

__all__ = ["ParameterServer"]

_TAG_PULL, _TAG_VERSION, _TAG_PARAMS, _TAG_PUSH, _TAG_GRAD, _TAG_DONE = range(201, 207)


def _sleepy_wait(test, spin: float = 1e-4):
    """Call ``test()`` until it is true: spin for ``spin`` seconds, then sleep in growing
    steps (at most 0.2 ms) so that a waiting process does not take a core from one that
    computes."""
    start, pause = time.perf_counter(), 2e-5
    with _waiting():
        while not test():
            if time.perf_counter() - start > spin:
                time.sleep(pause)
                pause = min(2 * pause, 2e-4)


class ParameterServer:
    """Asynchronous SGD with a parameter server; every rank constructs it the same way.

    Args:
        model: the model, the same architecture on every rank (the server's weights are the
            ones trained; a worker's are overwritten by each ``pull``).
        optimizer: an optimizer over ``model``'s parameters; used on the server only.
        max_staleness: ``None`` (never wait) or ``k >= 0``: no applied gradient is more than
            ``k`` versions older than the parameters it updates (``0``: one worker at a time,
            the same updates as sequential SGD).
        server_rank: the rank that serves.

    After ``serve()``, ``log`` holds one ``(worker, push_index, base_version, staleness)``
    per applied gradient, in the order applied.

    A job is one script; the server serves until every worker has called ``close()``::

        ps = ParameterServer(model, sd.optim.SGD(model.parameters(), lr=0.1), max_staleness=2)
        if ps.is_server:
            stats = ps.serve()              # returns when every worker has closed
        else:
            for x, y in my_batches:
                ps.pull()                   # the model now has the server's newest weights
                model.zero_grad()
                F.cross_entropy(model(x), y).backward()
                ps.push()                   # returns at once; the server applies it on arrival
            ps.close()
    """

    def __init__(self, model: Module, optimizer=None, max_staleness: int | None = None,
                 server_rank: int = 0) -> None:
        if not isinstance(model, Module):
            raise TypeError(f"ParameterServer: expected an nn.Module, got {type(model).__name__}")
        if max_staleness is not None and (not isinstance(max_staleness, (int, np.integer))
                                          or max_staleness < 0):
            raise ValueError(f"ParameterServer: max_staleness must be None or an integer >= 0, "
                             f"got {max_staleness!r}")
        w = _world()
        if w.size < 2:
            raise ValueError("ParameterServer: needs a server and at least one worker but the "
                             "world has 1 rank; launch with 'shendu run --nproc 3 ...' "
                             "(1 server + 2 workers)")
        if not isinstance(server_rank, (int, np.integer)) or not 0 <= server_rank < w.size:
            raise ValueError(f"ParameterServer: server_rank={server_rank!r} is not a rank of a "
                             f"world of size {w.size}")
        self.model, self.optimizer, self.max_staleness = model, optimizer, max_staleness
        self.server_rank, self.rank = int(server_rank), w.rank
        self.is_server = w.rank == server_rank
        params, seen = [], set()
        for name, p in model.named_parameters():
            if p.requires_grad and id(p) not in seen:
                seen.add(id(p))
                params.append((name, p))
        self._names = [n for n, _ in params]
        self._params = [p for _, p in params]
        self._check_same_model(w)
        dtypes = {str(p._data.dtype) for p in self._params}
        if len(dtypes) != 1:
            raise TypeError(f"ParameterServer: the parameters have dtypes {sorted(dtypes)}; "
                            "expected one floating-point dtype (convert the model first)")
        self._dtype = np.dtype(dtypes.pop())
        self._sizes = [p._data.size for p in self._params]
        self._offsets = np.concatenate([[0], np.cumsum(self._sizes)]).astype(int)
        if self.is_server and optimizer is None:
            raise ValueError(f"ParameterServer: the server (rank {server_rank}) needs an "
                             "optimizer over the model's parameters")
        self._comm = w.comm.Dup()
        self.version = 0          # server: updates applied; worker: version of its last pull
        self.log: list[tuple[int, int, int, int]] = []
        self._pushes, self._pulled, self._closed = 0, False, False
        self._pending: list = []  # a worker's push messages still being sent, with buffers

    def _check_same_model(self, w):
        mine = [(n, tuple(p.shape), str(p._data.dtype)) for n, p in zip(self._names, self._params)]
        everyone = w.comm.allgather(mine)
        theirs = everyone[self.server_rank]
        for r, sig in enumerate(everyone):
            if sig != theirs:
                diff = next((f"parameter {a[0]!r} is {a[1]} {a[2]} on rank {r} but {b[1]} "
                             f"{b[2]} on the server" for a, b in zip(sig, theirs) if a != b),
                            f"rank {r} has {len(sig)} parameters, the server {len(theirs)}")
                raise RuntimeError(f"ParameterServer: rank {r}'s model differs from the "
                                   f"server's (rank {self.server_rank}): {diff}; every rank "
                                   "must build the same model")

    # ------------------------------------------------------------------ worker
    def _worker_only(self, what):
        if self.is_server:
            raise RuntimeError(f"ParameterServer.{what}: rank {self.rank} is the server; only "
                               "workers pull and push (the server calls serve())")
        if self._closed:
            raise RuntimeError(f"ParameterServer.{what}: this worker has called close()")

    def _flat(self):
        flat = np.empty(int(self._offsets[-1]), dtype=self._dtype)
        for p, lo, hi in zip(self._params, self._offsets[:-1], self._offsets[1:]):
            flat[lo:hi] = np.asarray(p._data).reshape(-1)
        return flat

    def pull(self) -> int:
        """Copy the server's newest parameters into the model (waiting while
        ``max_staleness`` holds this worker back); returns their version."""
        from mpi4py import MPI
        self._worker_only("pull")
        head = np.empty(1, dtype=np.int64)
        flat = np.empty(int(self._offsets[-1]), dtype=self._dtype)
        src = self.server_rank
        reqs = [self._comm.Irecv(head, source=src, tag=_TAG_VERSION),
                self._comm.Irecv(flat, source=src, tag=_TAG_PARAMS)]
        self._comm.Send(np.array([self._pushes], dtype=np.int64), dest=src, tag=_TAG_PULL)
        # a large reply moves only while this side polls: spin a little longer here
        _sleepy_wait(lambda: MPI.Request.Testall(reqs), spin=2e-3)
        for p, lo, hi in zip(self._params, self._offsets[:-1], self._offsets[1:]):
            p._data[...] = flat[lo:hi].reshape(p._data.shape)
        self._finish_pushes()
        self.version, self._pulled = int(head[0]), True
        heartbeat()
        return self.version

    def push(self, grads=None) -> None:
        """Send gradients to the server (default: each parameter's ``.grad``; a missing one
        counts as zero) and return at once; they were computed from the last pulled version.
        """
        self._worker_only("push")
        if not self._pulled:
            raise RuntimeError("ParameterServer.push: pull() first; a gradient must be computed "
                               "from parameters the server gave out")
        if grads is None:
            grads = [p.grad for p in self._params]
        grads = list(grads)
        if len(grads) != len(self._params):
            raise ValueError(f"ParameterServer.push: got {len(grads)} gradients but the model "
                             f"has {len(self._params)} parameters ({', '.join(self._names)})")
        flat = np.empty(int(self._offsets[-1]), dtype=self._dtype)
        for k, (g, p) in enumerate(zip(grads, self._params)):
            lo, hi = self._offsets[k], self._offsets[k + 1]
            if g is None:
                flat[lo:hi] = 0
                continue
            arr = np.asarray(getattr(g, "_data", g))
            if arr.shape != tuple(p.shape):
                raise ValueError(f"ParameterServer.push: gradient {k} has shape {arr.shape} but "
                                 f"parameter {self._names[k]!r} has shape {tuple(p.shape)}")
            flat[lo:hi] = arr.reshape(-1)
        head = np.array([self.version, self._pushes], dtype=np.int64)
        src = self.server_rank
        self._pending += [(self._comm.Isend(head, dest=src, tag=_TAG_PUSH), head),
                          (self._comm.Isend(flat, dest=src, tag=_TAG_GRAD), flat)]
        self._pushes += 1
        heartbeat()

    def _finish_pushes(self):
        if self._pending:
            from mpi4py import MPI
            reqs = [r for r, _ in self._pending]
            _sleepy_wait(lambda: MPI.Request.Testall(reqs))
            self._pending = []

    def close(self) -> None:
        """A worker is done: tell the server (after its pushes are delivered)."""
        if self.is_server or self._closed:
            return
        self._finish_pushes()
        self._comm.Send(np.array([self._pushes], dtype=np.int64), dest=self.server_rank,
                        tag=_TAG_DONE)
        self._closed = True

    # ------------------------------------------------------------------ server
    def _may_start(self, computing: dict) -> bool:
        """Can one more worker start computing without any gradient now being computed
        (nor its own) ending up more than max_staleness versions behind?"""
        k = self.max_staleness
        if k is None:
            return True
        n = len(computing)
        return n <= k and all(self.version - v + n <= k for v in computing.values())

    def _grant(self, worker, computing):
        # non-blocking: a large message moves only as fast as the (sleepy) worker polls, and
        # meanwhile the server can take other workers' messages
        head = np.array([self.version], dtype=np.int64)
        flat = self._flat()
        self._sending += [(self._comm.Isend(head, dest=worker, tag=_TAG_VERSION), head),
                          (self._comm.Isend(flat, dest=worker, tag=_TAG_PARAMS), flat)]
        computing[worker] = self.version

    def _sent(self) -> bool:
        """Drop the replies that have gone; True when none is left."""
        self._sending = [(r, b) for r, b in self._sending if not r.Test()]
        return not self._sending

    def _apply(self, worker, grad):
        from ..tensor import Tensor
        for p, lo, hi in zip(self._params, self._offsets[:-1], self._offsets[1:]):
            p.grad = Tensor._wrap(grad[lo:hi].reshape(p._data.shape).copy())
        self.optimizer.step()
        self.version += 1

    def serve(self, on_update=None) -> dict:
        """Serve pulls and apply pushes as they come, until every worker has closed.

        Args:
            on_update: called as ``on_update(version)`` after each applied gradient (e.g. to
                record the model); keep it short, workers wait meanwhile.

        Returns:
            ``{"version", "pushes" (per worker rank), "max_staleness_seen",
            "mean_staleness", "waited_pulls"}``.
        """
        from mpi4py import MPI
        if not self.is_server:
            raise RuntimeError(f"ParameterServer.serve: rank {self.rank} is a worker; the "
                               f"server is rank {self.server_rank}")
        comm, status = self._comm, MPI.Status()
        open_workers = {r for r in range(comm.Get_size()) if r != self.server_rank}
        computing: dict[int, int] = {}     # worker -> version it pulled, until it pushes
        waiting: deque[int] = deque()      # workers whose pull waits for max_staleness
        pushes = {r: 0 for r in open_workers}
        waited = 0
        self._sending: list = []           # replies to pulls still on their way, with buffers
        head = np.empty(2, dtype=np.int64)
        grad = np.empty(int(self._offsets[-1]), dtype=self._dtype)
        while open_workers:
            def arrived():
                self._sent()   # each test also moves the replies along
                return comm.Iprobe(source=MPI.ANY_SOURCE, tag=MPI.ANY_TAG, status=status)
            _sleepy_wait(arrived)
            src, tag = status.Get_source(), status.Get_tag()
            if tag == _TAG_PULL:
                comm.Recv(head[:1], source=src, tag=_TAG_PULL)
                if src in computing or self._may_start(computing):
                    self._grant(src, computing)   # a re-pull only makes its gradient fresher
                else:
                    waiting.append(src)
                    waited += 1
            elif tag == _TAG_PUSH:
                comm.Recv(head, source=src, tag=_TAG_PUSH)
                comm.Probe(source=src, tag=_TAG_GRAD, status=status)
                got = status.Get_count(MPI.BYTE)
                if got != grad.nbytes:
                    raise ValueError(
                        f"ParameterServer.serve: worker rank {src} pushed {got} bytes "
                        f"({got // self._dtype.itemsize} {self._dtype} values) but the model "
                        f"has {grad.size} parameters ({grad.nbytes} bytes)")
                comm.Recv(grad, source=src, tag=_TAG_GRAD)
                base = int(head[0])
                self.log.append((src, int(head[1]), base, self.version - base))
                self._apply(src, grad)
                pushes[src] += 1
                computing.pop(src, None)
                if on_update is not None:
                    on_update(self.version)
            elif tag == _TAG_DONE:
                comm.Recv(head[:1], source=src, tag=_TAG_DONE)
                open_workers.discard(src)
                computing.pop(src, None)
            else:
                raise RuntimeError(f"ParameterServer.serve: unexpected message tag {tag} from "
                                   f"rank {src}")
            while waiting and self._may_start(computing):
                self._grant(waiting.popleft(), computing)
            heartbeat()
        _sleepy_wait(self._sent)
        stale = [s for *_, s in self.log]
        return {"version": self.version, "pushes": pushes,
                "max_staleness_seen": max(stale, default=0),
                "mean_staleness": float(np.mean(stale)) if stale else 0.0,
                "waited_pulls": waited}

    def __enter__(self) -> ParameterServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
