"""Weight initialisation, in place and without recording gradients (PyTorch's ``nn.init``).

Why it matters: all-zero weights make every hidden unit compute the same thing and receive
the same gradient, so they never become different (the symmetry problem); small random
weights break the symmetry, and Xavier/Glorot and Kaiming/He scale them by the layer's fan
so activations and gradients keep their variance from layer to layer.

Random values come from shendu's generator (``sd.manual_seed`` / a ``sd.Generator``).
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from ..autograd.grad_mode import no_grad
from ..random import Generator, _rng
from ..tensor import Tensor

__all__ = ["calculate_gain", "uniform_", "normal_", "trunc_normal_", "constant_", "ones_",
           "zeros_", "eye_", "dirac_", "xavier_uniform_", "xavier_normal_",
           "kaiming_uniform_", "kaiming_normal_", "orthogonal_", "sparse_"]

_LINEAR = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
           "conv_transpose3d", "sigmoid")


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The factor that keeps a layer's output variance stable for ``nonlinearity``.

    ``param`` is Leaky ReLU's negative slope (default 0.01).

    >>> from shendu.nn import init
    >>> init.calculate_gain("relu"), init.calculate_gain("tanh")
    (1.4142135623730951, 1.6666666666666667)
    """
    if nonlinearity in _LINEAR:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, (int, float)) and not isinstance(param, bool):
            slope = param
        else:
            raise ValueError(f"calculate_gain: negative_slope {param!r} is not a valid number")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4  # keeps SELU's self-normalising fixed point (PyTorch's choice)
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}; expected "
                     f"one of {', '.join(_LINEAR)}, tanh, relu, leaky_relu, selu")


def _check(fn: str, tensor, floating: bool = True) -> None:
    if not isinstance(tensor, Tensor):
        raise TypeError(f"init.{fn}: expected a Tensor, got {type(tensor).__name__}")
    if floating and tensor.dtype.kind != "f":
        raise TypeError(f"init.{fn}: expected a floating-point tensor, got {tensor.dtype}")


def _write(tensor: Tensor, arr) -> Tensor:
    """Copy a CPU array into ``tensor`` (cast, moved to its device, version bumped)."""
    with no_grad():
        return tensor.copy_(Tensor._wrap(np.asarray(arr)))


def _draw_dtype(tensor: Tensor):
    # draw float32 tensors in float32 (twice as fast); half precision via float32
    return np.float64 if tensor.dtype == np.float64 else np.float32


def _calculate_fan_in_and_fan_out(tensor: Tensor) -> tuple[int, int]:
    """``(fan_in, fan_out)``: inputs and outputs per unit, times the kernel's size.

    Weights are laid out ``(out_features, in_features, *kernel)`` as in ``Linear``/``Conv``.
    """
    if tensor.ndim < 2:
        raise ValueError(f"init: fan in and fan out can not be computed for a tensor with "
                         f"fewer than 2 dimensions (shape {tuple(tensor.shape)})")
    receptive = math.prod(tensor.shape[2:])
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _calculate_correct_fan(tensor: Tensor, mode: str) -> int:
    mode = mode.lower()
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"init: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0,
             generator: Generator | None = None) -> Tensor:
    """Fill with draws from U(a, b).

    >>> import shendu as sd
    >>> w = sd.nn.init.uniform_(sd.empty(1000), -0.5, 0.5)
    >>> bool(w.min() >= -0.5 and w.max() <= 0.5)
    True
    """
    _check("uniform_", tensor)
    arr = _rng(generator).random(tensor.shape, dtype=_draw_dtype(tensor))
    arr *= b - a
    arr += a
    return _write(tensor, arr)


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0,
            generator: Generator | None = None) -> Tensor:
    """Fill with draws from N(mean, std²); ``std=0.01`` is the notes' "small random" init.

    >>> import shendu as sd
    >>> w = sd.nn.init.normal_(sd.empty(10000), std=0.01)
    >>> round(float(w.std()), 3)
    0.01
    """
    _check("normal_", tensor)
    arr = _rng(generator).standard_normal(tensor.shape, dtype=_draw_dtype(tensor))
    arr *= std
    arr += mean
    return _write(tensor, arr)


