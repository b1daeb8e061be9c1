"""Optimizers and learning-rate schedules with PyTorch's names and update rules.

>>> import shendu as sd
>>> w = sd.nn.Parameter(sd.tensor([4.0]))
>>> opt = sd.optim.Adam([w], lr=0.5)
>>> for _ in range(100):
...     opt.zero_grad()
...     ((w - 1.0) ** 2).sum().backward()
...     opt.step()
>>> abs(w.item() - 1.0) < 0.05
True
"""
from . import lr_scheduler
from .adadelta import Adadelta
from .adagrad import Adagrad
from .adam import Adam
from .adamw import AdamW
from .lbfgs import LBFGS
from .nadam import NAdam
from .optimizer import Optimizer
from .radam import RAdam
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adagrad", "RMSprop", "Adadelta", "Adam", "AdamW",
           "NAdam", "RAdam", "LBFGS", "lr_scheduler"]
