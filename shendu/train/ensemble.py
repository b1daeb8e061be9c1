"""Ensembles: average or vote several trained models, train them on bootstrap samples
(bagging, Breiman 1996), or collect snapshots of one run along a cyclic cosine learning
rate (snapshot ensembles, Huang et al. 2017).

>>> import shendu as sd
>>> nets = [sd.nn.Linear(3, 4) for _ in range(5)]
>>> ens = Ensemble(nets)
>>> p = ens(sd.randn(2, 3))
>>> p.shape, bool(abs(p.sum(1) - 1).max() < 1e-5)
((2, 4), True)
>>> Ensemble(nets, mode="vote")(sd.randn(2, 3)).sum(1).tolist()
[1.0, 1.0]
"""
from __future__ import annotations

import copy
import math
from collections.abc import Iterator, Sequence

import numpy as np

from ..data.sampler import Sampler
from ..nn import functional as F
from ..nn.containers import ModuleList
from ..nn.module import Module
from ..tensor import Tensor
from .callbacks import Callback

__all__ = ["Ensemble", "BootstrapSampler", "SnapshotEnsemble"]

_MODES = ("average", "vote", "logits")


class Ensemble(Module):
    """Combine classifiers that output logits.

    Args:
        models: the members (trained separately, on bootstrap samples, or snapshots).
        mode: ``'average'``: the mean of the members' softmax probabilities;
            ``'vote'``: the fraction of members voting for each class (argmax of each
            member; the output's argmax is the majority, ties to the lower class);
            ``'logits'``: the mean of the logits.
        weights: one non-negative weight per member (normalised; default equal).

    ``'average'`` and ``'vote'`` return probabilities, not logits: take ``argmax`` for
    predictions or ``log`` for ``nll_loss``.
    """

    def __init__(self, models: Sequence[Module], mode: str = "average",
                 weights: Sequence[float] | None = None):
        super().__init__()
        if mode not in _MODES:
            raise ValueError(f"Ensemble: mode must be one of {_MODES}, got {mode!r}")
        if len(models) == 0:
            raise ValueError("Ensemble: needs at least one model")
        w = np.ones(len(models)) if weights is None else np.asarray(weights, dtype=np.float64)
        if w.shape != (len(models),) or (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"Ensemble: weights must be {len(models)} non-negative numbers "
                             f"with a positive sum, got {weights!r}")
        self.members = ModuleList(models)
        self.mode = mode
        self.weights = (w / w.sum()).tolist()

    def __len__(self) -> int:
        return len(self.members)

    def forward(self, x: Tensor) -> Tensor:
        total = None
        for w, m in zip(self.weights, self.members):
            out = m(x)
            if self.mode == "average":
                out = F.softmax(out, dim=1)
            elif self.mode == "vote":
                out = F.one_hot(out.argmax(1), out.shape[1]).to(out.dtype)
            total = out * w if total is None else total + out * w
        return total


class BootstrapSampler(Sampler):
    """A bootstrap replicate of ``range(n)``: ``n`` indices drawn with replacement once,
    then reshuffled each epoch (each bagged model keeps its own replicate).

    Args:
        data_source: the dataset (or its length).
        seed: which replicate (one seed per ensemble member).

    ``out_of_bag`` holds the indices never drawn (about 37%): free validation data.

    >>> s = BootstrapSampler(10, seed=0)
    >>> len(list(s)), len(set(s.indices)) + len(s.out_of_bag)
    (10, 10)
    """

    def __init__(self, data_source, seed: int = 0):
        n = data_source if isinstance(data_source, int) else len(data_source)
        if n <= 0:
            raise ValueError(f"BootstrapSampler: needs a non-empty dataset, got {n} samples")
        self.rng = np.random.default_rng(seed)
        self.indices = self.rng.integers(0, n, n)
        self.out_of_bag = np.setdiff1d(np.arange(n), self.indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator[int]:
        return iter(self.rng.permutation(self.indices).tolist())


class SnapshotEnsemble(Callback):
    """Cyclic cosine learning rate and a saved copy of the model at the end of each cycle.

    Within a cycle the rate falls from the optimizer's initial ``lr`` to near zero along a
    cosine (set per batch); then it jumps back up, pushing the model into another basin.
    ``snapshots`` collects the models; ``ensemble()`` combines the last ``keep``.

    Args:
        cycles: how many cycles the run is split into (the snapshot count).
        epochs: total training epochs (a multiple of ``cycles``).
        lr: the peak rate (default: each param group's ``lr`` when training starts).
    """

    def __init__(self, cycles: int, epochs: int, lr: float | None = None):
        if cycles < 1 or epochs < cycles or epochs % cycles:
            raise ValueError(f"SnapshotEnsemble: epochs ({epochs}) must be a positive "
                             f"multiple of cycles ({cycles})")
        self.cycles, self.epochs, self.lr = cycles, epochs, lr
        self.per_cycle = epochs // cycles
        self.snapshots: list[Module] = []
        self._peaks: list[float] = []

    def on_train_begin(self, trainer) -> None:
        groups = trainer.optimizer.param_groups
        self._peaks = [self.lr if self.lr is not None else g.get("initial_lr", g["lr"])
                       for g in groups]

    def on_batch_begin(self, trainer, batch: int) -> None:
        n = max(1, len(trainer.train_loader))
        t = (trainer.epoch % self.per_cycle) * n + batch
        frac = t / (self.per_cycle * n)
        for g, peak in zip(trainer.optimizer.param_groups, self._peaks):
            g["lr"] = peak / 2 * (math.cos(math.pi * frac) + 1)

    def on_epoch_end(self, trainer, epoch: int, logs: dict) -> None:
        if (epoch + 1) % self.per_cycle == 0:
            snap = copy.deepcopy(trainer.model)
            snap.eval()
            self.snapshots.append(snap)

    def ensemble(self, keep: int | None = None, mode: str = "average") -> Ensemble:
        """The last ``keep`` snapshots (all by default) as an :class:`Ensemble`."""
        if not self.snapshots:
            raise ValueError("SnapshotEnsemble.ensemble: no snapshot yet (train first)")
        return Ensemble(self.snapshots[-keep if keep else 0:], mode=mode)
