"""Switching gradient recording on and off: ``no_grad``, ``enable_grad``, ``set_grad_enabled``."""
from __future__ import annotations

import functools


class _State:
    # Read on every op, so a plain class attribute: the cheapest lookup Python has.
    enabled = True


def is_grad_enabled() -> bool:
    return _State.enabled


class _GradMode:
    """Base for the context managers; each also works as a function decorator."""

    mode = True

    def __enter__(self):
        self._prev = _State.enabled
        _State.enabled = self.mode

    def __exit__(self, *exc):
        _State.enabled = self._prev
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self.__class__():
                return fn(*args, **kwargs)

        return wrapper


class no_grad(_GradMode):
    """Run without recording operations for backward (inference, parameter updates).

    >>> import shendu as sd
    >>> x = sd.ones(2, requires_grad=True)
    >>> with sd.no_grad():
    ...     y = x * 2
    >>> y.requires_grad
    False
    """

    mode = False


class enable_grad(_GradMode):
    """Turn recording back on inside a ``no_grad`` block."""

    mode = True


class set_grad_enabled(_GradMode):
    """``set_grad_enabled(False)`` works as a call, a context manager or a decorator."""

    def __init__(self, mode: bool):
        self.mode = bool(mode)
        self._prev = _State.enabled
        _State.enabled = self.mode

    def __enter__(self):
        pass

    def __call__(self, fn):
        _State.enabled = self._prev
        mode = self.mode

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            prev = _State.enabled
            _State.enabled = mode
            try:
                return fn(*args, **kwargs)
            finally:
                _State.enabled = prev

        return wrapper
