"""``summary``: a Keras-style table of a model's layers, output shapes and parameter counts.

It runs one forward pass on random input with a forward hook on every layer that computes
something itself (leaf modules, and modules holding parameters of their own), so the shapes
are the real ones this model produces, not ones inferred from its constructor arguments.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from .. import creation, dtypes
from ..autograd.grad_mode import no_grad
from ..tensor import Tensor
from .module import Module

__all__ = ["summary", "ModelSummary", "SummaryRow"]

_MB = 1024.0 ** 2


class SummaryRow(NamedTuple):
    """One layer call: dotted name, class name, output shape(s), own parameter count."""

    name: str
    layer_type: str
    output_shape: Any  # a shape tuple, or a list/dict of them for several outputs
    num_params: int
    output_bytes: int


class ModelSummary:
    """The result of ``summary()``: ``rows`` plus totals; ``str()`` gives the table."""

    def __init__(self, rows: list[SummaryRow], total_params: int, trainable_params: int,
                 input_bytes: int, param_bytes: int):
        self.rows = rows
        self.total_params = total_params
        self.trainable_params = trainable_params
        self.non_trainable_params = total_params - trainable_params
        self.input_bytes = input_bytes
        self.activation_bytes = sum(r.output_bytes for r in rows)
        self.param_bytes = param_bytes

    @property
    def total_mb(self) -> float:
        """Inputs + forward activations + parameters, in MiB (an estimate for one pass)."""
        return (self.input_bytes + self.activation_bytes + self.param_bytes) / _MB

    def __str__(self) -> str:
        header = ("Layer (type)", "Output Shape", "Param #")
        body = [(f"{r.name} ({r.layer_type})" if r.name else r.layer_type,
                 _format_shape(r.output_shape), f"{r.num_params:,}") for r in self.rows]
        w = [max(len(row[i]) for row in [header, *body]) for i in range(3)]
        width = w[0] + w[1] + w[2] + 6

        def line(row):
            return f"{row[0]:<{w[0]}}   {row[1]:<{w[1]}}   {row[2]:>{w[2]}}"

        out = [line(header), "=" * width, *map(line, body), "=" * width,
               f"Total params: {self.total_params:,}",
               f"Trainable params: {self.trainable_params:,}",
               f"Non-trainable params: {self.non_trainable_params:,}",
               "-" * width,
               f"Input size (MB): {self.input_bytes / _MB:.2f}",
               f"Forward activations (MB): {self.activation_bytes / _MB:.2f}",
               f"Params size (MB): {self.param_bytes / _MB:.2f}",
               f"Estimated total size (MB): {self.total_mb:.2f}",
               "-" * width]
        return "\n".join(out)

    def __repr__(self) -> str:  # short: summary() has already printed the table
        return (f"ModelSummary({len(self.rows)} layers, total_params={self.total_params:,}, "
                f"trainable_params={self.trainable_params:,})")


def _format_shape(shape: Any) -> str:
    if isinstance(shape, tuple):
        return str(list(shape))
    if isinstance(shape, list):
        return ", ".join(_format_shape(s) for s in shape)
    if isinstance(shape, dict):
        return ", ".join(f"{k}: {_format_shape(s)}" for k, s in shape.items())
    return "-"


def _shape_and_bytes(out: Any) -> tuple[Any, int]:
    """The shape(s) of a module's output, and how many bytes those tensors occupy."""
    if isinstance(out, Tensor):
        return tuple(out.shape), out.nbytes
    if isinstance(out, (list, tuple)):
        pairs = [_shape_and_bytes(o) for o in out]
        return [s for s, _ in pairs], sum(b for _, b in pairs)
    if isinstance(out, dict):
        pairs = {k: _shape_and_bytes(o) for k, o in out.items()}
        return {k: s for k, (s, _) in pairs.items()}, sum(b for _, b in pairs.values())
    return None, 0


def _is_shape(size: Any) -> bool:
    return isinstance(size, Sequence) and all(isinstance(s, int) for s in size)


def summary(model: Module, input_size: Sequence[int] | Sequence[Sequence[int]],
            dtype: Any = None, device: Any = None, batch_size: int | None = 1,
            verbose: bool = True) -> ModelSummary:
    """Run ``model`` once on random input and tabulate each layer's output and parameters.

    Args:
        model: the module to describe; its train/eval flags are restored afterwards.
        input_size: the shape of one example, without the batch dim (``(3, 32, 32)``), or a
            list of such shapes for a model taking several inputs.
        dtype: the input dtype (default float32), or one per input; integer inputs are zeros.
        device: where the input is made; defaults to the device of the model's parameters.
        batch_size: prepended to every input shape; None uses ``input_size`` as given.
        verbose: print the table (as Keras' ``model.summary()`` does); False only returns it.

    The forward pass runs under ``no_grad`` in eval mode. ``str()`` of the result is the
    table; ``rows`` and the totals are there for code.

    >>> import shendu as sd
    >>> from shendu.nn.containers import Flatten, Sequential
    >>> s = summary(Sequential(Flatten()), (3, 4), batch_size=2, verbose=False)
    >>> s.rows[0].output_shape, s.total_params
    ((2, 12), 0)
    """
    sizes = [tuple(input_size)] if _is_shape(input_size) else [tuple(s) for s in input_size]
    if not sizes or not all(_is_shape(s) for s in sizes):
        raise TypeError(f"summary: input_size must be a shape tuple or a list of them, got "
                        f"{input_size!r}")
    kinds = list(dtype) if isinstance(dtype, (list, tuple)) else [dtype] * len(sizes)
    if len(kinds) != len(sizes):
        raise ValueError(f"summary: {len(sizes)} input sizes but {len(kinds)} dtypes")
    if device is None:
        first = next(model.parameters(), None)
        device = first.device if first is not None else "cpu"
    inputs = []
    for size, dt in zip(sizes, kinds):
        shape = size if batch_size is None else (batch_size, *size)
        dt = dtypes.get_default_dtype() if dt is None else dtypes.as_dtype(dt)
        make = creation.randn if dt.kind == "f" else creation.zeros
        inputs.append(make(*shape, dtype=dt, device=device))

    rows: list = []
    handles = []

    def watch(name: str, mod: Module) -> None:
        own = sum(p.numel() for p in mod.parameters(recurse=False))
        slots: list = []  # a stack, so nested or repeated calls of one module stay in order

        def before(module, args):
            slots.append(len(rows))
            rows.append(None)

        def after(module, args, out):
            shape, nbytes = _shape_and_bytes(out)
            rows[slots.pop()] = SummaryRow(name, type(module).__name__, shape, own, nbytes)

        handles.append(mod.register_forward_pre_hook(before))
        handles.append(mod.register_forward_hook(after))

    modes = [(m, m.training) for m in model.modules()]
    try:
        for name, mod in model.named_modules():
            if not mod._modules or next(mod.parameters(recurse=False), None) is not None:
                watch(name, mod)
        model.eval()
        with no_grad():
            model(*inputs)
    finally:
        for h in handles:
            h.remove()
        for m, mode in modes:
            m.training = mode
    params = list(model.parameters())
    result = ModelSummary(
        [r for r in rows if r is not None],
        total_params=sum(p.numel() for p in params),
        trainable_params=sum(p.numel() for p in params if p.requires_grad),
        input_bytes=sum(x.nbytes for x in inputs),
        param_bytes=sum(p.nbytes for p in params))
    if verbose:
        print(result)
    return result
