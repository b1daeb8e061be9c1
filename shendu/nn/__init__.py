"""Neural-network building blocks: ``Module``, layers, losses, ``functional`` and ``init``."""
from . import functional, init, layers, losses, metric_learning, parallel, utils
from .containers import (
                         Flatten,
                         Identity,
                         ModuleDict,
                         ModuleList,
                         ParameterDict,
                         ParameterList,
                         Sequential,
                         Unflatten,
)
from .layers import *  # noqa: F403
from .losses import *  # noqa: F403
from .metric_learning import BatchHardMiner, ContrastiveLoss, SemiHardMiner
from .module import Module
from .parameter import Parameter, UninitializedBuffer, UninitializedParameter
from .summary import summary

__all__ = ["Module", "Parameter", "summary", "functional", "init", "utils",
           "Flatten", "Identity", "ModuleDict", "ModuleList", "ParameterDict", "ParameterList",
           "Sequential", "Unflatten", *layers.__all__, *losses.__all__,
           "ContrastiveLoss", "BatchHardMiner", "SemiHardMiner"]
