"""``Optimizer``: parameter groups, per-parameter state, ``step``, ``zero_grad``, state dicts.

A subclass declares its defaults and checks, and implements ``_update(p, grad, state,
group)``, which changes the raw array ``p._data`` in place from the raw gradient array.
The base class walks the groups, skips parameters without a gradient and bumps each
updated parameter's version counter, so a graph recorded before the step cannot be
backpropagated through the changed weights by mistake.
"""
from __future__ import annotations

import copy
import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from ..autograd.grad_mode import enable_grad
from ..backend import as_device, get_array_module, to_device
from ..backend import pool as _parallel
from ..backend.updates import effective_grad  # noqa: F401  (importable from here)
from ..tensor import Tensor

__all__ = ["Optimizer", "required"]


class _Required:
    """Marks a hyperparameter with no default (``SGD``'s ``lr`` in old PyTorch)."""

    def __repr__(self):
        return "<required parameter>"


required = _Required()


def _number(owner: str, name: str, value) -> float:
    """``value`` as a float, or a ``TypeError`` naming the optimizer and argument."""
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise TypeError(f"{owner}: {name} must be a number, got a tensor of shape "
                            f"{value.shape}")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(
            value, "__float__"):
        raise TypeError(f"{owner}: {name} must be a number, got {value!r}")
    return float(value)


def check_range(owner: str, name: str, value, lo=0.0, hi=math.inf, lo_open=False,
                hi_open=False) -> None:
    """Raise ``ValueError('<owner>: <name> must be <range>, got <value>')`` when out of range."""
    x = _number(owner, name, value)
    bad_lo = x <= lo if lo_open else x < lo
    bad_hi = x >= hi if hi_open else x > hi
    if bad_lo or bad_hi or math.isnan(x):
        if hi == math.inf:
            want = f"> {lo:g}" if lo_open else f">= {lo:g}"
        else:
            want = f"in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
        raise ValueError(f"{owner}: {name} must be {want}, got {value!r}")


