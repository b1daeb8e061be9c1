"""The pieces ``shendu train --nproc N`` adds to the recipe: data-parallel training over
``shendu.distributed`` (every rank a full replica in ``DistributedDataParallel``).

* **Batches.** ``--batch-size`` is the *global* batch: each of the N ranks takes
  ``batch_size / N`` samples per step from its ``DistributedSampler`` share, and DDP
  averages the gradients, so a step sees the same samples and the same mean loss whatever
  N is, and the learning rate needs no rescaling. (A torch.distributed script's
  ``DataLoader(batch_size=...)`` is per rank instead.)
* **Metrics.** Training statistics and every evaluation (dev, train, test) are computed by
  all ranks on disjoint shards; the sums and counts are all-reduced, so every rank holds the
  same, exact whole-set numbers (early stopping and ReduceLROnPlateau decide alike).
* **Files.** Only rank 0 prints and writes (history, metrics, the checkpoint, the plot);
  the checkpoint is ``shendu train``'s format with the unwrapped model, so it resumes with
  or without ``--nproc``, plus every rank's random streams.

>>> _split_batch(64, 4)
16
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._loop import EpochStats
from .callbacks import Callback
from .checkpoint import get_rng_states, save_checkpoint, set_rng_states
from .trainer import Trainer

__all__ = ["DataParallelTrainer", "DataParallelCheckpoint", "Ranks", "rank_seed", "shard",
           "replica_digest"]


def _split_batch(batch_size: int, world_size: int) -> int:
    """The per-rank batch of a global ``batch_size`` split over ``world_size`` ranks."""
    if batch_size % world_size:
        raise ValueError(f"--batch-size {batch_size} is the global batch and must split "
                         f"evenly over --nproc {world_size} ranks (per-rank batch "
                         f"{batch_size / world_size:g}); use a multiple of {world_size}")
    return batch_size // world_size


def _world():
    from ..distributed import process_group as pg
    w = pg._WORLD
    return (w.comm, w.rank, w.size) if w is not None else (None, 0, 1)


class Ranks:
    """This process's place in a data-parallel job, for a hand-written training loop:
    every rank takes its share of each global batch, and rank 0's clock decides for all
    when time is up, so every rank takes the same steps. A lone process is rank 0 of 1,
    and every method is then plain arithmetic (no collective).

    >>> solo = Ranks()
    >>> solo.share(list(range(8))), solo.agreed(0.25), solo.mean([1.0, 2.0])
    ([0, 1, 2, 3, 4, 5, 6, 7], 0.25, 1.5)
    >>> Ranks(1, 2).share(list(range(8)))
    [4, 5, 6, 7]
    """

    def __init__(self, rank: int = 0, size: int = 1):
        if not 0 <= rank < size:
            raise ValueError(f"Ranks: rank {rank} is not in 0..{size - 1} (size {size})")
        self.rank, self.size = int(rank), int(size)

    @classmethod
    def of_process_group(cls) -> Ranks:
        """This process's rank and the world size of the default process group (rank 0
        of 1 when none is initialised)."""
        _, rank, size = _world()
        return cls(rank, size)

    def share(self, batch):
        """This rank's slice of a global ``batch`` (anything sliceable)."""
        n = _split_batch(len(batch), self.size)
        return batch[self.rank * n:(self.rank + 1) * n]

    def wrap(self, model):
        """``model`` in ``DistributedDataParallel`` (rank 0's weights on every rank); the
        model itself in a world of one."""
        if self.size == 1:
            return model
        from ..nn.parallel import DistributedDataParallel
        return DistributedDataParallel(model)

    def agreed(self, value: float) -> float:
        """Rank 0's ``value`` on every rank (a collective)."""
        return value if self.size == 1 else self._collective(value, "broadcast")

    def total(self, value: float) -> float:
        """The sum of every rank's ``value`` (a collective)."""
        return value if self.size == 1 else self._collective(value, "all_reduce")

    def mean(self, values) -> float | None:
        """The mean over every rank's ``values``, each rank passing as many (a collective;
        None when there are none)."""
        if len(values) == 0:
            return None
        return self.total(float(np.sum(values))) / (len(values) * self.size)

    def _collective(self, value: float, name: str) -> float:
        from .. import distributed as dist
        from ..creation import tensor
        shared = tensor([float(value)], dtype="float64")
        if name == "broadcast":
            dist.broadcast(shared, src=0)
        else:
            dist.all_reduce(shared)
        return float(shared.item())


def rank_seed(seed: int, rank: int) -> int:
    """The seed of rank ``rank``'s dropout and augmentation streams: rank 0 keeps ``seed``
    (a world of one draws what it always drew), the others get independent streams.

    >>> rank_seed(5, 0), rank_seed(5, 1) != rank_seed(5, 2)
    (5, True)
    """
    if rank == 0:
        return int(seed)
    return int(np.random.SeedSequence([int(seed), int(rank)]).generate_state(1)[0])


def shard(indices: np.ndarray, rank: int, world_size: int) -> np.ndarray:
    """This rank's part of an evaluation set: every ``world_size``-th index from ``rank``
    (no padding, so the all-reduced counts cover each sample exactly once).

    >>> shard(np.arange(5), 1, 2).tolist()
    [1, 3]
    """
    return np.asarray(indices)[rank::world_size]


