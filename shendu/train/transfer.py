"""``GradualUnfreezing``: a callback that unfreezes a pretrained network one part per stage,
from the head down (ULMFiT's schedule), so early epochs cannot wreck the lower features.

>>> import shendu as sd
>>> net = sd.nn.Sequential(sd.nn.Linear(2, 4), sd.nn.Linear(4, 4), sd.nn.Linear(4, 2))
>>> _ = sd.nn.utils.freeze(net[0]); _ = sd.nn.utils.freeze(net[1])
>>> cb = GradualUnfreezing([net[1], net[0]], every=2)
>>> for epoch in range(5):
...     cb.on_epoch_begin(None, epoch)
...     print(epoch, [p.requires_grad for p in (net[0].weight, net[1].weight)])
0 [False, False]
1 [False, False]
2 [False, True]
3 [False, True]
4 [True, True]
"""
from __future__ import annotations

from collections.abc import Sequence

from ..nn.module import Module
from ..nn.utils.transfer import freeze, unfreeze
from .callbacks import Callback

__all__ = ["GradualUnfreezing"]


class GradualUnfreezing(Callback):
    """Unfreeze ``groups[i]`` at the start of epoch ``(i + 1) * every`` (epochs from 0).

    Args:
        groups: frozen modules in the order they should thaw: the one next to the head
            first, the input layers last.
        every: epochs between two unfreezings.

    The state follows from the epoch alone, so a resumed run gets the same schedule (groups
    due later are frozen again at each epoch start). Build the optimizer over all
    parameters (``discriminative_lr`` keeps per-group rates); frozen ones are skipped until
    they receive gradients. The number of trainable parameters goes into the history as
    ``trainable``.
    """

    def __init__(self, groups: Sequence[Module], every: int = 1):
        if not groups:
            raise ValueError("GradualUnfreezing: needs at least one module to unfreeze")
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"GradualUnfreezing: every must be a positive int, got {every!r}")
        self.groups, self.every = list(groups), every

    def on_epoch_begin(self, trainer, epoch: int) -> None:
        for i, g in enumerate(self.groups):
            (unfreeze if epoch >= (i + 1) * self.every else freeze)(g)

    def on_epoch_end(self, trainer, epoch: int, logs: dict) -> None:
        trainer.history.record("trainable", trainer.model.num_parameters(only_trainable=True))
