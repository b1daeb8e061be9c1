"""The differentiable primitives and the functions built on them.

The public names are each op module's ``__all__`` (add a new op there); the modules
themselves are not part of shendu's namespace.
"""
import importlib as _importlib

from . import compare, elementwise, indexing, linalg, movement, reduce, selection
from .compare import *  # noqa: F403
from .einsum import *  # noqa: F403
from .elementwise import *  # noqa: F403
from .indexing import *  # noqa: F403
from .linalg import *  # noqa: F403
from .math import *  # noqa: F403
from .matrix import *  # noqa: F403
from .movement import *  # noqa: F403
from .movement import getitem, type_  # noqa: F401  (Tensor's [] and .type, not exported)
from .reduce import *  # noqa: F403
from .scatter_reduce import *  # noqa: F403
from .search import *  # noqa: F403
from .selection import *  # noqa: F403
from .statistics import *  # noqa: F403

_MODULES = ("elementwise", "compare", "linalg", "movement", "selection", "reduce", "einsum",
            "indexing", "math", "matrix", "scatter_reduce", "search", "statistics")
__all__ = list(dict.fromkeys(name for m in _MODULES for name in
                             _importlib.import_module(f".{m}", __name__).__all__))
