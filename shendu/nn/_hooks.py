"""Module hooks: removable handles, the hooked call path, and full backward hooks.

Kept apart from ``module.py`` so that file stays readable and the hook-free path of
``Module.__call__`` stays a few lines.
A backward hook works by routing the module's inputs and outputs through an identity op:
its backward sees the gradients flowing out of the module (``grad_output``) and, later in
the same sweep, those flowing into its inputs (``grad_input``).
"""
from __future__ import annotations

import itertools
from typing import Any

from ..autograd.function import Function
from ..autograd.grad_mode import _State
from ..tensor import Tensor

_hook_ids = itertools.count()


class RemovableHandle:
    """Returned by ``register_*_hook``; ``remove()`` (or leaving a ``with`` block) unregisters."""

    def __init__(self, hooks: dict, extra: set | None = None):
        self.id = next(_hook_ids)
        self._hooks, self._extra = hooks, extra

    def remove(self) -> None:
        self._hooks.pop(self.id, None)
        if self._extra is not None:
            self._extra.discard(self.id)

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


def call_with_hooks(module, args: tuple, kwargs: dict) -> Any:
    """Run ``module``: forward pre-hooks, ``forward``, then forward hooks (attaching the
    backward hooks to the graph on the way)."""
    with_kwargs = module._hooks_with_kwargs
    for hid, hook in list(module._forward_pre_hooks.items()):
        if hid in with_kwargs:
            res = hook(module, args, kwargs)
            if res is not None:
                if not (isinstance(res, tuple) and len(res) == 2):
                    raise RuntimeError(f"{type(module).__name__}: a forward pre-hook "
                                       "registered with_kwargs=True must return None or "
                                       f"(args, kwargs), got {type(res).__name__}")
                args, kwargs = res
        else:
            res = hook(module, args)
            if res is not None:
                args = res if isinstance(res, tuple) else (res,)
    bw = _BackwardHookCall(module, args) if module._backward_hooks and _State.enabled else None
    if bw is not None:
        args = bw.wrap_inputs(args)
    out = module.forward(*args, **kwargs)
    for hid, hook in list(module._forward_hooks.items()):
        res = hook(module, args, kwargs, out) if hid in with_kwargs else hook(module, args, out)
        if res is not None:
            out = res
    return out if bw is None else bw.wrap_outputs(out)


class _BackwardHookFn(Function):
    """Identity on several tensors whose backward hands the gradients to ``callback``."""

    @staticmethod
    def forward(ctx, *arrays, callback):
        ctx.callback = callback
        return arrays if len(arrays) > 1 else arrays[0]

    @staticmethod
    def backward(ctx, *grads):
        out = ctx.callback(grads)
        return tuple(out) if len(out) > 1 else out[0]


class _BackwardHookCall:
    """One hooked call: grad_output is caught on the outputs, hooks run on the inputs' grads."""

    def __init__(self, module, args: tuple):
        self.module = module
        self.tensor_pos = [i for i, a in enumerate(args) if isinstance(a, Tensor)]
        self.wrapped = [i for i in self.tensor_pos if args[i].requires_grad]
        self.grad_output = None

    def wrap_inputs(self, args: tuple) -> tuple:
        if not self.wrapped:
            return args
        new = _BackwardHookFn.apply(*[args[i] for i in self.wrapped], callback=self._on_input)
        new = new if isinstance(new, tuple) else (new,)
        args = list(args)
        for i, t in zip(self.wrapped, new):
            t._version = args[i]._version  # same memory: in-place writes must show on both
            args[i] = t
        return tuple(args)

    def wrap_outputs(self, out: Any) -> Any:
        outs = out if isinstance(out, tuple) else (out,)
        idx = [i for i, o in enumerate(outs) if isinstance(o, Tensor) and o.requires_grad]
        if not idx:
            return out
        new = _BackwardHookFn.apply(*[outs[i] for i in idx], callback=self._on_output)
        new = new if isinstance(new, tuple) else (new,)
        outs = list(outs)
        for i, t in zip(idx, new):
            t._version = outs[i]._version
            outs[i] = t
        return tuple(outs) if isinstance(out, tuple) else outs[0]

    def _on_output(self, grads: tuple) -> tuple:
        self.grad_output = tuple(Tensor._wrap(g) for g in grads)
        if not self.wrapped:  # no input needs a gradient: the hooks still see grad_output
            self._run_hooks((None,) * len(self.tensor_pos))
        return grads

    def _on_input(self, grads: tuple) -> tuple:
        by_pos = dict(zip(self.wrapped, grads))
        grad_input = tuple(Tensor._wrap(by_pos[i]) if i in by_pos else None
                           for i in self.tensor_pos)
        grad_input = self._run_hooks(grad_input)
        out = [grad_input[self.tensor_pos.index(i)] for i in self.wrapped]
        return tuple(g._data if isinstance(g, Tensor) else g for g in out)

    def _run_hooks(self, grad_input: tuple) -> tuple:
        for hook in list(self.module._backward_hooks.values()):
            res = hook(self.module, grad_input, self.grad_output)
            if res is not None:
                if not isinstance(res, (tuple, list)) or len(res) != len(grad_input):
                    raise RuntimeError(f"{type(self.module).__name__}: a backward hook "
                                       f"returned {type(res).__name__}; expected None or a "
                                       f"tuple of {len(grad_input)} gradients")
                grad_input = tuple(res)
        return grad_input