def _phi(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _truncated_standard(rng, n: int, lo: float, hi: float) -> np.ndarray:
    """``n`` standard-normal draws conditioned on ``[lo, hi]``, by rejection sampling.

    The proposal keeps a good share of its draws wherever the interval lies: the normal
    itself when the interval holds enough mass, a shifted exponential far in a tail
    (Robert, 1995), a uniform under the density's peak for a narrow interval.
    """
    sign = 1.0
    if _phi(hi) - _phi(lo) >= 0.25:
        def propose(m):
            x = rng.standard_normal(m)
            return x[(x >= lo) & (x <= hi)]
    else:
        if hi <= 0:  # mirror a left tail to the right
            lo, hi, sign = -hi, -lo, -1.0
        lam = (lo + math.sqrt(lo * lo + 4)) / 2
        if lo > 0 and (hi - lo) * lam > 1:
            def propose(m):
                x = lo + rng.exponential(1 / lam, m)
                return x[(x <= hi) & (rng.random(m) <= np.exp(-0.5 * (x - lam) ** 2))]
        else:
            peak = max(lo, 0.0)

            def propose(m):
                x = rng.uniform(lo, hi, m)
                return x[rng.random(m) <= np.exp(0.5 * (peak * peak - x * x))]
    out = np.empty(n)
    filled, rate = 0, 0.5
    while filled < n:
        want = int((n - filled) / rate * 1.1) + 16
        got = propose(want)
        rate = max(len(got) / want, 0.05)
        take = min(len(got), n - filled)
        out[filled:filled + take] = got[:take]
        filled += take
    return out * sign


def trunc_normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0,
                  b: float = 2.0, generator: Generator | None = None) -> Tensor:
    """Fill with N(mean, std²) draws redrawn until they fall in ``[a, b]`` (absolute bounds).

    >>> import shendu as sd
    >>> w = sd.nn.init.trunc_normal_(sd.empty(1000), std=0.02, a=-0.04, b=0.04)
    >>> bool(w.abs().max() <= 0.04)
    True
    """
    _check("trunc_normal_", tensor)
    if not a < b:
        raise ValueError(f"init.trunc_normal_: need a < b, got a={a!r}, b={b!r}")
    if std <= 0:
        raise ValueError(f"init.trunc_normal_: std must be > 0, got {std!r}")
    z = _truncated_standard(_rng(generator), tensor.numel(), (a - mean) / std,
                            (b - mean) / std)
    arr = np.clip(mean + std * z, a, b).reshape(tensor.shape)
    return _write(tensor, arr)


def constant_(tensor: Tensor, val: float) -> Tensor:
    """Fill with ``val``.

    >>> import shendu as sd
    >>> sd.nn.init.constant_(sd.empty(3), 0.5)
    tensor([0.5000, 0.5000, 0.5000])
    """
    _check("constant_", tensor, floating=False)
    with no_grad():
        return tensor.fill_(val)


def ones_(tensor: Tensor) -> Tensor:
    """Fill with ones."""
    return constant_(tensor, 1.0)


def zeros_(tensor: Tensor) -> Tensor:
    """Fill with zeros: right for biases, wrong for weights (every unit stays identical).

    >>> import shendu as sd
    >>> sd.nn.init.zeros_(sd.empty(2, 2))
    tensor([[0., 0.],
            [0., 0.]])
    """
    return constant_(tensor, 0.0)


def eye_(tensor: Tensor) -> Tensor:
    """Fill a 2-D tensor with the identity (a linear layer that passes inputs through).

    >>> import shendu as sd
    >>> sd.nn.init.eye_(sd.empty(2, 3))
    tensor([[1., 0., 0.],
            [0., 1., 0.]])
    """
    _check("eye_", tensor, floating=False)
    if tensor.ndim != 2:
        raise ValueError(f"init.eye_: only 2-D tensors are supported, got shape "
                         f"{tuple(tensor.shape)}")
    return _write(tensor, np.eye(*tensor.shape))


