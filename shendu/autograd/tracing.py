"""The hook graph mode (``shendu.jit``) uses to see primitive calls.

Nothing here runs unless a trace is active: ``shendu.jit.trace`` installs a tracer for the
current thread (``_local.tracer``) and, for the duration of the trace, swaps in recording
versions of ``Function.apply`` and ``Module.__call__``; eager code pays nothing.

``leaf(op)`` marks a functional op whose body does work outside ``Function.apply`` (random
masks, running-statistics updates, statistics computed on raw arrays) so that a trace
records the whole call as one node that re-runs the function, instead of freezing what the
body computed from this call's data.
"""
from __future__ import annotations

import functools
import threading

_local = threading.local()
_local.tracer = None


def current_tracer():
    """The tracer recording on this thread, or None."""
    return getattr(_local, "tracer", None)


def leaf(op):
    """Decorator: while tracing, record a call of the decorated function as one ``op`` node
    (its tensor arguments are the node's inputs, the others its attributes). ``op`` is the
    node's op name, or a function of the call's arguments that returns it.

    >>> from shendu.autograd.tracing import leaf
    >>> @leaf("twice")
    ... def twice(x):
    ...     return x * 2
    >>> twice(3)
    6
    """
    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            tracer = getattr(_local, "tracer", None)
            if tracer is None or tracer.paused:
                return fn(*args, **kwargs)
            return tracer.leaf_call(op, fn, args, kwargs)
        wrapper.__wrapped_leaf__ = fn
        return wrapper
    return decorate
