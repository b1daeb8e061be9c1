"""``Module``: the base class of every layer and model.

A module owns three ordered registries filled by plain attribute assignment: learnable
``Parameter``s, ``buffers`` (tensors that are state but not learned, such as running means)
and sub-modules. Everything else (``parameters()``, ``state_dict()``, ``train()``, ``to()``)
walks that tree, and names entries with dotted paths (``encoder.0.weight``) as PyTorch does.
"""
from __future__ import annotations

import itertools
from collections import OrderedDict, namedtuple
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

from .. import dtypes
from ..autograd.grad_mode import no_grad
from ..backend import Device, as_device, device_of, to_device
from ..tensor import Tensor, _asarray
from ._hooks import RemovableHandle, call_with_hooks
from .parameter import Parameter

__all__ = ["Module", "RemovableHandle"]

T = TypeVar("T", bound="Module")


class _IncompatibleKeys(namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])):
    def __repr__(self):
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return super().__repr__()

    __str__ = __repr__


class Module:
    """Base class of layers and models: create parts in ``__init__``, define ``forward``.

    >>> import shendu as sd
    >>> class Affine(Module):
    ...     def __init__(self, n):
    ...         super().__init__()
    ...         self.scale = sd.nn.Parameter(sd.ones(n))
    ...         self.register_buffer("shift", sd.zeros(n))
    ...     def forward(self, x):
    ...         return x * self.scale + self.shift
    >>> m = Affine(3)
    >>> m(sd.ones(2, 3)).shape
    (2, 3)
    >>> [name for name, _ in m.named_parameters()], list(m.state_dict())
    (['scale'], ['scale', 'shift'])
    """

    training: bool

    def __init__(self) -> None:
        # Written straight into __dict__: __setattr__ below needs these to exist already.
        d = self.__dict__
        d["training"] = True
        d["_parameters"] = {}
        d["_buffers"] = {}
        d["_non_persistent_buffers_set"] = set()
        d["_modules"] = {}
        d["_forward_pre_hooks"] = {}
        d["_forward_hooks"] = {}
        d["_backward_hooks"] = {}
        d["_hooks_with_kwargs"] = set()

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f'Module [{type(self).__name__}] is missing the required '
                                  '"forward" function; define forward(self, ...) in the subclass')

    # ------------------------------------------------------------------ calling
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        d = self.__dict__
        try:
            hooked = d["_forward_pre_hooks"] or d["_forward_hooks"] or d["_backward_hooks"]
        except KeyError:
            raise AttributeError(f"{type(self).__name__}: Module.__init__() was not called; "
                                 "call super().__init__() first in __init__") from None
        if hooked:
            return call_with_hooks(self, args, kwargs)
        return self.forward(*args, **kwargs)

    def register_forward_pre_hook(self, hook: Callable, *, prepend: bool = False,
                                  with_kwargs: bool = False) -> RemovableHandle:
        """Call ``hook(module, args)`` before ``forward``; a non-None return replaces ``args``.

        With ``with_kwargs=True`` the hook is ``hook(module, args, kwargs)`` and may return a
        new ``(args, kwargs)``. ``prepend=True`` runs it before the hooks already registered.
        """
        return self._add_hook(self._forward_pre_hooks, hook, prepend, with_kwargs)

    def register_forward_hook(self, hook: Callable, *, prepend: bool = False,
                              with_kwargs: bool = False) -> RemovableHandle:
        """Call ``hook(module, args, output)`` after ``forward``; a non-None return replaces
        the output (``hook(module, args, kwargs, output)`` with ``with_kwargs=True``).

        >>> import shendu as sd
        >>> from shendu.nn.containers import Identity
        >>> m = Identity()
        >>> h = m.register_forward_hook(lambda mod, args, out: out * 2)
        >>> m(sd.ones(2))
        tensor([2., 2.])
        >>> h.remove()
        >>> m(sd.ones(2))
        tensor([1., 1.])
        """
        return self._add_hook(self._forward_hooks, hook, prepend, with_kwargs)

    def register_full_backward_hook(self, hook: Callable, *,
                                    prepend: bool = False) -> RemovableHandle:
        """Call ``hook(module, grad_input, grad_output)`` once the gradients with respect to
        the module's tensor inputs are computed; a non-None return (a tuple like
        ``grad_input``) replaces them. ``grad_input`` has one entry per positional tensor
        argument (None where that input does not require grad)."""
        return self._add_hook(self._backward_hooks, hook, prepend, False)

    def _add_hook(self, hooks: dict, hook: Callable, prepend: bool,
                  with_kwargs: bool) -> RemovableHandle:
        handle = RemovableHandle(hooks, self._hooks_with_kwargs)
        hooks[handle.id] = hook
        if prepend:
            items = list(hooks.items())
            hooks.clear()
            hooks.update([items[-1]] + items[:-1])
        if with_kwargs:
            self._hooks_with_kwargs.add(handle.id)
        return handle

    # ------------------------------------------------------------------ registration
    def _check_name(self, kind: str, name: Any, existing: dict) -> None:
        if not isinstance(name, str):
            raise TypeError(f"{kind} name should be a string, got {type(name).__name__}")
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"cannot register {kind} {name!r} before Module.__init__() "
                                 f"was called in {type(self).__name__}")
        if not name or "." in name:
            raise KeyError(f"{kind} name can't be empty or contain '.', got {name!r}")
        if name not in existing and hasattr(self, name):
            raise KeyError(f"{type(self).__name__} already has an attribute {name!r}; "
                           f"cannot register a {kind} under that name")

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Add ``param`` (a ``Parameter``, or None as a placeholder) under ``name``."""
        self._check_name("parameter", name, self._parameters)
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot assign {type(param).__name__} as parameter {name!r} of "
                            f"{type(self).__name__} (shendu.nn.Parameter or None expected)")
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """Add a non-learnable state tensor; ``persistent=False`` keeps it out of state_dict."""
        self._check_name("buffer", name, self._buffers)
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"cannot assign {type(tensor).__name__} as buffer {name!r} of "
                            f"{type(self).__name__} (shendu.Tensor or None expected)")
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers_set.discard(name)
        else:
            self._non_persistent_buffers_set.add(name)

    def add_module(self, name: str, module: Module | None) -> None:
        """Add a child module under ``name`` (same as assigning ``self.name = module``)."""
        self._check_name("module", name, self._modules)
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass "
                            f"(adding {name!r} to {type(self).__name__})")
        self._modules[name] = module

    register_module = add_module

    def __getattr__(self, name: str) -> Any:
        # Reached only when normal lookup fails: registered entries live in the registries.
        d = self.__dict__
        if "_parameters" in d:
            if name in d["_parameters"]:
                return d["_parameters"][name]
            if name in d["_buffers"]:
                return d["_buffers"][name]
            if name in d["_modules"]:
                return d["_modules"][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __setattr__(self, name: str, value: Any) -> None:
        d = self.__dict__
        params = d.get("_parameters")
        if isinstance(value, (Parameter, Module)):
            if params is None:
                raise AttributeError(f"cannot assign {type(value).__name__} {name!r} before "
                                     f"Module.__init__() was called in {type(self).__name__}")
            # keep the slot in its own registry, as PyTorch does: replacing model.fc (or a
            # weight) must not move it to the end of named_modules()/state_dict()
            self._forget(name, keep=d["_parameters" if isinstance(value, Parameter)
                                      else "_modules"])
            if isinstance(value, Parameter):
                self.register_parameter(name, value)
            else:
                self.add_module(name, value)
        elif params is not None and name in params:
            self.register_parameter(name, value)  # None is allowed; a plain tensor is refused
        elif params is not None and name in d["_modules"]:
            self.add_module(name, value)
        elif params is not None and name in d["_buffers"]:
            self.register_buffer(name, value, name not in d["_non_persistent_buffers_set"])
        else:
            object.__setattr__(self, name, value)

    def _forget(self, name: str, keep: dict | None = None) -> None:
        d = self.__dict__
        d.pop(name, None)
        for reg in (d["_parameters"], d["_buffers"], d["_modules"]):
            if reg is not keep:
                reg.pop(name, None)
        d["_non_persistent_buffers_set"].discard(name)

    def __delattr__(self, name: str) -> None:
        d = self.__dict__
        if any(name in d.get(r, ()) for r in ("_parameters", "_buffers", "_modules")):
            self._forget(name)
        else:
            object.__delattr__(self, name)

    def __dir__(self) -> list:
        keys = set(super().__dir__()) | set(self._parameters) | set(self._buffers)
        return sorted(k for k in keys | set(self._modules) if not k[0].isdigit())

    def get_submodule(self, target: str) -> Module:
        """The module at dotted path ``target`` (``''`` is this module)."""
        mod = self
        for part in target.split(".") if target else ():
            child = mod._modules.get(part)
            if child is None:
                raise AttributeError(f"{type(mod).__name__} has no submodule {part!r} "
                                     f"(looking up {target!r})")
            mod = child
        return mod

    # ------------------------------------------------------------------ traversal
    def named_modules(self, memo: set | None = None, prefix: str = "",
                      remove_duplicate: bool = True) -> Iterator[tuple[str, Module]]:
        """Every module in the tree, pre-order, with its dotted name (this one is ``prefix``)."""
        memo = set() if memo is None else memo
        stack = [(prefix, self)]
        while stack:  # explicit stack: deep nets never hit the recursion limit
            name, mod = stack.pop()
            if remove_duplicate:
                if mod in memo:
                    continue
                memo.add(mod)
            yield name, mod
            kids = [(f"{name}.{k}" if name else k, m) for k, m in mod._modules.items()
                    if m is not None]
            stack.extend(reversed(kids))

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple[str, Module]]:
        seen = set()
        for name, m in self._modules.items():
            if m is not None and m not in seen:
                seen.add(m)
                yield name, m

    def children(self) -> Iterator[Module]:
        for _, m in self.named_children():
            yield m

    def _named_members(self, registry: str, prefix: str, recurse: bool,
                       remove_duplicate: bool) -> Iterator[tuple[str, Tensor]]:
        mods = (self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate)
                if recurse else [(prefix, self)])
        seen = set()
        for mod_prefix, mod in mods:
            for k, v in mod.__dict__[registry].items():
                if v is None:
                    continue
                if remove_duplicate:
                    if id(v) in seen:  # a tied weight is listed once, under its first name
                        continue
                    seen.add(id(v))
                yield (f"{mod_prefix}.{k}" if mod_prefix else k), v

    def named_parameters(self, prefix: str = "", recurse: bool = True,
                         remove_duplicate: bool = True) -> Iterator[tuple[str, Parameter]]:
        """``(dotted_name, parameter)`` pairs; a shared parameter appears once."""
        return self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True,
                      remove_duplicate: bool = True) -> Iterator[tuple[str, Tensor]]:
        return self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def num_parameters(self, only_trainable: bool = False) -> int:
        """Number of scalar parameters (shared ones counted once)."""
        return sum(p.numel() for p in self.parameters()
                   if p.requires_grad or not only_trainable)

    def apply(self: T, fn: Callable[[Module], Any]) -> T:
        """Call ``fn`` on every sub-module (children first), then on this module."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    # ------------------------------------------------------------------ modes and grads
    def train(self: T, mode: bool = True) -> T:
        """Set training mode (dropout active, batch statistics used) here and in all children."""
        if not isinstance(mode, bool):
            raise ValueError(f"{type(self).__name__}.train: mode must be a bool, got {mode!r}")
        self.training = mode
        for m in self.children():
            m.train(mode)
        return self

    def eval(self: T) -> T:
        return self.train(False)

    def requires_grad_(self: T, requires_grad: bool = True) -> T:
        """Freeze (False) or unfreeze (True) every parameter."""
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop every parameter's ``.grad`` (or fill it with zeros when ``set_to_none=False``)."""
        for p in self.parameters():
            if p.grad is not None:
                if set_to_none:
                    p.grad = None
                else:
                    with no_grad():
                        p.grad.zero_()

    # ------------------------------------------------------------------ dtype and device
    def to(self: T, *args: Any, **kwargs: Any) -> T:
        """``to(dtype)``, ``to(device)``, ``to(device, dtype)`` or ``to(tensor)``, in place.

        Parameters and buffers keep their identity (only their storage changes), so an
        optimizer built earlier still updates them. Only floating tensors change dtype.

        >>> import shendu as sd
        >>> m = Module()
        >>> m.w = sd.nn.Parameter(sd.ones(2))
        >>> w = m.w
        >>> m.to(sd.float64).w is w, w.dtype
        (True, shendu.float64)
        """
        dtype = kwargs.pop("dtype", None)
        device = kwargs.pop("device", None)
        kwargs.pop("non_blocking", None)
        if kwargs:
            raise TypeError(f"{type(self).__name__}.to: unexpected arguments {sorted(kwargs)}")
        for a in args:
            if isinstance(a, Tensor):
                dtype, device = a.dtype, a.device
            elif isinstance(a, Device) or (isinstance(a, str)
                                           and a.split(":")[0] in ("cpu", "cuda")):
                device = a
            else:
                dtype = a
        if dtype is not None:
            try:
                dtype = dtypes.as_dtype(dtype)
            except TypeError:
                raise TypeError(f"{type(self).__name__}.to: expected a dtype, a device ('cpu', "
                                f"'cuda', 'cuda:N') or a tensor, got {dtype!r}") from None
            if dtype.kind not in "fc":
                raise TypeError(f"{type(self).__name__}.to: only floating-point dtypes are "
                                f"accepted, got {dtype}")
        return self._convert(None if device is None else as_device(device), dtype)

    def _convert(self: T, device: Device | None, dtype: Any) -> T:
        seen = set()
        for m in self.modules():
            for t in itertools.chain(m._parameters.values(), m._buffers.values()):
                if t is None or id(t) in seen:
                    continue
                seen.add(id(t))
                if getattr(t._data, "_lazy", False):  # a lazy placeholder: remember only
                    t._retarget(device, dtype)
                    continue
                for x in (t, t.grad):
                    if x is None:
                        continue
                    arr = x._data
                    if device is not None:
                        arr = to_device(arr, device)
                    if dtype is not None and arr.dtype.kind == "f" and arr.dtype != dtype:
                        arr = arr.astype(dtype)
                    # Rebinding (not writing into) the array leaves graphs that saved the
                    # old one valid, so the version counter is left alone.
                    x._data = arr
        return self

    def float(self: T) -> T:
        return self._convert(None, dtypes.float32)

    def double(self: T) -> T:
        return self._convert(None, dtypes.float64)

    def half(self: T) -> T:
        return self._convert(None, dtypes.float16)

    def cpu(self: T) -> T:
        return self._convert(Device("cpu"), None)

    def cuda(self: T, device: int | str | Device | None = None) -> T:
        if device is None or isinstance(device, int):
            device = Device("cuda", device)
        return self._convert(as_device(device), None)

    # ------------------------------------------------------------------ state dict
    def state_dict(self, destination: dict | None = None, prefix: str = "",
                   keep_vars: bool = False) -> OrderedDict:
        """Parameters and persistent buffers by dotted name, detached (sharing memory)."""
        if destination is None:
            destination = OrderedDict()
        for name, p in self._parameters.items():
            if p is not None:
                destination[prefix + name] = p if keep_vars else p.detach()
        for name, b in self._buffers.items():
            if b is not None and name not in self._non_persistent_buffers_set:
                destination[prefix + name] = b if keep_vars else b.detach()
        for name, m in self._modules.items():
            if m is not None:
                m.state_dict(destination=destination, prefix=f"{prefix}{name}.",
                             keep_vars=keep_vars)
        return destination

    def _load_from_state_dict(self, state_dict: Mapping, prefix: str, missing_keys: list,
                              unexpected_keys: list, error_msgs: list, copies: list) -> None:
        """Check this module's own entries; queue ``(tensor, array)`` copies, record problems.

        Layers override this to rename or convert old checkpoint keys, then call super().
        """
        entries = itertools.chain(self._parameters.items(), self._buffers.items())
        local = {k: v for k, v in entries
                 if v is not None and k not in self._non_persistent_buffers_set}
        for name, t in local.items():
            key = prefix + name
            if key not in state_dict:
                missing_keys.append(key)
                continue
            value = state_dict[key]
            if not isinstance(value, Tensor) and callable(getattr(value, "detach", None)):
                # another framework's tensor, e.g. torch's state_dict(keep_vars=True): its
                # values, without the graph that would make it refuse the conversion (and
                # from host memory: the copy below moves them to the parameter's device)
                value = value.detach()
                value = value.cpu() if callable(getattr(value, "cpu", None)) else value
            if getattr(getattr(value, "_data", None), "_lazy", False):
                if not getattr(t._data, "_lazy", False):  # lazy into lazy: nothing to copy
                    error_msgs.append(f"while copying the parameter named {key!r}: the "
                                      "checkpoint holds an uninitialized placeholder (a lazy "
                                      "module that never ran) but the model's is initialized")
                continue
            try:
                arr = value._data if isinstance(value, Tensor) else _asarray(value)
            except (TypeError, ValueError) as e:
                error_msgs.append(f"while copying the parameter named {key!r}, expected a "
                                  f"tensor or array but got {type(value).__name__} ({e})")
                continue
            if tuple(arr.shape) != tuple(t.shape):
                error_msgs.append(f"size mismatch for {key}: copying a param with shape "
                                  f"{tuple(arr.shape)} from checkpoint, the shape in current "
                                  f"model is {tuple(t.shape)}.")
                continue
            copies.append((t, arr))
        for key in state_dict:
            if key.startswith(prefix):
                rest = key[len(prefix):]
                if rest not in local and self._modules.get(rest.split(".", 1)[0]) is None:
                    unexpected_keys.append(key)

    def load_state_dict(self, state_dict: Mapping, strict: bool = True) -> _IncompatibleKeys:
        """Copy values (tensors or NumPy arrays) into the parameters and buffers, in place.

        Nothing is written unless every entry fits: shape mismatches always raise, and with
        ``strict=True`` so do missing or unexpected keys. Returns
        ``(missing_keys, unexpected_keys)``.

        >>> import shendu as sd
        >>> a, b = Module(), Module()
        >>> a.w, b.w = sd.nn.Parameter(sd.ones(2)), sd.nn.Parameter(sd.zeros(2))
        >>> b.load_state_dict(a.state_dict())
        <All keys matched successfully>
        >>> b.w
        Parameter containing:
        tensor([1., 1.], requires_grad=True)
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"{type(self).__name__}.load_state_dict: expected a mapping of "
                            f"names to tensors, got {type(state_dict).__name__}")
        missing, unexpected, errors, copies = [], [], [], []
        for prefix, mod in self.named_modules(remove_duplicate=False):
            mod._load_from_state_dict(state_dict, f"{prefix}." if prefix else "", missing,
                                      unexpected, errors, copies)
        if strict:
            if unexpected:
                errors.insert(0, "Unexpected key(s) in state_dict: "
                              + ", ".join(f'"{k}"' for k in unexpected) + ".")
            if missing:
                errors.insert(0, "Missing key(s) in state_dict: "
                              + ", ".join(f'"{k}"' for k in missing) + ".")
        if errors:
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}:\n\t"
                               + "\n\t".join(errors))
        with no_grad():
            for t, arr in copies:
                t._data[...] = to_device(arr, device_of(t._data))
                t._version[0] += 1
        return _IncompatibleKeys(missing, unexpected)

    # ------------------------------------------------------------------ printing
    def extra_repr(self) -> str:
        """The text inside this module's parentheses in ``repr`` (override in layers)."""
        return ""

    def _get_name(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        extra = self.extra_repr()
        lines = extra.split("\n") if extra else []
        has_children = bool(self._modules)
        for name, m in self._modules.items():
            lines.append(f"({name}): " + repr(m).replace("\n", "\n  "))
        if not lines:
            return self._get_name() + "()"
        if len(lines) == 1 and not has_children:
            return f"{self._get_name()}({lines[0]})"
        return self._get_name() + "(\n  " + "\n  ".join(lines) + "\n)"