class Optimizer:
    """Base class of all optimizers.

    Args:
        params: an iterable of tensors, of ``(name, tensor)`` pairs, or of dicts each
            holding ``'params'`` and hyperparameters that override ``defaults`` for that
            group (e.g. a smaller ``lr`` for a pretrained backbone).
        defaults: the hyperparameters every group gets unless it sets its own.

    >>> import shendu as sd
    >>> w, b = sd.nn.Parameter(sd.ones(2)), sd.nn.Parameter(sd.zeros(1))
    >>> opt = sd.optim.SGD([{"params": [w]}, {"params": [b], "lr": 0.5}], lr=0.1)
    >>> [g["lr"] for g in opt.param_groups]
    [0.1, 0.5]
    """

    def __init__(self, params: Iterable, defaults: dict[str, Any]):
        self.defaults = dict(defaults)
        self.state: defaultdict = defaultdict(dict)
        self.param_groups: list[dict[str, Any]] = []
        if isinstance(params, Tensor):
            raise TypeError(f"{type(self).__name__}: params must be an iterable of tensors "
                            "or of dicts, got a single Tensor; pass [tensor] or "
                            "model.parameters()")
        if isinstance(params, dict):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError(f"{type(self).__name__}: parameters must be an ordered collection "
                            "(their order keys the state dict), got a set; use a list")
        groups = list(params)
        if not groups:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list; pass "
                             "model.parameters() or a non-empty list of tensors")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    # ------------------------------------------------------------------ groups
    def _check_group(self, group: dict) -> None:
        """Validate one group's hyperparameters (subclasses call ``check_range``)."""
        check_range(type(self).__name__, "lr", group["lr"])

    def add_param_group(self, param_group: dict) -> None:
        """Add a group of parameters, with hyperparameters falling back to ``defaults``.

        Useful when fine-tuning: unfreeze a layer and hand it to the optimizer mid-training.
        """
        name = type(self).__name__
        if not isinstance(param_group, dict):
            raise TypeError(f"{name}.add_param_group: expected a dict, got "
                            f"{type(param_group).__name__}")
        group = dict(param_group)
        params = group.get("params")
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError(f"{name}: parameters must be an ordered collection (their order "
                            "keys the state dict), got a set; use a list")
        params = list(params) if params is not None else []
        names = []
        if params and isinstance(params[0], tuple):
            names = [n for n, _ in params]
            params = [p for _, p in params]
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(f"{name}: parameter {i} of the group is a "
                                f"{type(p).__name__}, expected a Tensor")
            if not p.is_leaf:
                raise ValueError(f"{name}: cannot optimize a non-leaf tensor (parameter {i} "
                                 f"was computed by {p.grad_fn.name}); detach() it or "
                                 "optimize the leaf it came from")
        ids = {id(p) for p in params}
        if len(ids) != len(params):
            raise ValueError(f"{name}: a parameter appears more than once in the group")
        for other in self.param_groups:
            if any(id(p) in ids for p in other["params"]):
                raise ValueError(f"{name}: some parameters appear in more than one parameter "
                                 "group")
        group["params"] = params
        if names:
            group["param_names"] = names
        for key, default in self.defaults.items():
            if default is required and key not in group:
                raise ValueError(f"{name}: parameter group didn't specify a value of "
                                 f"required optimization parameter {key}")
            group.setdefault(key, default)
        for key, value in group.items():  # a one-element tensor lr works as its number
            if key != "params" and isinstance(value, Tensor) and value.numel() == 1:
                group[key] = value.item()
        self._check_group(group)
        self.param_groups.append(group)

    # ------------------------------------------------------------------ stepping
    def _update(self, p: Tensor, grad, state: dict, group: dict) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement _update")

    def step(self, closure: Callable[[], Any] | None = None):
        """Update every parameter that has a gradient; returns ``closure()`` when given.

        ``closure`` re-evaluates the model and returns the loss (it runs with gradients
        enabled, as optimizers that evaluate the loss several times require).
        """
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        state = self.state
        with _parallel.batch():  # the updates are queued, then run on several threads
            for group in self.param_groups:
                for p in group["params"]:
                    g = p.grad
                    if g is None:
                        continue
                    if g._data.shape != p._data.shape:
                        raise RuntimeError(f"{type(self).__name__}.step: a parameter of shape "
                                           f"{p.shape} has a gradient of shape {g.shape}")
                    self._update(p, g._data, state[p], group)
                    p._version[0] += 1
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients: set them to ``None`` (default, frees memory) or zero them."""
        for group in self.param_groups:
            for p in group["params"]:
                g = p.grad
                if g is None:
                    continue
                if set_to_none:
                    p.grad = None
                    continue
                if g.grad_fn is not None:
                    g = p.grad = g.detach()
                if getattr(g._data.flags, "writeable", True):
                    g._data[...] = 0
                    g._version[0] += 1
                else:
                    p.grad = Tensor._wrap(get_array_module(g._data).zeros_like(g._data))

    # ------------------------------------------------------------------ state dicts
    def state_dict(self) -> dict[str, Any]:
        """``{'state': {index: {...}}, 'param_groups': [{..., 'params': [index, ...]}]}``.

        Parameters are numbered in group order, as in PyTorch; state tensors are copies,
        so the dict stays a snapshot when training goes on.
        """
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            packed = {k: copy.deepcopy(v) for k, v in group.items() if k != "params"}
            packed["params"] = [index.setdefault(id(p), len(index))
                                for p in group["params"]]
            groups.append(packed)
        state = {}
        for p, s in self.state.items():
            if id(p) in index and s:
                state[index[id(p)]] = {k: (Tensor._wrap(v._data.copy())
                                           if isinstance(v, Tensor) else copy.deepcopy(v))
                                       for k, v in s.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore hyperparameters and state saved by ``state_dict()`` (same parameter layout)."""
        name = type(self).__name__
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{name}.load_state_dict: the state dict has {len(saved_groups)} "
                             f"parameter groups but the optimizer has {len(self.param_groups)}")
        by_index = {}
        for i, (mine, saved) in enumerate(zip(self.param_groups, saved_groups)):
            if len(mine["params"]) != len(saved["params"]):
                raise ValueError(f"{name}.load_state_dict: parameter group {i} has "
                                 f"{len(saved['params'])} parameters in the state dict but "
                                 f"{len(mine['params'])} in the optimizer")
            by_index.update(zip(saved["params"], mine["params"]))
        new_state: defaultdict = defaultdict(dict)
        for key, values in state_dict["state"].items():
            p = by_index.get(int(key))
            if p is None:
                raise KeyError(f"{name}.load_state_dict: state for parameter {key} which no "
                               "parameter group lists")
            new_state[p] = {k: self._restore(k, v, p) for k, v in values.items()}
        groups = []
        for mine, saved in zip(self.param_groups, saved_groups):
            group = {k: copy.deepcopy(v) for k, v in saved.items() if k != "params"}
            group["params"] = mine["params"]
            groups.append(group)
        self.param_groups = groups
        self.state = new_state

    @staticmethod
    def _restore(key: str, value, p: Tensor):
        """A private copy of a saved state value, on ``p``'s device and (floats) dtype."""
        if key == "step":
            return int(float(value))
        arr = value._data if isinstance(value, Tensor) else value
        if callable(getattr(arr, "detach", None)):  # another framework's tensor (torch's)
            arr = arr.detach()
            arr = np.asarray(arr.cpu() if callable(getattr(arr, "cpu", None)) else arr)
        if not (hasattr(arr, "shape") and hasattr(arr, "dtype")):
            return copy.deepcopy(value)
        arr = to_device(arr, as_device(p.device))
        xp = get_array_module(arr)
        dtype = p.dtype if arr.dtype.kind == "f" else arr.dtype
        return Tensor._wrap(xp.array(arr, dtype=dtype, copy=True, order="C"))

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for key in sorted(k for k in group if k not in ("params", "param_names")):
                lines.append(f"    {key}: {group[key]}")
        lines.append(")")
        return "\n".join(lines)


def zeros_state(p: Tensor, fill: float = 0.0) -> Tensor:
    """A C-contiguous state buffer shaped like ``p`` on its device (``fill`` everywhere)."""
    xp = get_array_module(p._data)
    return Tensor._wrap(xp.full(p._data.shape, fill, p._data.dtype))
