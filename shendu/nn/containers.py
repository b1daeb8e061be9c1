"""Containers that hold modules or parameters, plus the shape helpers ``Identity``,
``Flatten`` and ``Unflatten``.

Entries are registered under their position (``'0'``, ``'1'``, ...) or their key, so
``state_dict()`` names them ``layers.0.weight`` exactly as PyTorch does.
"""
from __future__ import annotations

import operator
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from ..tensor import Tensor
from .module import Module
from .parameter import Parameter

__all__ = ["Sequential", "ModuleList", "ModuleDict", "ParameterList", "ParameterDict",
           "Identity", "Flatten", "Unflatten"]


def _index(container: Any, idx: Any) -> int:
    """A valid non-negative position for ``idx``, or an IndexError naming the container."""
    idx = operator.index(idx)
    n = len(container)
    if not -n <= idx < n:
        raise IndexError(f"{type(container).__name__}: index {idx} is out of range for "
                         f"{n} entries")
    return idx + n if idx < 0 else idx


class _ModuleSeq(Module):
    """Shared list behaviour of ``Sequential`` and ``ModuleList`` (entries in ``_modules``)."""

    def _renumber(self, modules: list) -> None:
        self._modules.clear()
        for i, m in enumerate(modules):
            self.add_module(str(i), m)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __getitem__(self, idx: int | slice) -> Any:
        if isinstance(idx, slice):
            return type(self)(OrderedDict(list(self._modules.items())[idx])) \
                if isinstance(self, Sequential) else type(self)(list(self._modules.values())[idx])
        return list(self._modules.values())[_index(self, idx)]

    def __setitem__(self, idx: int, module: Module) -> None:
        key = list(self._modules)[_index(self, idx)]
        self.add_module(key, module)

    def __delitem__(self, idx: int | slice) -> None:
        mods = list(self._modules.values())
        del mods[idx if isinstance(idx, slice) else _index(self, idx)]
        self._renumber(mods)  # positions stay 0..n-1, as PyTorch keeps them

    def append(self, module: Module) -> _ModuleSeq:
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules: Iterable[Module]) -> _ModuleSeq:
        for m in modules:
            self.append(m)
        return self

    def insert(self, index: int, module: Module) -> None:
        mods = list(self._modules.values())
        mods.insert(index, module)
        self._renumber(mods)

    def pop(self, idx: int = -1) -> Module:
        m = self[idx]
        del self[idx]
        return m

    def __iadd__(self, modules: Iterable[Module]) -> _ModuleSeq:
        return self.extend(modules)

    def __add__(self, other: _ModuleSeq) -> _ModuleSeq:
        return type(self)(*self, *other) if isinstance(self, Sequential) \
            else type(self)([*self, *other])


class Sequential(_ModuleSeq):
    """Modules applied one after another: ``Sequential(a, b)(x) == b(a(x))``.

    Takes modules as arguments (named ``'0'``, ``'1'``, ...) or one ``OrderedDict`` of names
    to modules. Slicing returns a ``Sequential`` that shares the same modules.

    >>> import shendu as sd
    >>> net = Sequential(Flatten(), Identity())
    >>> net(sd.zeros(2, 3, 4)).shape
    (2, 12)
    >>> len(net), type(net[0]).__name__, type(net[-1:]).__name__
    (2, 'Flatten', 'Sequential')
    """

    def __init__(self, *args: Module):
        super().__init__()
        if len(args) == 1 and isinstance(args[0], OrderedDict):
            for name, m in args[0].items():
                self.add_module(name, m)
        else:
            for i, m in enumerate(args):
                self.add_module(str(i), m)

    def insert(self, index: int, module: Module) -> Sequential:
        super().insert(index, module)
        return self

    def forward(self, input: Any) -> Any:
        for m in self._modules.values():
            input = m(input)
        return input


class ModuleList(_ModuleSeq):
    """A list of modules whose parameters the parent registers (``forward`` is yours).

    >>> layers = ModuleList([Identity(), Identity()])
    >>> layers.append(Flatten())
    ModuleList(
      (0): Identity()
      (1): Identity()
      (2): Flatten(start_dim=1, end_dim=-1)
    )
    >>> len(layers[1:])
    2
    """

    def __init__(self, modules: Iterable[Module] | None = None):
        super().__init__()
        if modules is not None:
            self.extend(modules)


class ModuleDict(Module):
    """An ordered dict of modules, registered under their keys.

    >>> d = ModuleDict({"flat": Flatten(), "id": Identity()})
    >>> list(d.keys()), "id" in d
    (['flat', 'id'], True)
    """

    def __init__(self, modules: Mapping[str, Module] | Iterable | None = None):
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Module:
        if key not in self._modules:
            raise KeyError(f"ModuleDict has no key {key!r}; keys are {list(self._modules)}")
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        self.add_module(key, module)

    def __delitem__(self, key: str) -> None:
        del self._modules[key]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __contains__(self, key: object) -> bool:
        return key in self._modules

    def keys(self) -> Iterable[str]:
        return self._modules.keys()

    def items(self) -> Iterable[tuple[str, Module]]:
        return self._modules.items()

    def values(self) -> Iterable[Module]:
        return self._modules.values()

    def pop(self, key: str) -> Module:
        m = self[key]
        del self._modules[key]
        return m

    def clear(self) -> None:
        self._modules.clear()

    def update(self, modules: Mapping[str, Module] | Iterable) -> None:
        pairs = modules.items() if isinstance(modules, Mapping) else modules
        for key, m in pairs:
            self[key] = m


