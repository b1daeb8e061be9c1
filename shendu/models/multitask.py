"""Multi-task learning with hard parameter sharing: one trunk, one head per task, and a
loss that is the weighted sum of the tasks' losses.

>>> import shendu as sd
>>> import shendu.nn.functional as F
>>> trunk = sd.nn.Sequential(sd.nn.Linear(4, 8), sd.nn.ReLU())
>>> net = MultiTask(trunk, {"kind": sd.nn.Linear(8, 3), "size": sd.nn.Linear(8, 1)})
>>> out = net(sd.randn(5, 4))
>>> sorted(out), out["kind"].shape, out["size"].shape
(['kind', 'size'], (5, 3), (5, 1))
>>> crit = MultiTaskLoss({"kind": F.cross_entropy, "size": F.mse_loss}, {"size": 0.5})
>>> loss = crit(out, {"kind": sd.tensor([0, 1, 2, 0, 1]), "size": sd.zeros(5, 1)})
>>> loss.backward(); sorted(crit.last)
['kind', 'size']
"""
from __future__ import annotations

from collections.abc import Callable, Mapping

from ..nn.module import Module
from ..tensor import Tensor

__all__ = ["MultiTask", "MultiTaskLoss"]


class MultiTask(Module):
    """A shared ``trunk`` followed by named ``heads``; ``forward`` returns ``{name: output}``.

    Args:
        trunk: the shared feature extractor (its output feeds every head).
        heads: ``{task name: head module}``.
    """

    def __init__(self, trunk: Module, heads: Mapping[str, Module]):
        super().__init__()
        if not heads:
            raise ValueError("MultiTask: needs at least one head")
        self.trunk = trunk
        self.task_names = list(heads)
        for name, head in heads.items():
            if not name.isidentifier():
                raise ValueError(f"MultiTask: task name {name!r} must be an identifier")
            self.add_module(f"head_{name}", head)

    def head(self, name: str) -> Module:
        """The head of task ``name``."""
        if name not in self.task_names:
            raise KeyError(f"MultiTask: no task {name!r} (tasks: {self.task_names})")
        return self.get_submodule(f"head_{name}")

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        z = self.trunk(x)
        return {name: self.head(name)(z) for name in self.task_names}


class MultiTaskLoss(Module):
    """``sum_t weights[t] * losses[t](outputs[t], targets[t])``.

    Args:
        losses: ``{task: loss_fn(output, target)}``.
        weights: ``{task: weight}``; tasks not named weigh 1.

    ``last`` holds each task's unweighted loss of the latest call as Python floats, to log.
    """

    def __init__(self, losses: Mapping[str, Callable], weights: Mapping[str, float] | None = None):
        super().__init__()
        weights = dict(weights or {})
        unknown = set(weights) - set(losses)
        if unknown:
            raise ValueError(f"MultiTaskLoss: weights for unknown tasks {sorted(unknown)} "
                             f"(tasks: {sorted(losses)})")
        self.losses = dict(losses)
        self.weights = {t: float(weights.get(t, 1.0)) for t in losses}
        self.last: dict[str, float] = {}

    def forward(self, outputs: Mapping[str, Tensor], targets: Mapping[str, Tensor]) -> Tensor:
        total = None
        last = {}
        for task, fn in self.losses.items():
            if task not in outputs or task not in targets:
                raise KeyError(f"MultiTaskLoss: task {task!r} missing from the outputs "
                               f"({sorted(outputs)}) or targets ({sorted(targets)})")
            loss = fn(outputs[task], targets[task])
            last[task] = float(loss.item())
            term = loss * self.weights[task]
            total = term if total is None else total + term
        self.last = last
        return total
