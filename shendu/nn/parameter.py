"""``Parameter``: a tensor that a ``Module`` registers as learnable."""
from __future__ import annotations

import numpy as np

from .. import creation
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
        self._init(arr, requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()

    __str__ = __repr__


class UninitializedError(ValueError, RuntimeError):
    """Raised when a lazy module's parameter is used before its first forward call (a
    ``ValueError`` as PyTorch raises for ops, and a ``RuntimeError`` as for ``.shape``)."""


class _Unmaterialized:
    """The ``_data`` of an uninitialized parameter or buffer: remembers the dtype and device
    to create it with, and refuses every use with a message that says what to do."""

    __slots__ = ("_kind", "_device", "_dtype")
    _lazy = True  # ``getattr(arr, "_lazy", False)`` tells it from a backend array

    def __init__(self, kind: str, device=None, dtype=None):
        self._kind, self._device, self._dtype = kind, device, dtype

    def _fail(self, *args, **kwargs):
        raise UninitializedError(
            f"Attempted to use an uninitialized {self._kind}. This error happens when you use "
            "a lazy module (LazyLinear, LazyConv2d, ...) or an Uninitialized"
            f"{self._kind.title()} before it has its shape: call the model's forward once "
            "with a dummy batch (or load a state dict) to initialize the parameters first")

    def __getattr__(self, name):
        if name.startswith("__"):  # protocol probes (copy, pickle) see a plain object
            raise AttributeError(name)
        self._fail()

    __array__ = __array_ufunc__ = __array_function__ = __len__ = __iter__ = _fail
    __getitem__ = __setitem__ = __bool__ = __float__ = __int__ = __index__ = _fail
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _fail
    __truediv__ = __rtruediv__ = __matmul__ = __rmatmul__ = __neg__ = __pow__ = _fail
    __iadd__ = __isub__ = __imul__ = __itruediv__ = _fail


class _UninitializedMixin:
    """What ``UninitializedParameter`` and ``UninitializedBuffer`` share: ``materialize``,
    and a repr/detach that work before there is data."""

    __slots__ = ()
    cls_to_become: type

    def materialize(self, shape, device=None, dtype=None) -> None:
        """Create the data with ``shape`` (zeros until the owner initialises it) and turn
        this very object into a ``cls_to_become``, so optimizers and modules holding it
        see the change."""
        lazy = self._data
        device = device if device is not None else lazy._device
        dtype = dtype if dtype is not None else lazy._dtype
        shape = (int(shape),) if isinstance(shape, int) else tuple(int(s) for s in shape)
        self._data = creation.zeros(*shape, device=device, dtype=dtype)._data
        self.__class__ = self.cls_to_become

    def _retarget(self, device, dtype) -> None:
        """``Module.to`` before materialization: remember where and in which dtype."""
        if device is not None:
            self._data._device = device
        if dtype is not None:
            self._data._dtype = dtype

    @property
    def shape(self):
        raise UninitializedError(
            f"Can't access the shape of an {type(self).__name__}: call the lazy module's "
            "forward with a dummy batch (or load a state dict) to initialize it first")

    def detach(self):
        return self

    def __repr__(self):
        return f"<{type(self).__name__}>"

    __str__ = __repr__


class UninitializedParameter(_UninitializedMixin, Parameter):
    """A parameter whose shape is not known yet (what lazy modules hold before their first
    forward call). ``materialize(shape)`` turns it into a ``Parameter`` in place.

    >>> import shendu as sd
    >>> p = UninitializedParameter()
    >>> p
    <UninitializedParameter>
    >>> p.materialize((2, 3))
    >>> type(p).__name__, p.shape
    ('Parameter', (2, 3))
    """

    __slots__ = ()
    cls_to_become = Parameter

    def __init__(self, requires_grad: bool = True, device=None, dtype=None):
        _init_lazy(self, "parameter", requires_grad, device, dtype)


class UninitializedBuffer(_UninitializedMixin, Tensor):
    """A buffer whose shape is not known yet (lazy batch norm's running statistics);
    ``materialize(shape)`` turns it into a ``Tensor`` in place."""

    __slots__ = ()
    cls_to_become = Tensor

    def __init__(self, requires_grad: bool = False, device=None, dtype=None):
        _init_lazy(self, "buffer", requires_grad, device, dtype)


def _init_lazy(t: Tensor, kind: str, requires_grad: bool, device, dtype) -> None:
    t._data = _Unmaterialized(kind, device, dtype)
    t.grad = t.grad_fn = t._hooks = None
    t._out_idx = 0
    t._version = [0]
    t._retains_grad = False
    t.requires_grad = bool(requires_grad)


def is_lazy(t) -> bool:
    """True for an ``UninitializedParameter`` or ``UninitializedBuffer``."""
    return isinstance(t, _UninitializedMixin)
