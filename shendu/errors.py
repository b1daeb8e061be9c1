"""shendu's exception classes: each is also the exception PyTorch raises for the same error.

PyTorch raises ``RuntimeError`` for most op errors (shapes that do not fit, mismatched
dtypes, writes into memory that several elements share), and user code catches it. shendu
raised ``ValueError``/``TypeError`` for them, and still does: these classes derive from
both, so ``except RuntimeError`` and ``except ValueError`` (or ``TypeError``) both work.

>>> import shendu as sd
>>> try:
...     sd.ones(3) + sd.ones(4)
... except RuntimeError as e:
...     print(type(e).__name__, isinstance(e, ValueError))
ShapeError True
"""
from __future__ import annotations

__all__ = ["ShapeError", "DTypeError", "ReadOnlyError", "ArgumentError", "DeviceError"]


class ShapeError(ValueError, RuntimeError):
    """Shapes that do not fit an op (broadcasting, matmul, reshape/view, cat, ...)."""


class DTypeError(TypeError, RuntimeError):
    """Dtypes that do not fit an op (a float32 input with float64 weights, ...)."""


class ReadOnlyError(ValueError, RuntimeError):
    """An in-place write into a tensor whose memory cannot take it: an ``expand``ed
    tensor (many elements share one memory location) or a read-only ``view`` copy."""


class ArgumentError(ValueError, RuntimeError):
    """An argument value an op does not take (``q`` outside [0, 1], an unknown mode name,
    a negative ``minlength``): PyTorch raises ``RuntimeError`` for these too."""


class DeviceError(TypeError, RuntimeError):
    """Tensors on different devices in one op (``cpu`` and ``cuda:0``): PyTorch raises
    ``RuntimeError``, CuPy a ``TypeError`` that names neither device."""
