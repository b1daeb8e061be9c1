"""Learning-rate schedules, stepped once per epoch (``OneCycleLR``: once per batch).

Values match PyTorch's schedulers step by step. ``InverseTimeDecayLR`` is the course
notes' ``lr0 / (1 + decay_rate * epoch)``; warm-up is ``LinearLR`` chained with another
schedule through ``SequentialLR``.

>>> import shendu as sd
>>> from shendu.optim import SGD, lr_scheduler
>>> opt = SGD([sd.nn.Parameter(sd.zeros(1))], lr=0.1)
>>> sched = lr_scheduler.ExponentialLR(opt, gamma=0.9)
>>> for epoch in range(2):
...     opt.step()        # ... a whole epoch of training ...
...     sched.step()
>>> round(opt.param_groups[0]["lr"], 6)
0.081
"""
from ._lr_base import LambdaLR, LRScheduler, MultiplicativeLR
from ._lr_compose import ChainedScheduler, ReduceLROnPlateau, SequentialLR
from ._lr_decay import (
    ConstantLR,
    CosineAnnealingLR,
    ExponentialLR,
    InverseTimeDecayLR,
    LinearLR,
    MultiStepLR,
    PolynomialLR,
    StepLR,
)
from ._lr_onecycle import OneCycleLR

_LRScheduler = LRScheduler  # PyTorch's older name

__all__ = ["LRScheduler", "LambdaLR", "MultiplicativeLR", "StepLR", "MultiStepLR",
           "ConstantLR", "LinearLR", "ExponentialLR", "PolynomialLR", "CosineAnnealingLR",
           "InverseTimeDecayLR", "SequentialLR", "ChainedScheduler", "ReduceLROnPlateau",
           "OneCycleLR"]
