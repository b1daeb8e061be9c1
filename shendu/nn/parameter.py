"""``Parameter``: a tensor that a ``Module`` registers as learnable."""
from __future__ import annotations

import numpy as np

from ..tensor import Tensor, _asarray


class Parameter(Tensor):
    """A leaf tensor that requires grad by default and is found by ``Module.parameters()``.

    >>> import shendu as sd
    >>> w = sd.nn.Parameter(sd.zeros(2, 3))
    >>> w.requires_grad, w.shape
    (True, (2, 3))
    """

    __slots__ = ()

    def __init__(self, data=None, requires_grad: bool = True):
        if data is None:
            data = np.empty(0, np.float32)
        arr = data._data if isinstance(data, Tensor) else _asarray(data)
        super().__init__(arr, requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()

    __str__ = __repr__
