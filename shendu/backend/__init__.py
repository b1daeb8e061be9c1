"""Array backends: NumPy on the CPU, CuPy on CUDA GPUs.

Op code never imports numpy directly for computation; it asks for the array module of
its inputs (``xp = get_array_module(x)``) so one implementation serves both devices.
CuPy is imported lazily, the first time a CUDA device is asked for.

Importing this package changes nothing process-wide: ``runtime`` applies the CPU fast
paths' process settings (MKL, OpenMP, threads, the allocator) lazily, the first time they
are needed; ``info()`` reports them and ``trace_paths()`` records which path each fast op
took (``cpu`` and its sibling modules ``maxpool``, ``rnn`` and ``updates`` are the one
place that chooses it).
"""
from __future__ import annotations

import numpy as np

from . import cuda, runtime
from .runtime import info, keep_freed_memory, set_winograd, trace_paths

__all__ = ["Device", "get_array_module", "device_of", "to_device", "as_device", "cuda",
           "info", "trace_paths", "keep_freed_memory", "set_winograd"]


class Device:
    """Where a tensor's memory lives: ``Device('cpu')`` or ``Device('cuda', 0)``."""

    __slots__ = ("type", "index")

    def __init__(self, type: str = "cpu", index: int | None = None):
        if isinstance(type, Device):
            type, index = type.type, type.index
        if ":" in type:
            type, _, idx = type.partition(":")
            index = int(idx)
        if type not in ("cpu", "cuda"):
            raise ValueError(f"device: expected 'cpu' or 'cuda[:N]', got {type!r}")
        if type == "cuda" and index is None:
            index = 0
        self.type = type
        self.index = index

    def __eq__(self, other):
        if isinstance(other, str):
            other = Device(other)
        return isinstance(other, Device) and (self.type, self.index) == (other.type, other.index)

    def __hash__(self):
        return hash((self.type, self.index))

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self):
        if self.index is None:
            return f"device(type='{self.type}')"
        return f"device(type='{self.type}', index={self.index})"


CPU = Device("cpu")


def as_device(device) -> Device:
    if device is None:
        return CPU
    return device if isinstance(device, Device) else Device(device)


def get_array_module(*arrays):
    """NumPy, or CuPy when any of ``arrays`` lives on a GPU."""
    if cuda.ndarray_type is not None:
        for a in arrays:
            if isinstance(a, cuda.ndarray_type):
                return cuda.cupy
    return np


def device_of(array) -> Device:
    if cuda.ndarray_type is not None and isinstance(array, cuda.ndarray_type):
        return Device("cuda", array.device.id)
    return CPU


def to_device(array, device):
    """Copy ``array`` to ``device`` (a no-op when it is already there)."""
    device = as_device(device)
    if device.type == "cpu":
        if cuda.ndarray_type is not None and isinstance(array, cuda.ndarray_type):
            return array.get()
        return array
    cp = cuda.require()
    if isinstance(array, cp.ndarray) and array.device.id == device.index:
        return array
    with cp.cuda.Device(device.index):
        return cp.asarray(array)
