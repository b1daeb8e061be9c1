"""Neural-network building blocks: ``Module``, layers, losses, ``functional`` and ``init``."""
from . import functional
from .containers import (Flatten, Identity, ModuleDict, ModuleList, ParameterDict,
                         ParameterList, Sequential, Unflatten)
from .module import Module
from .parameter import Parameter
from .summary import summary
