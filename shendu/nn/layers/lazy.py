"""Lazy layers: ``LazyLinear``, ``LazyConv1d/2d``, ``LazyConvTranspose1d/2d`` and
``LazyBatchNorm1d/2d/3d`` infer their input size from the first batch they see.

Before that first call their parameters are ``UninitializedParameter`` placeholders (any use
raises a clear error). The first forward call creates them *in place* with the right shape,
initialises them as the regular layer would, and turns the module into that regular class
(``LazyLinear`` becomes ``Linear``). Because the parameter objects are kept, an optimizer
built before the first call updates them afterwards, as PyTorch documents. Loading a state
dict into a lazy module also creates the parameters, from the checkpoint's shapes.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from ... import creation, dtypes
from ...autograd.grad_mode import no_grad
from ...tensor import Tensor
from ..module import Module
from ..parameter import UninitializedBuffer, UninitializedParameter, is_lazy
from .conv import Conv1d, Conv2d, ConvTranspose1d, ConvTranspose2d
from .linear import Linear
from .norm import BatchNorm1d, BatchNorm2d, BatchNorm3d

__all__ = ["LazyModuleMixin", "LazyLinear", "LazyConv1d", "LazyConv2d", "LazyConvTranspose1d",
           "LazyConvTranspose2d", "LazyBatchNorm1d", "LazyBatchNorm2d", "LazyBatchNorm3d"]


def _infer_parameters(module: Module, args: tuple) -> None:
    """Forward pre-hook: create the parameters from the first batch, then become regular."""
    module.initialize_parameters(*args)
    module._finish_lazy()


class LazyModuleMixin:
    """Mixin for modules whose parameter shapes come from their first input.

    As in PyTorch, a subclass creates its parameters as ``UninitializedParameter``
    (buffers as ``UninitializedBuffer``) in ``__init__`` and overrides
    ``initialize_parameters(input)`` to ``materialize`` them; ``cls_to_become`` (optional)
    is the class the module turns into afterwards. The built-in lazy layers instead
    implement ``_lazy_shapes(input)`` (name -> shape) and ``_set_sizes(shapes)``.

    >>> import shendu as sd
    >>> class LazyScale(LazyModuleMixin, Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.weight = UninitializedParameter()
    ...     def initialize_parameters(self, x):
    ...         if self.has_uninitialized_params():
    ...             with sd.no_grad():
    ...                 self.weight.materialize((x.shape[-1],))
    ...                 self.weight.fill_(2.0)
    ...     def forward(self, x):
    ...         return x * self.weight
    >>> m = LazyScale()
    >>> m(sd.ones(1, 3)).tolist(), m.weight.shape
    ([[2.0, 2.0, 2.0]], (3,))
    """

    cls_to_become: type | None = None

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._lazy_hook = self.register_forward_pre_hook(_infer_parameters)

    def has_uninitialized_params(self) -> bool:
        """True while any parameter or buffer of this module is still a placeholder."""
        return any(is_lazy(t) for t in (*self._parameters.values(), *self._buffers.values()))

    def _lazy_tensors(self) -> dict[str, Tensor]:
        return {k: t for k, t in (*self._parameters.items(), *self._buffers.items())
                if is_lazy(t)}

    def initialize_parameters(self, *args, **kwargs) -> None:
        """Create every placeholder with the shape ``args`` imply and initialise it."""
        if not args or not isinstance(args[0], Tensor):
            raise TypeError(f"{type(self).__name__}: the first call must pass an input tensor "
                            "to infer the parameter shapes from")
        shapes = self._lazy_shapes(args[0])
        self._set_sizes(shapes)
        self._materialize({k: shapes[k] for k in self._lazy_tensors()})

    def _materialize(self, shapes: Mapping[str, tuple]) -> None:
        """Create the placeholders named in ``shapes``; fresh values from
        ``reset_parameters`` for them, keeping any that were already materialized."""
        lazy = self._lazy_tensors()
        with no_grad():
            kept = {k: t._data.copy() for k, t in (*self._parameters.items(),
                                                    *self._buffers.items())
                    if t is not None and k not in lazy}
            for name in shapes:
                lazy[name].materialize(shapes[name])
            reset = getattr(self, "reset_parameters", None)
            if reset is not None:
                reset()  # the built-in lazy layers skip this while placeholders remain
            for name, arr in kept.items():  # reset_parameters may rewrite these too
                t = self._parameters.get(name)
                t = self._buffers[name] if t is None else t
                t._data[...] = arr

    def _finish_lazy(self) -> None:
        """Turn into ``cls_to_become`` once nothing is a placeholder any more."""
        if self.has_uninitialized_params():
            raise RuntimeError(f"{type(self).__name__}: some parameters are still "
                               f"uninitialized: {sorted(self._lazy_tensors())}")
        self._lazy_hook.remove()
        del self._lazy_hook
        if self.cls_to_become is not None:
            self.__class__ = self.cls_to_become

    def _load_from_state_dict(self, state_dict: Mapping, prefix: str, missing_keys: list,
                              unexpected_keys: list, error_msgs: list, copies: list) -> None:
        # Placeholders take the checkpoint's shapes first, so the ordinary load can fill them.
        lazy = self._lazy_tensors()
        shapes = {}
        for name in lazy:
            value = state_dict.get(prefix + name)
            if value is not None and not is_lazy(value):
                shapes[name] = tuple(value.shape)
        if shapes:
            self._set_sizes(shapes)
            self._materialize(shapes)
        super()._load_from_state_dict(state_dict, prefix, missing_keys, unexpected_keys,
                                      error_msgs, copies)
        if shapes and not self.has_uninitialized_params():
            self._finish_lazy()

    def _lazy_shapes(self, input: Tensor) -> dict[str, tuple]:
        raise NotImplementedError(f"{type(self).__name__}: override initialize_parameters "
                                  "(or _lazy_shapes) to say which shapes the input implies")

    def _set_sizes(self, shapes: Mapping[str, tuple]) -> None:
        """Size attributes (``in_features``, ...) from the parameter shapes; none here."""


def _uninit_params(layer: Module, bias: bool, device, dtype) -> None:
    layer.weight = UninitializedParameter(device=device, dtype=dtype)
    if bias:
        layer.bias = UninitializedParameter(device=device, dtype=dtype)


class LazyLinear(LazyModuleMixin, Linear):
    """``Linear`` whose ``in_features`` is the last dimension of its first input.

    Args:
        out_features: size of each output sample's last dimension.
        bias, device, dtype: as ``Linear``.

    >>> import shendu as sd
    >>> layer = sd.nn.LazyLinear(4)
    >>> layer.weight
    <UninitializedParameter>
    >>> layer(sd.ones(2, 3)).shape
    (2, 4)
    >>> layer
    Linear(in_features=3, out_features=4, bias=True)
    """

    cls_to_become = Linear

    def __init__(self, out_features: int, bias: bool = True, device=None, dtype=None) -> None:
        super().__init__(0, 0, False)
        self.out_features = out_features
        _uninit_params(self, bias, device, dtype)

    def reset_parameters(self) -> None:
        if not self.has_uninitialized_params() and self.in_features != 0:
            super().reset_parameters()

    def _lazy_shapes(self, input: Tensor) -> dict[str, tuple]:
        if input.ndim == 0:
            raise ValueError(f"{type(self).__name__}: expected an input with a feature "
                             "dimension, got a 0-d tensor")
        n = input.shape[-1]
        return {"weight": (self.out_features, n), "bias": (self.out_features,)}

    def _set_sizes(self, shapes: Mapping[str, tuple]) -> None:
        if "weight" in shapes:
            self.in_features = shapes["weight"][1]


class _LazyConvMixin(LazyModuleMixin):
    def _init_lazy_conv(self, out_channels: int, bias: bool, device, dtype) -> None:
        self.out_channels = out_channels
        _uninit_params(self, bias, device, dtype)

    def reset_parameters(self) -> None:
        if not self.has_uninitialized_params() and self.in_channels != 0:
            super().reset_parameters()

    def _lazy_shapes(self, input: Tensor) -> dict[str, tuple]:
        n = self._nd
        if input.ndim not in (n + 1, n + 2):
            raise ValueError(f"{type(self).__name__}: expected a {n + 2}-D batched or "
                             f"{n + 1}-D unbatched input, got shape {input.shape}")
        c = input.shape[0] if input.ndim == n + 1 else input.shape[1]
        if c % self.groups:
            raise ValueError(f"{type(self).__name__}: the input's {c} channels are not "
                             f"divisible by groups={self.groups} (input shape {input.shape})")
        g = self.groups
        w = ((c, self.out_channels // g) if self._transposed
             else (self.out_channels, c // g)) + self.kernel_size
        return {"weight": w, "bias": (self.out_channels,)}

    def _set_sizes(self, shapes: Mapping[str, tuple]) -> None:
        if "weight" in shapes:
            w = shapes["weight"]
            self.in_channels = w[0] if self._transposed else w[1] * self.groups


class LazyConv1d(_LazyConvMixin, Conv1d):
    """``Conv1d`` whose ``in_channels`` comes from its first input; other arguments as
    ``Conv1d``.

    >>> import shendu as sd
    >>> sd.nn.LazyConv1d(8, 3)(sd.zeros(2, 4, 10)).shape
    (2, 8, 8)
    """

    cls_to_become = Conv1d

    def __init__(self, out_channels: int, kernel_size: int | Sequence[int],
                 stride: int | Sequence[int] = 1, padding: str | int | Sequence[int] = 0,
                 dilation: int | Sequence[int] = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", device=None, dtype=None) -> None:
        super().__init__(0, 0, kernel_size, stride, padding, dilation, groups, False,
                         padding_mode)
        self._init_lazy_conv(out_channels, bias, device, dtype)


class LazyConv2d(_LazyConvMixin, Conv2d):
    """``Conv2d`` whose ``in_channels`` comes from its first input; other arguments as
    ``Conv2d``.

    >>> import shendu as sd
    >>> conv = sd.nn.LazyConv2d(6, kernel_size=5, padding=2)
    >>> conv(sd.zeros(1, 1, 28, 28)).shape
    (1, 6, 28, 28)
    >>> conv.weight.shape
    (6, 1, 5, 5)
    """

    cls_to_become = Conv2d

    def __init__(self, out_channels: int, kernel_size: int | Sequence[int],
                 stride: int | Sequence[int] = 1, padding: str | int | Sequence[int] = 0,
                 dilation: int | Sequence[int] = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", device=None, dtype=None) -> None:
        super().__init__(0, 0, kernel_size, stride, padding, dilation, groups, False,
                         padding_mode)
        self._init_lazy_conv(out_channels, bias, device, dtype)


class LazyConvTranspose1d(_LazyConvMixin, ConvTranspose1d):
    """``ConvTranspose1d`` whose ``in_channels`` comes from its first input.

    >>> import shendu as sd
    >>> sd.nn.LazyConvTranspose1d(3, 4, stride=2, padding=1)(sd.zeros(1, 2, 5)).shape
    (1, 3, 10)
    """

    cls_to_become = ConvTranspose1d

    def __init__(self, out_channels: int, kernel_size: int | Sequence[int],
                 stride: int | Sequence[int] = 1, padding: int | Sequence[int] = 0,
                 output_padding: int | Sequence[int] = 0, groups: int = 1, bias: bool = True,
                 dilation: int | Sequence[int] = 1, padding_mode: str = "zeros",
                 device=None, dtype=None) -> None:
        super().__init__(0, 0, kernel_size, stride, padding, output_padding, groups, False,
                         dilation, padding_mode)
        self._init_lazy_conv(out_channels, bias, device, dtype)


class LazyConvTranspose2d(_LazyConvMixin, ConvTranspose2d):
    """``ConvTranspose2d`` whose ``in_channels`` comes from its first input.

    >>> import shendu as sd
    >>> sd.nn.LazyConvTranspose2d(4, 2, stride=2)(sd.zeros(1, 8, 5, 5)).shape
    (1, 4, 10, 10)
    """

    cls_to_become = ConvTranspose2d

    def __init__(self, out_channels: int, kernel_size: int | Sequence[int],
                 stride: int | Sequence[int] = 1, padding: int | Sequence[int] = 0,
                 output_padding: int | Sequence[int] = 0, groups: int = 1, bias: bool = True,
                 dilation: int | Sequence[int] = 1, padding_mode: str = "zeros",
                 device=None, dtype=None) -> None:
        super().__init__(0, 0, kernel_size, stride, padding, output_padding, groups, False,
                         dilation, padding_mode)
        self._init_lazy_conv(out_channels, bias, device, dtype)


class _LazyNormMixin(LazyModuleMixin):
    def _init_lazy_norm(self, affine: bool, track_running_stats: bool, device, dtype,
                        bias: bool) -> None:
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:
            _uninit_params(self, bias, device, dtype)
        if track_running_stats:
            self.running_mean = UninitializedBuffer(device=device, dtype=dtype)
            self.running_var = UninitializedBuffer(device=device, dtype=dtype)
            self.num_batches_tracked = creation.tensor(0, dtype=dtypes.int64, device=device)

    def reset_parameters(self) -> None:
        if not self.has_uninitialized_params() and self.num_features != 0:
            super().reset_parameters()

    def _lazy_shapes(self, input: Tensor) -> dict[str, tuple]:
        if input.ndim < 2:
            raise ValueError(f"{type(self).__name__}: expected an (N, C, ...) input, got "
                             f"shape {input.shape}")
        c = (input.shape[1],)
        return {"weight": c, "bias": c, "running_mean": c, "running_var": c}

    def _set_sizes(self, shapes: Mapping[str, tuple]) -> None:
        self.num_features = next(iter(shapes.values()))[0]


class LazyBatchNorm1d(_LazyNormMixin, BatchNorm1d):
    """``BatchNorm1d`` whose ``num_features`` is the channel count of its first input;
    other arguments as ``BatchNorm1d``.

    >>> import shendu as sd
    >>> bn = sd.nn.LazyBatchNorm1d()
    >>> bn(sd.randn(8, 3)).shape, bn.running_mean.shape
    ((8, 3), (3,))
    """

    cls_to_become = BatchNorm1d

    def __init__(self, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, device=None, dtype=None, *,
                 bias: bool = True) -> None:
        super().__init__(0, eps, momentum, False, False)
        self._init_lazy_norm(affine, track_running_stats, device, dtype, bias)


class LazyBatchNorm2d(_LazyNormMixin, BatchNorm2d):
    """``BatchNorm2d`` whose ``num_features`` is the channel count of its first input.

    >>> import shendu as sd
    >>> sd.nn.LazyBatchNorm2d()(sd.randn(2, 4, 3, 3)).shape
    (2, 4, 3, 3)
    """

    cls_to_become = BatchNorm2d

    def __init__(self, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, device=None, dtype=None, *,
                 bias: bool = True) -> None:
        super().__init__(0, eps, momentum, False, False)
        self._init_lazy_norm(affine, track_running_stats, device, dtype, bias)


class LazyBatchNorm3d(_LazyNormMixin, BatchNorm3d):
    """``BatchNorm3d`` whose ``num_features`` is the channel count of its first input."""

    cls_to_become = BatchNorm3d

    def __init__(self, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, device=None, dtype=None, *,
                 bias: bool = True) -> None:
        super().__init__(0, eps, momentum, False, False)
        self._init_lazy_norm(affine, track_running_stats, device, dtype, bias)
