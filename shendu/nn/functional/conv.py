"""Convolution and pooling functions with PyTorch's signatures and argument checks."""
from __future__ import annotations

from ...backends import conv as backends_conv
from ...errors import DTypeError, ShapeError
from ...ops import conv as C
from ...ops import pool as P
from ...ops.conv_fft import Conv2dFFT
from ...tensor import Tensor


def _pair(v, name, op):
    if isinstance(v, int):
        return (v, v)
    v = tuple(int(a) for a in v)
    if len(v) != 2:
        raise ValueError(f"{op}: {name} must be an int or a pair, got {v}")
    return v


def _check_same(op, input, weight, bias):
    if input.dtype != weight.dtype:
        raise DTypeError(f"{op}: input dtype {input.dtype} does not match weight dtype "
                        f"{weight.dtype}")
    if input.device != weight.device:
        raise RuntimeError(f"{op}: input is on {input.device} but weight is on {weight.device}")
    if bias is not None and bias.shape != (weight.shape[0],) and op == "conv2d":
        raise ShapeError(f"{op}: bias must have shape ({weight.shape[0]},), got {bias.shape}")


def _batched(input, op, nd):
    if input.ndim == nd:
        return input, False
    if input.ndim == nd - 1:
        return input.unsqueeze(0), True
    raise ShapeError(f"{op}: expected a {nd - 1}-D (unbatched) or {nd}-D (batched) input, "
                     f"got shape {input.shape}")


def conv2d_relu(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1,
                padding=0, dilation=1, groups: int = 1) -> Tensor:
    """``relu(conv2d(...))`` as one op (what ``nn.FusedConv2dReLU`` runs;
    ``nn.utils.fuse`` puts it in place of a Conv2d followed by a ReLU).

    >>> import shendu as sd
    >>> x = sd.ones(1, 1, 2, 2); w = sd.tensor([[[[1.0]]], [[[-1.0]]]])
    >>> sd.nn.functional.conv2d_relu(x, w)[0, :, 0, 0]
    tensor([1., 0.])
    """
    return _conv2d(input, weight, bias, stride, padding, dilation, groups, True)


def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
           dilation=1, groups: int = 1, *, algorithm: str | None = None) -> Tensor:
    """2-D convolution (cross-correlation) of (N, C, H, W) with weight (O, C/groups, kh, kw).

    ``padding`` may be an int, a pair, ``'valid'`` (none) or ``'same'`` (output size equals
    input size; stride 1 only). ``algorithm`` (shendu's own): ``'direct'`` (im2col + GEMM)
    or ``'fft'`` (products of spectra: stride 1, dilation 1 and one group only; it wins for
    large kernels); None takes ``sd.backends.conv.algorithm``, under which convolutions
    that FFT cannot compute stay direct.

    >>> import shendu as sd
    >>> x = sd.ones(1, 1, 4, 4); w = sd.ones(1, 1, 3, 3)
    >>> sd.nn.functional.conv2d(x, w, padding=1)[0, 0]
    tensor([[4., 6., 6., 4.],
            [6., 9., 9., 6.],
            [6., 9., 9., 6.],
            [4., 6., 6., 4.]])
    """
    return _conv2d(input, weight, bias, stride, padding, dilation, groups, False, algorithm)


def _conv2d(input, weight, bias, stride, padding, dilation, groups, relu, algorithm="direct"):
    x, unbatched = _batched(input, "conv2d", 4)
    if weight.ndim != 4:
        raise ShapeError(f"conv2d: weight must be 4-D (out_channels, in_channels/groups, kh, "
                         f"kw), got shape {weight.shape}")
    _check_same("conv2d", x, weight, bias)
    o, cg, kh, kw = weight.shape
    if x.shape[1] != cg * groups:
        raise ShapeError(f"conv2d: input has {x.shape[1]} channels but weight expects "
                         f"{cg * groups} (weight shape {weight.shape}, groups={groups})")
    if o % groups:
        raise ShapeError(f"conv2d: out_channels {o} is not divisible by groups {groups}")
    stride, dilation = _pair(stride, "stride", "conv2d"), _pair(dilation, "dilation", "conv2d")
    pads = _conv_pads(padding, (kh, kw), stride, dilation)
    oh = C.out_size(x.shape[2], kh, stride[0], *pads[0], dilation[0])
    ow = C.out_size(x.shape[3], kw, stride[1], *pads[1], dilation[1])
    if oh <= 0 or ow <= 0:
        raise ShapeError(f"conv2d: input of shape {x.shape} is too small for a {kh}x{kw} "
                         f"kernel (dilation {dilation}, padding {padding}): output would be "
                         f"{oh}x{ow}")
    args = (x, weight) if bias is None else (x, weight, bias)
    if _use_fft(algorithm, stride, dilation, groups):
        out = Conv2dFFT.apply(*args, pads=pads)
    else:
        out = C.Conv2d.apply(*args, stride=stride, pads=pads, dilation=dilation, groups=groups,
                             relu=relu)
    return out[0] if unbatched else out