def _reduce(stats: EpochStats) -> EpochStats:
    """``stats`` with every rank's sums and counts added up (a collective)."""
    comm, _, size = _world()
    if size == 1:
        return stats
    names = [name for name, _ in stats.metrics]
    mine = np.array([stats.n, float(stats.loss_sum)]
                    + [float(stats.sums[k]) for k in names]
                    + [float(stats.counts[k]) for k in names], dtype=np.float64)
    total = np.empty_like(mine)
    from ..distributed._heartbeat import _waiting
    with _waiting():
        comm.Allreduce(mine, total)
    out = EpochStats([m for _, m in stats.metrics], with_loss=stats.with_loss)
    out.n, out.loss_sum = int(total[0]), float(total[1])
    k = len(names)
    for i, name in enumerate(names):
        out.sums[name], out.counts[name] = float(total[2 + i]), int(total[2 + k + i])
    return out


class DataParallelTrainer(Trainer):
    """A :class:`Trainer` whose model is a ``DistributedDataParallel`` replica: each pass's
    loss and metric sums are all-reduced before the means are taken, so every rank logs
    the whole data's numbers. Every rank must run the same loop (same number of batches)."""

    def _summarize(self, stats: EpochStats, prefix: str) -> dict[str, float]:
        return _reduce(stats).compute(prefix)


class DataParallelCheckpoint(Callback):
    """After every epoch, rank 0 writes ``shendu train``'s checkpoint (atomically) with the
    unwrapped model and every rank's random streams in ``extra['data_parallel']``; all ranks
    must have it (it gathers the streams) and none returns before the file is complete."""

    order = 100   # after everything else has updated its state for the epoch

    def __init__(self, path: str | os.PathLike | None, extra: dict | None = None):
        self.path, self.extra = (os.fspath(path) if path is not None else None), extra
        self.last_path: str | None = None

    def on_epoch_end(self, trainer, epoch: int, logs: dict) -> None:
        comm, rank, size = _world()
        streams = get_rng_states()
        everyone = comm.allgather(streams) if size > 1 else [streams]
        error = None
        if rank == 0 and self.path is not None:
            extra = {**(self.extra or {}),
                     "data_parallel": {"world_size": size, "rng": everyone}}
            try:
                save_checkpoint(self.path, trainer.model.module, trainer.optimizer,
                                trainer.scheduler, epoch=epoch + 1, history=trainer.history,
                                extra=extra, callbacks=trainer.callbacks)
                self.last_path = self.path
            except Exception as exc:   # noqa: BLE001 - raised on every rank below
                error = f"{type(exc).__name__}: {exc}"
        if size > 1:
            from ..distributed._heartbeat import _waiting
            with _waiting():   # rank 0 may take a while to write: the others wait here
                error = comm.bcast(error, root=0)
        if error is not None:
            raise RuntimeError(f"shendu train: rank 0 could not write the checkpoint "
                               f"{self.path!r} ({error})")


class _SetEpoch(Callback):
    """``sampler.set_epoch(epoch)`` before each epoch: a new order, the same on all ranks."""

    order = -100

    def __init__(self, sampler):
        self.sampler = sampler

    def on_epoch_begin(self, trainer, epoch: int) -> None:
        self.sampler.set_epoch(epoch)


def restore_rank_streams(extra: dict, seed: int, epoch: int, log) -> None:
    """After a resume: this rank's own random streams, when the checkpoint has them for
    this world size (otherwise each rank's streams are derived from the seed and the
    epoch, and a note says so)."""
    _, rank, size = _world()
    saved = (extra or {}).get("data_parallel") or {}
    streams = saved.get("rng") or []
    if saved.get("world_size") == size and len(streams) == size:
        set_rng_states(streams[rank])
        return
    from .. import random as sd_random
    sd_random.manual_seed(rank_seed(int(seed) + 1_000_003 * int(epoch), rank))
    log(f"Note: the checkpoint was written by {saved.get('world_size', 1)} rank(s), this "
        f"job has {size}: training continues with the same model, optimizer and data "
        "order, but dropout and augmentation draw new random streams")


def replica_digest(model) -> str:
    """SHA-256 of every parameter's bytes: equal on all ranks when the replicas agree."""
    h = hashlib.sha256()
    for p in model.parameters():
        data = p._data
        h.update(np.ascontiguousarray(data.get() if hasattr(data, "get") else data).tobytes())
    return h.hexdigest()


def gather_digests(model) -> list[str]:
    """Every rank's :func:`replica_digest` (a collective), in rank order."""
    comm, _, size = _world()
    mine = replica_digest(model)
    return comm.allgather(mine) if size > 1 else [mine]


def sampler_callbacks(sampler) -> Sequence[Callback]:
    return [_SetEpoch(sampler)]


def summary(per_rank_batch: int, digests: list[str]) -> dict[str, Any]:
    """What ``metrics.json`` records about the data-parallel run."""
    return {"world_size": len(digests), "per_rank_batch": per_rank_batch,
            "replica_digests": digests, "replicas_identical": len(set(digests)) == 1}
