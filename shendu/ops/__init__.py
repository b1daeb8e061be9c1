"""The differentiable primitives and the functions built on them.

The public names are each op module's ``__all__`` (add a new op there); the modules
themselves are not part of shendu's namespace.
"""
from . import elementwise, linalg, movement, reduce
from .elementwise import *  # noqa: F403
from .linalg import *  # noqa: F403
from .movement import *  # noqa: F403
from .movement import getitem, type_  # noqa: F401  (Tensor's [] and .type, not exported)
from .reduce import *  # noqa: F403

__all__ = [*elementwise.__all__, *linalg.__all__, *movement.__all__, *reduce.__all__]
