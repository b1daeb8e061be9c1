"""Switching gradient recording on and off: ``no_grad``, ``enable_grad``, ``set_grad_enabled``."""
from __future__ import annotations

import functools


class _State:
    # Read on every op, so a plain class attribute: the cheapest lookup Python has.
    enabled = True


def is_grad_enabled() -> bool:
    return _State.enabled


def _with_mode(fn, mode: bool):
    """``fn`` run with recording set to ``mode`` (the decorator form of every grad mode)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        prev = _State.enabled
        _State.enabled = mode
        try:
            return fn(*args, **kwargs)
        finally:
            _State.enabled = prev

    return wrapper


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
        return _with_mode(fn, self.mode)


class no_grad(_GradMode):
    """Run without recording operations for backward (inference, parameter updates).
    Also a decorator, with or without parentheses (``@sd.no_grad`` or ``@sd.no_grad()``).

    >>> import shendu as sd
    >>> x = sd.ones(2, requires_grad=True)
    >>> with sd.no_grad():
    ...     y = x * 2
    >>> y.requires_grad
    False
    """

    mode = False

    def __new__(cls, func=None):
        self = super().__new__(cls)
        # bare ``@no_grad`` passes the function itself: decorate it straight away
        return self(func) if callable(func) else self

    def __init__(self, func=None):
        pass


class inference_mode(_GradMode):
    """``inference_mode()`` (or ``inference_mode(False)``): like ``no_grad`` for inference.
    A context manager and a decorator, with or without parentheses. shendu has no separate
    inference tensors, so this is ``no_grad`` under PyTorch's name.

    >>> import shendu as sd
    >>> @sd.inference_mode
    ... def predict(x):
    ...     return x * 2
    >>> predict(sd.ones(2, requires_grad=True)).requires_grad
    False
    """

    def __new__(cls, mode=True):
        self = super().__new__(cls)
        if callable(mode):
            self.mode = False
            return self(mode)
        return self

    def __init__(self, mode=True):
        if not callable(mode):
            self.mode = not bool(mode)

    def __call__(self, fn):
        return _with_mode(fn, self.mode)


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
        return _with_mode(fn, self.mode)
