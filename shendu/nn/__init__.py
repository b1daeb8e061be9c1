"""Neural-network building blocks: ``Module``, layers, losses, ``functional`` and ``init``."""
from . import functional
from .containers import (Flatten, Identity, ModuleDict, ModuleList, ParameterDict,
                         ParameterList, Sequential, Unflatten)
from .module import Module
from .parameter import Parameter
from .summary import summary
from . import init, layers, utils
from .layers import *  # noqa: F401,F403
from .losses import *  # noqa: F401,F403