def _as_param(value: Any) -> Any:
    # Plain tensors become Parameters (as in PyTorch); other objects are refused by Module.
    if isinstance(value, Tensor) and not isinstance(value, Parameter):
        return Parameter(value, requires_grad=value.requires_grad or value.is_floating_point())
    return value


def _describe(p: Any) -> str:
    if not isinstance(p, Tensor):
        return f"Object of type: {type(p).__name__}"
    size = "x".join(map(str, p.shape))
    dev = "" if p.device.type == "cpu" else f" ({p.device})"
    return f"Parameter containing: [shendu.{p.dtype} of size {size}{dev}]"


class ParameterList(Module):
    """A list of parameters (plain tensors are wrapped in ``Parameter``).

    >>> import shendu as sd
    >>> ps = ParameterList([sd.zeros(2), sd.zeros(3, 4)])
    >>> len(ps), ps[1].shape
    (2, (3, 4))
    >>> ps
    ParameterList(
        (0): Parameter containing: [shendu.float32 of size 2]
        (1): Parameter containing: [shendu.float32 of size 3x4]
    )
    """

    def __init__(self, values: Iterable[Tensor] | None = None):
        super().__init__()
        if values is not None:
            self.extend(values)

    def __len__(self) -> int:
        return len(self._parameters)

    def __iter__(self) -> Iterator[Parameter]:
        return iter(self._parameters.values())

    def __getitem__(self, idx: int | slice) -> Any:
        if isinstance(idx, slice):
            return ParameterList(list(self._parameters.values())[idx])
        return self._parameters[str(_index(self, idx))]

    def __setitem__(self, idx: int, value: Tensor) -> None:
        self.register_parameter(str(_index(self, idx)), _as_param(value))

    def append(self, value: Tensor) -> ParameterList:
        self.register_parameter(str(len(self)), _as_param(value))
        return self

    def extend(self, values: Iterable[Tensor]) -> ParameterList:
        for v in values:
            self.append(v)
        return self

    def __iadd__(self, values: Iterable[Tensor]) -> ParameterList:
        return self.extend(values)

    def extra_repr(self) -> str:
        return "\n".join(f"({k}): {_describe(p)}" for k, p in self._parameters.items())

    def __repr__(self) -> str:
        # Parameters are listed like children, with the 4-space indent PyTorch uses here.
        body = self.extra_repr()
        return f"{self._get_name()}(\n    " + body.replace("\n", "\n    ") + "\n)" if body \
            else f"{self._get_name()}()"


class ParameterDict(Module):
    """An ordered dict of parameters keyed by name (plain tensors become ``Parameter``).

    >>> import shendu as sd
    >>> pd = ParameterDict({"scale": sd.ones(3)})
    >>> list(pd.keys()), [n for n, _ in pd.named_parameters()]
    (['scale'], ['scale'])
    """

    def __init__(self, parameters: Mapping[str, Tensor] | Iterable | None = None):
        super().__init__()
        if parameters is not None:
            self.update(parameters)

    def __getitem__(self, key: str) -> Parameter:
        if key not in self._parameters:
            raise KeyError(f"ParameterDict has no key {key!r}; keys are "
                           f"{list(self._parameters)}")
        return self._parameters[key]

    def __setitem__(self, key: str, value: Tensor) -> None:
        self.register_parameter(key, _as_param(value))

    def __delitem__(self, key: str) -> None:
        del self._parameters[key]

    def __len__(self) -> int:
        return len(self._parameters)

    def __iter__(self) -> Iterator[str]:
        return iter(self._parameters)

    def __contains__(self, key: object) -> bool:
        return key in self._parameters

    def keys(self) -> Iterable[str]:
        return self._parameters.keys()

    def items(self) -> Iterable[tuple[str, Parameter]]:
        return self._parameters.items()

    def values(self) -> Iterable[Parameter]:
        return self._parameters.values()

    def pop(self, key: str) -> Parameter:
        p = self[key]
        del self._parameters[key]
        return p

    def update(self, parameters: Mapping[str, Tensor] | Iterable) -> None:
        pairs = parameters.items() if isinstance(parameters, Mapping) else parameters
        for key, p in pairs:
            self[key] = p

    extra_repr = ParameterList.extra_repr
    __repr__ = ParameterList.__repr__


class Identity(Module):
    """Returns its input unchanged (a placeholder, e.g. for a removed classifier head).

    Any constructor arguments are accepted and ignored, as in PyTorch.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__()

    def forward(self, input: Any) -> Any:
        return input


class Flatten(Module):
    """Flattens dims ``start_dim..end_dim`` into one (by default all but the batch dim).

    >>> import shendu as sd
    >>> Flatten()(sd.zeros(2, 3, 4, 5)).shape
    (2, 60)
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, input: Tensor) -> Tensor:
        return input.flatten(self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Expands dim ``dim`` into ``unflattened_size`` (one entry may be -1).

    >>> import shendu as sd
    >>> Unflatten(1, (3, 4))(sd.zeros(2, 12)).shape
    (2, 3, 4)
    """

    def __init__(self, dim: int, unflattened_size: tuple[int, ...] | list[int]):
        super().__init__()
        if not isinstance(unflattened_size, (tuple, list)) or not all(
                isinstance(s, int) for s in unflattened_size):
            raise TypeError(f"Unflatten: unflattened_size must be a tuple of ints, got "
                            f"{unflattened_size!r}")
        self.dim, self.unflattened_size = dim, tuple(unflattened_size)

    def forward(self, input: Tensor) -> Tensor:
        return input.unflatten(self.dim, self.unflattened_size)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"