def dirac_(tensor: Tensor, groups: int = 1) -> Tensor:
    """Fill a 3-, 4- or 5-D convolution weight so the convolution copies its input channels.

    >>> import shendu as sd
    >>> w = sd.nn.init.dirac_(sd.empty(2, 2, 3, 3))
    >>> w[1, 1].tolist()
    [[0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]
    """
    _check("dirac_", tensor, floating=False)
    shape = tuple(tensor.shape)
    if len(shape) not in (3, 4, 5):
        raise ValueError(f"init.dirac_: only 3-, 4- and 5-D tensors are supported, got "
                         f"shape {shape}")
    if shape[0] % groups:
        raise ValueError(f"init.dirac_: dim 0 ({shape[0]}) must be divisible by groups "
                         f"({groups})")
    per_group = shape[0] // groups
    arr = np.zeros(shape)
    centre = tuple(k // 2 for k in shape[2:])
    for g in range(groups):
        for d in range(min(per_group, shape[1])):
            arr[(g * per_group + d, d) + centre] = 1
    return _write(tensor, arr)


def xavier_uniform_(tensor: Tensor, gain: float = 1.0,
                    generator: Generator | None = None) -> Tensor:
    """Glorot uniform: U(-r, r) with ``r = gain * sqrt(6 / (fan_in + fan_out))``.

    >>> import shendu as sd
    >>> w = sd.nn.init.xavier_uniform_(sd.empty(200, 300))
    >>> round(float(w.std()) / (2 / 500) ** 0.5, 1)
    1.0
    """
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    bound = math.sqrt(3.0) * gain * math.sqrt(2.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(tensor: Tensor, gain: float = 1.0,
                   generator: Generator | None = None) -> Tensor:
    """Glorot normal: N(0, std²) with ``std = gain * sqrt(2 / (fan_in + fan_out))``."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), generator)


def _kaiming_std(fn: str, tensor, a, mode, nonlinearity) -> float | None:
    _check(fn, tensor)
    if 0 in tensor.shape:
        warnings.warn(f"init.{fn}: initializing a zero-element tensor is a no-op",
                      stacklevel=3)
        return None
    return calculate_gain(nonlinearity, a) / math.sqrt(_calculate_correct_fan(tensor, mode))


def kaiming_uniform_(tensor: Tensor, a: float = 0, mode: str = "fan_in",
                     nonlinearity: str = "leaky_relu",
                     generator: Generator | None = None) -> Tensor:
    """He uniform: U(-r, r) with ``r = gain * sqrt(3 / fan)``; ``a`` is Leaky ReLU's slope.

    >>> import shendu as sd
    >>> w = sd.nn.init.kaiming_uniform_(sd.empty(256, 400), nonlinearity="relu")
    >>> round(float(w.std()) / (2 / 400) ** 0.5, 1)
    1.0
    """
    std = _kaiming_std("kaiming_uniform_", tensor, a, mode, nonlinearity)
    if std is None:
        return tensor
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor: Tensor, a: float = 0, mode: str = "fan_in",
                    nonlinearity: str = "leaky_relu",
                    generator: Generator | None = None) -> Tensor:
    """He normal: N(0, std²) with ``std = gain / sqrt(fan)`` (``mode`` picks the fan)."""
    std = _kaiming_std("kaiming_normal_", tensor, a, mode, nonlinearity)
    return tensor if std is None else normal_(tensor, 0.0, std, generator)


def orthogonal_(tensor: Tensor, gain: float = 1.0,
                generator: Generator | None = None) -> Tensor:
    """A (semi-)orthogonal matrix from the QR decomposition of a Gaussian one, times ``gain``.

    Trailing dimensions are flattened; rows are orthonormal when there are fewer rows than
    columns, columns otherwise.

    >>> import shendu as sd
    >>> w = sd.nn.init.orthogonal_(sd.empty(3, 5))
    >>> bool(((w @ w.T) - sd.eye(3)).abs().max() < 1e-5)
    True
    """
    _check("orthogonal_", tensor)
    if tensor.ndim < 2:
        raise ValueError(f"init.orthogonal_: only tensors with 2 or more dimensions are "
                         f"supported, got shape {tuple(tensor.shape)}")
    if tensor.numel() == 0:
        return tensor
    rows = tensor.shape[0]
    cols = tensor.numel() // rows
    flat = _rng(generator).standard_normal((rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q *= np.sign(np.diag(r))  # make the factorisation unique: a uniform (Haar) draw
    if rows < cols:
        q = q.T
    return _write(tensor, gain * q.reshape(tensor.shape))


def sparse_(tensor: Tensor, sparsity: float, std: float = 0.01,
            generator: Generator | None = None) -> Tensor:
    """N(0, std²) with a fraction ``sparsity`` of each column's entries set to zero (2-D).

    >>> import shendu as sd
    >>> w = sd.nn.init.sparse_(sd.empty(10, 4), sparsity=0.3)
    >>> [int((w[:, j] == 0).sum()) for j in range(4)]
    [3, 3, 3, 3]
    """
    _check("sparse_", tensor)
    if tensor.ndim != 2:
        raise ValueError(f"init.sparse_: only 2-D tensors are supported, got shape "
                         f"{tuple(tensor.shape)}")
    rows, cols = tensor.shape
    rng = _rng(generator)
    arr = rng.normal(0.0, std, (rows, cols))
    zeros = int(math.ceil(sparsity * rows))
    for j in range(cols):
        arr[rng.permutation(rows)[:zeros], j] = 0
    return _write(tensor, arr)


def _deprecated(fn, where: str):
    """PyTorch's old names without the trailing underscore: the same function, with the
    ``FutureWarning`` PyTorch gives for them (so old code runs and says what to write)."""
    old = fn.__name__[:-1]

    def alias(*args, **kwargs):
        warnings.warn(f"`{where}.{old}` is now deprecated in favor of `{where}.{fn.__name__}`.",
                      FutureWarning, stacklevel=2)
        return fn(*args, **kwargs)
    alias.__name__ = alias.__qualname__ = old
    alias.__doc__ = f"Deprecated alias of ``{fn.__name__}`` (warns, as in PyTorch)."
    return alias


uniform = _deprecated(uniform_, "nn.init")
normal = _deprecated(normal_, "nn.init")
constant = _deprecated(constant_, "nn.init")
xavier_uniform = _deprecated(xavier_uniform_, "nn.init")
xavier_normal = _deprecated(xavier_normal_, "nn.init")
kaiming_uniform = _deprecated(kaiming_uniform_, "nn.init")
kaiming_normal = _deprecated(kaiming_normal_, "nn.init")
orthogonal = _deprecated(orthogonal_, "nn.init")
sparse = _deprecated(sparse_, "nn.init")