def _use_fft(algorithm, stride, dilation, groups) -> bool:
    fits = stride == (1, 1) and dilation == (1, 1) and groups == 1
    if algorithm is None:  # the backend setting: FFT where it fits
        algorithm = backends_conv.algorithm
        if algorithm not in backends_conv.ALGORITHMS:
            raise ValueError(f"conv2d: sd.backends.conv.algorithm must be one of "
                             f"{backends_conv.ALGORITHMS}, got {algorithm!r}")
        return algorithm == "fft" and fits
    if algorithm not in backends_conv.ALGORITHMS:
        raise ValueError(f"conv2d: algorithm must be one of {backends_conv.ALGORITHMS}, got "
                         f"{algorithm!r}")
    if algorithm == "fft" and not fits:
        raise ValueError(f"conv2d: algorithm='fft' needs stride 1, dilation 1 and groups 1, "
                         f"got stride {stride}, dilation {dilation}, groups {groups}")
    return algorithm == "fft"


def _conv_pads(padding, k, stride, dilation):
    if padding == "valid":
        return ((0, 0), (0, 0))
    if padding == "same":
        if stride != (1, 1):
            raise ValueError("conv2d: padding='same' is only supported with stride 1")
        pads = []
        for kk, d in zip(k, dilation):
            total = d * (kk - 1)
            pads.append((total // 2, total - total // 2))
        return tuple(pads)
    if isinstance(padding, str):
        raise ValueError(f"conv2d: padding must be an int, a pair, 'same' or 'valid', got "
                         f"{padding!r}")
    ph, pw = _pair(padding, "padding", "conv2d")
    return ((ph, ph), (pw, pw))


def conv1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
           dilation=1, groups: int = 1) -> Tensor:
    """1-D convolution of (N, C, L) with weight (O, C/groups, k)."""
    x, unbatched = _batched(input, "conv1d", 3)
    if weight.ndim != 3:
        raise ShapeError(f"conv1d: weight must be 3-D (out, in/groups, k), got {weight.shape}")
    s, d = _single(stride), _single(dilation)
    pad = padding if isinstance(padding, str) else (0, _single(padding))
    out = conv2d(x.unsqueeze(2), weight.unsqueeze(2), bias, (1, s), pad, (1, d), groups)
    out = out.squeeze(2)
    return out[0] if unbatched else out


def _single(v):
    return int(v[0]) if isinstance(v, (tuple, list)) else int(v)


def conv_transpose2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1,
                     padding=0, output_padding=0, groups: int = 1, dilation=1) -> Tensor:
    """Transposed convolution; weight has shape (C_in, C_out/groups, kh, kw).

    Output size: ``(H - 1) * stride - 2 * padding + dilation * (k - 1) + output_padding + 1``.
    """
    x, unbatched = _batched(input, "conv_transpose2d", 4)
    if weight.ndim != 4:
        raise ShapeError(f"conv_transpose2d: weight must be 4-D, got {weight.shape}")
    _check_same("conv_transpose2d", x, weight, None)
    cin, cog, kh, kw = weight.shape
    if x.shape[1] != cin:
        raise ShapeError(f"conv_transpose2d: input has {x.shape[1]} channels but weight "
                         f"expects {cin} (weight shape {weight.shape})")
    stride, dilation = _pair(stride, "stride", "conv_transpose2d"), _pair(dilation, "dilation",
                                                                          "conv_transpose2d")
    pad = _pair(padding, "padding", "conv_transpose2d")
    opad = _pair(output_padding, "output_padding", "conv_transpose2d")
    if any(op >= max(s, d) for op, s, d in zip(opad, stride, dilation)):
        raise ValueError(f"conv_transpose2d: output_padding {opad} must be smaller than stride "
                         f"{stride} or dilation {dilation}")
    out_hw = tuple((x.shape[2 + i] - 1) * stride[i] - 2 * pad[i] + dilation[i] * ((kh, kw)[i] - 1)
                   + opad[i] + 1 for i in range(2))
    if min(out_hw) <= 0:
        raise ValueError(f"conv_transpose2d: output size {out_hw} is not positive")
    args = (x, weight) if bias is None else (x, weight, bias)
    out = C.ConvTranspose2d.apply(*args, stride=stride, pads=((pad[0], pad[0]), (pad[1], pad[1])),
                                  dilation=dilation, groups=groups, out_hw=out_hw)
    return out[0] if unbatched else out


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    x, unbatched = _batched(input, "conv_transpose1d", 3)
    out = conv_transpose2d(x.unsqueeze(2), weight.unsqueeze(2), bias, (1, _single(stride)),
                           (0, _single(padding)), (0, _single(output_padding)), groups,
                           (1, _single(dilation)))
    out = out.squeeze(2)
    return out[0] if unbatched else out


