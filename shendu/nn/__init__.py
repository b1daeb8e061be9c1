"""Neural-network building blocks: ``Module``, layers, losses, ``functional`` and ``init``."""
from . import functional, init, layers, utils
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
from .layers import *  # noqa: F401,F403
from .losses import *  # noqa: F401,F403
from .module import Module
from .parameter import Parameter, UninitializedBuffer, UninitializedParameter
from .summary import summary
