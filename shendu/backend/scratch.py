"""Scratch buffers recycled between calls: fresh large arrays cost page faults, so the
convolutions (im2col patches, the fused kernel's work space) take their temporaries from
here and give them back.
"""
from __future__ import annotations

import threading

from . import get_array_module

# Flat scratch buffers, shared by all layers (a chunk takes a prefix of any buffer that is
# big enough): the resident scratch stays at a few chunks whatever the number of layers.
_FLAT: dict = {}
_FLAT_KEEP = 4
# Padded buffers keep a zero border between uses (each user writes only the interior), so
# they are kept per shape and padding.
_PADDED: dict = {}
_PADDED_KEEP = 2


_LOCK = threading.Lock()  # convolutions may run in several threads at once


def take(xp, size, dtype):
    """A 1-D scratch array of at least ``size`` elements (contents undefined)."""
    with _LOCK:
        free = _FLAT.get((xp.__name__, dtype.str))
        for i, a in enumerate(free or ()):
            if a.size >= size:
                return free.pop(i)
    return xp.empty(size, dtype)


def give(arr):
    """Return a ``take`` buffer; the biggest few are kept for the next calls."""
    with _LOCK:
        free = _FLAT.setdefault((get_array_module(arr).__name__, arr.dtype.str), [])
        free.append(arr)
        free.sort(key=lambda a: a.size)
        if len(free) > _FLAT_KEEP:
            del free[0]


def give_root(view):
    """``give`` the scratch buffer that ``view`` (a reshaped slice of it) lives in."""
    while view.base is not None:
        view = view.base
    give(view)


def take_padded(xp, shape, dtype, pads):
    """A scratch array of ``shape`` whose border (``pads`` wide) is zero."""
    with _LOCK:
        stack = _PADDED.get((xp.__name__, shape, dtype.str, pads))
        if stack:
            return stack.pop()
    return xp.zeros(shape, dtype)


def give_padded(arr, pads):
    with _LOCK:
        key = (get_array_module(arr).__name__, arr.shape, arr.dtype.str, pads)
        stack = _PADDED.setdefault(key, [])
        if len(stack) < _PADDED_KEEP:
            stack.append(arr)


def clear_buffer_pool():
    """Free the recycled scratch buffers (they are kept between steps for speed)."""
    with _LOCK:
        _FLAT.clear()
        _PADDED.clear()