# ---------------------------------------------------------------------- pooling
def _pool_geometry(op, x, kernel_size, stride, padding, dilation, ceil_mode):
    k = _pair(kernel_size, "kernel_size", op)
    s = k if stride is None or (not isinstance(stride, int) and len(stride) == 0) else \
        _pair(stride, "stride", op)
    p = _pair(padding, "padding", op)
    d = _pair(dilation, "dilation", op)
    if any(pp * 2 > kk for pp, kk in zip(p, k)):
        raise ValueError(f"{op}: padding {p} should be at most half of kernel size {k}")
    out_hw = tuple(P.pool_out_size(x.shape[2 + i], k[i], s[i], p[i], d[i], ceil_mode)
                   for i in range(2))
    if min(out_hw) <= 0:
        raise ShapeError(f"{op}: input of shape {x.shape} is too small for kernel {k} "
                         f"(output would be {out_hw})")
    return k, s, p, d, out_hw


def max_pool2d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1,
               ceil_mode: bool = False, return_indices: bool = False):
    """Max over ``kernel_size`` windows of (N, C, H, W); ``stride`` defaults to the kernel."""
    x, unbatched = _batched(input, "max_pool2d", 4)
    k, s, p, d, out_hw = _pool_geometry("max_pool2d", x, kernel_size, stride, padding, dilation,
                                        ceil_mode)
    out = P.MaxPool2d.apply(x, k=k, stride=s, pad=p, dilation=d, out_hw=out_hw)
    if return_indices:
        idx = _max_indices(x, out, (k, s, p, d, out_hw))
        return (out[0], idx[0]) if unbatched else (out, idx)
    return out[0] if unbatched else out


def _max_indices(x, out, geom):
    """Flat H*W positions of the maxima, as PyTorch's ``return_indices`` gives them."""
    from ...backend import get_array_module

    k, s, p, d, out_hw = geom
    xp = get_array_module(x._data)
    padded_shape = (x.shape[0], x.shape[1], x.shape[2] + 2 * p[0], x.shape[3] + 2 * p[1])
    which = P.MaxPool2d.offsets(x._data, out._data, (k, s, p, d, out_hw, padded_shape))
    ki, kj = which // k[1], which % k[1]
    rows = xp.arange(out_hw[0])[:, None] * s[0] + ki * d[0] - p[0]
    cols = xp.arange(out_hw[1])[None, :] * s[1] + kj * d[1] - p[1]
    return Tensor._wrap((rows * x.shape[3] + cols).astype("int64"))


def avg_pool2d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override=None) -> Tensor:
    x, unbatched = _batched(input, "avg_pool2d", 4)
    k, s, p, _, out_hw = _pool_geometry("avg_pool2d", x, kernel_size, stride, padding, 1,
                                        ceil_mode)
    out = P.AvgPool2d.apply(x, k=k, stride=s, pad=p, out_hw=out_hw,
                            count_include_pad=count_include_pad,
                            divisor_override=divisor_override)
    return out[0] if unbatched else out


def _out_hw(output_size, x):
    size = _pair(output_size, "output_size", "adaptive pool") if not isinstance(
        output_size, (tuple, list)) else tuple(output_size)
    return tuple(x.shape[2 + i] if v is None else int(v) for i, v in enumerate(size))


def adaptive_avg_pool2d(input: Tensor, output_size) -> Tensor:
    """Average-pool to a fixed ``output_size`` whatever the input size."""
    x, unbatched = _batched(input, "adaptive_avg_pool2d", 4)
    oh, ow = _out_hw(output_size, x)
    h, w = x.shape[2:]
    if (oh, ow) == (1, 1):
        out = x.mean(dim=(2, 3), keepdim=True)
    elif h % oh == 0 and w % ow == 0:
        out = avg_pool2d(x, (h // oh, w // ow))
    else:
        out = P.AdaptiveAvgPool2d.apply(x, out_hw=(oh, ow))
    return out[0] if unbatched else out


def adaptive_max_pool2d(input: Tensor, output_size) -> Tensor:
    x, unbatched = _batched(input, "adaptive_max_pool2d", 4)
    oh, ow = _out_hw(output_size, x)
    h, w = x.shape[2:]
    if h % oh == 0 and w % ow == 0:
        out = max_pool2d(x, (h // oh, w // ow))
    else:
        out = P.AdaptiveMaxPool2d.apply(x, out_hw=(oh, ow))
    return out[0] if unbatched else out


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    out = max_pool2d(input.unsqueeze(-2), (1, _single(kernel_size)),
                     None if stride is None else (1, _single(stride)), (0, _single(padding)),
                     (1, _single(dilation)), ceil_mode)
    return out.squeeze(-2)


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True):
    out = avg_pool2d(input.unsqueeze(-2), (1, _single(kernel_size)),
                     None if stride is None else (1, _single(stride)), (0, _single(padding)),
                     ceil_mode, count_include_pad)
    return out.squeeze(-2)


def adaptive_avg_pool1d(input, output_size):
    return adaptive_avg_pool2d(input.unsqueeze(-2), (1, _single(output_size))).squeeze(-2)
