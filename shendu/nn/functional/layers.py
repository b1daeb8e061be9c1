"""Stateless layer functions: linear, dropout, normalisation, embedding, attention, resizing."""
from __future__ import annotations

import math

import numpy as np

from ...autograd.grad_mode import no_grad
from ...autograd.tracing import leaf
from ...backend import cpu, get_array_module
from ...errors import DeviceError, DTypeError, ShapeError
from ...ops import attention as attention_ops
from ...ops import nn_ops
from ...ops.movement import pad  # noqa: F401  (re-exported as F.pad)
from ...ops.resample import RepeatNearest2d
from ...ops.selection import one_hot  # noqa: F401  (re-exported as F.one_hot)
from ...random import _rng
from ...tensor import Tensor, _asarray


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``input @ weight.T + bias`` for input (..., in_features), weight (out, in).

    >>> import shendu as sd
    >>> sd.nn.functional.linear(sd.ones(2, 3), sd.ones(4, 3)).shape
    (2, 4)
    """
    return _linear(input, weight, bias, nn_ops.Linear)


def linear_relu(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``relu(linear(input, weight, bias))`` as one op (what ``nn.FusedLinearReLU`` runs;
    ``nn.utils.fuse`` puts it in place of a Linear followed by a ReLU).

    >>> import shendu as sd
    >>> sd.nn.functional.linear_relu(sd.ones(1, 2), sd.tensor([[1.0, 1.0], [-1.0, 0.0]]))
    tensor([[2., 0.]])
    """
    return _linear(input, weight, bias, nn_ops.LinearReLU)


def _linear(input, weight, bias, op):
    x, w = input._data, weight._data  # the checks on raw arrays: a layer call's hot path
    if w.ndim != 2:
        raise ShapeError(f"linear: weight must be 2-D (out_features, in_features), got "
                         f"{weight.shape}")
    if x.ndim == 0 or x.shape[-1] != w.shape[1]:
        raise ShapeError(f"linear: input of shape {input.shape} has {input.shape[-1:] or 0} "
                         f"features but weight of shape {weight.shape} expects "
                         f"{weight.shape[1]} (the last input dimension must match weight's "
                         "second)")
    if x.dtype != w.dtype:
        raise DTypeError(f"linear: input dtype {input.dtype} does not match weight dtype "
                        f"{weight.dtype}")
    if bias is None:
        return op.apply(input, weight)
    if bias._data.shape != (w.shape[0],):
        raise ShapeError(f"linear: bias must have shape ({weight.shape[0]},), got {bias.shape}")
    return op.apply(input, weight, bias)


def bilinear(input1: Tensor, input2: Tensor, weight: Tensor, bias: Tensor | None = None
             ) -> Tensor:
    """``out[..., k] = x1 @ weight[k] @ x2 + bias[k]`` for x1 (..., in1), x2 (..., in2) and
    weight (out, in1, in2); the leading dimensions of x1 and x2 must be equal.

    >>> import shendu as sd
    >>> sd.nn.functional.bilinear(sd.ones(5, 2), sd.ones(5, 3), sd.ones(4, 2, 3)).shape
    (5, 4)
    """
    if weight.ndim != 3:
        raise ShapeError(f"bilinear: weight must be 3-D (out, in1, in2), got {weight.shape}")
    k, i, j = weight.shape
    if input1.ndim == 0 or input1.shape[:-1] != input2.shape[:-1] or \
            input1.shape[-1] != i or input2.shape[-1:] != (j,):
        raise ShapeError(f"bilinear: inputs of shapes {input1.shape} and {input2.shape} do not "
                         f"fit weight of shape {weight.shape} (expected (..., {i}) and "
                         f"(..., {j}) with equal leading dimensions)")
    if bias is not None and bias.shape != (k,):
        raise ShapeError(f"bilinear: bias must have shape ({k},), got {bias.shape}")
    lead = input1.shape[:-1]
    x1, x2 = input1.reshape(-1, i), input2.reshape(-1, j)
    # One matmul for every (sample, k): (M, in1) @ (in1, out * in2) -> (M, out, in2)
    t = (x1 @ weight.permute(1, 0, 2).reshape(i, k * j)).reshape(-1, k, j)
    out = (t * x2.unsqueeze(1)).sum(dim=-1)
    if bias is not None:
        out = out + bias
    return out.reshape(*lead, k)


# ---------------------------------------------------------------------- dropout
def _keep_mask(x, p, shape):
    """Inverted-dropout mask: 0 with probability p, else 1/(1-p), in x's dtype. Drawn from
    shendu's generator on the host and moved, so a seed gives the same mask on every device
    (as every random tensor, see ``shendu.random``)."""
    u = _rng().random(shape, dtype=np.float32 if x.dtype != np.float64 else np.float64)
    xp = get_array_module(x._data)
    if xp is not np:
        u = xp.asarray(u)
    mask = (u >= p).astype(x._data.dtype)
    mask *= 1.0 / (1.0 - p)
    return mask


def _check_p(p, op):
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{op}: dropout probability must be in [0, 1], got {p}")


@leaf("dropout")
def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False):
    """Zero each element with probability ``p`` and scale the rest by ``1/(1-p)`` (inverted
    dropout), so evaluation needs no rescaling. Identity when ``training`` is False."""
    _check_p(p, "dropout")
    if not training or p == 0.0:
        return input
    if inplace:  # PyTorch's inplace=True: the result written into input (see F.relu)
        return input._inplace(lambda x: dropout(x, p, True), op="dropout_")
    if p == 1.0:
        return input * 0.0
    return nn_ops.MaskMul.apply(input, mask=_keep_mask(input, p, input.shape))


@leaf("dropout2d")
def dropout2d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False):
    """Drop whole channels of (N, C, H, W) (or (C, H, W))."""
    _check_p(p, "dropout2d")
    if not training or p == 0.0:
        return input
    if inplace:
        return input._inplace(lambda x: dropout2d(x, p, True), op="dropout2d_")
    shape = input.shape[:-2] + (1, 1)
    return nn_ops.MaskMul.apply(input, mask=_keep_mask(input, p, shape))


dropout1d = dropout2d


# ---------------------------------------------------------------------- normalisation
@leaf("batch_norm")
def batch_norm(input: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
               weight: Tensor | None = None, bias: Tensor | None = None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalise each channel (dim 1) by batch statistics (training) or running ones (eval).

    In training the running statistics are updated in place:
    ``running = (1 - momentum) * running + momentum * batch`` (unbiased batch variance).
    """
    x = input
    if x.ndim < 2:
        raise ShapeError(f"batch_norm: expected at least 2-D input (N, C, ...), got {x.shape}")
    c = x.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var),
                    ("weight", weight), ("bias", bias)):
        if t is not None and t.shape != (c,):
            raise ShapeError(f"batch_norm: {name} must have shape ({c},) for input with {c} "
                             f"channels, got {t.shape}")
        if t is not None and t._data.__class__ is not x._data.__class__:
            raise DeviceError(f"batch_norm: {name} is on {t.device} but the input is on "
                              f"{x.device}; expected all tensors on the same device")
    axes = (0,) + tuple(range(2, x.ndim))
    xa = x._data
    xp = get_array_module(xa)
    if training or running_mean is None:
        n = xa.size // c
        if n <= 1:
            raise ValueError(f"batch_norm: expected more than 1 value per channel when "
                             f"training, got input of shape {x.shape}; use a batch size > 1, "
                             "eval mode, or LayerNorm/GroupNorm")
        mean, var = cpu.batch_norm_stats(xa, axes)
        if training and running_mean is not None:
            with no_grad():
                _ema(running_mean, mean, momentum)
                _ema(running_var, var * (n / (n - 1)), momentum)
    else:
        # a copy: backward reads the mean, and the buffer may change before it runs
        mean, var = running_mean._data.copy(), running_var._data
    invstd = (1.0 / xp.sqrt(var + eps)).astype(xa.dtype, copy=False)
    wb = () if weight is None else (weight, bias if bias is not None else weight * 0)
    return nn_ops.BatchNorm.apply(x, *wb, mean=mean.astype(xa.dtype, copy=False), invstd=invstd,
                                  axes=axes, training=bool(training or running_mean is None))


def _ema(buf: Tensor, value, momentum):
    b = buf._data
    b *= 1 - momentum
    b += momentum * value.astype(b.dtype, copy=False)
    buf._version[0] += 1


def layer_norm(input: Tensor, normalized_shape, weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """Normalise over the trailing ``normalized_shape`` dims of each sample."""
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if input.shape[input.ndim - len(shape):] != shape:
        raise ShapeError(f"layer_norm: normalized_shape {shape} does not match the trailing "
                         f"dimensions of input of shape {input.shape}")
    if weight is None:
        return nn_ops.LayerNorm.apply(input, n_axes=len(shape), eps=eps)
    if bias is None:
        bias = weight * 0
    return nn_ops.LayerNorm.apply(input, weight, bias, n_axes=len(shape), eps=eps)


def group_norm(input: Tensor, num_groups: int, weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    n, c = input.shape[:2]
    if c % num_groups:
        raise ShapeError(f"group_norm: {c} channels are not divisible into {num_groups} groups")
    x = nn_ops.LayerNorm.apply(input.reshape(n, num_groups, -1), n_axes=1, eps=eps)
    x = x.reshape(input.shape)
    if weight is not None:
        shape = (1, c) + (1,) * (input.ndim - 2)
        x = x * weight.reshape(shape) + (bias.reshape(shape) if bias is not None else 0.0)
    return x


@leaf("instance_norm")
def instance_norm(input: Tensor, running_mean: Tensor | None = None,
                  running_var: Tensor | None = None, weight: Tensor | None = None,
                  bias: Tensor | None = None, use_input_stats: bool = True,
                  momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalise each (sample, channel) of (N, C, ...) over its spatial dims.

    With ``use_input_stats`` (the default) each instance's own mean and (biased) variance
    are used, and the running statistics, when given, move towards the batch average of
    the instance means and unbiased variances:
    ``running = (1 - momentum) * running + momentum * stat``. Otherwise the running
    statistics normalise, as batch norm does in eval mode. ``weight`` and ``bias`` are a
    per-channel scale and shift.

    >>> import shendu as sd
    >>> y = sd.nn.functional.instance_norm(sd.tensor([[[1.0, 3.0], [0.0, 4.0]]]))
    >>> y
    tensor([[[-1.0000,  1.0000],
             [-1.0000,  1.0000]]])
    """
    if input.ndim < 3:
        raise ValueError(f"instance_norm: expected an (N, C, ...) input with at least one "
                         f"spatial dimension, got shape {input.shape}")
    n, c = input.shape[:2]
    for name, t in (("running_mean", running_mean), ("running_var", running_var),
                    ("weight", weight), ("bias", bias)):
        if t is not None and t.shape != (c,):
            raise ValueError(f"instance_norm: {name} must have shape ({c},) for input with "
                             f"{c} channels, got {t.shape}")
    if (running_mean is None) != (running_var is None):
        raise ValueError("instance_norm: give both running_mean and running_var, or neither")
    if not use_input_stats:
        if running_mean is None:
            raise ValueError("instance_norm: use_input_stats=False needs running_mean and "
                             "running_var")
        x = batch_norm(input, running_mean, running_var, weight, bias if weight is not None
                       else None, False, 0.0, eps)
        if weight is None and bias is not None:
            x = x + bias.reshape((1, c) + (1,) * (input.ndim - 2))
        return x
    spatial = input._data[0, 0].size
    if spatial <= 1:
        raise ValueError(f"instance_norm: expected more than 1 spatial element when using "
                         f"input statistics, got input of shape {input.shape}")
    if running_mean is not None and momentum:
        xa = input._data.reshape(n, c, -1)
        with no_grad():
            _ema(running_mean, xa.mean(axis=2).mean(axis=0), momentum)
            _ema(running_var, xa.var(axis=2, ddof=1).mean(axis=0), momentum)
    x = nn_ops.LayerNorm.apply(input.reshape(n, c, -1), n_axes=1, eps=eps).reshape(input.shape)
    if weight is not None or bias is not None:
        shape = (1, c) + (1,) * (input.ndim - 2)
        if weight is not None:
            x = x * weight.reshape(shape)
        if bias is not None:
            x = x + bias.reshape(shape)
    return x


def normalize(input: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12) -> Tensor:
    """Divide by the ``p``-norm along ``dim`` (at least ``eps``)."""
    return input / input.norm(p=p, dim=dim, keepdim=True).clamp(min=eps)


# ---------------------------------------------------------------------- embedding
def embedding(input: Tensor, weight: Tensor, padding_idx: int | None = None,
              max_norm: float | None = None, norm_type: float = 2.0) -> Tensor:
    """Rows of ``weight`` selected by integer ``input`` (any shape)."""
    idx = input._data if isinstance(input, Tensor) else \
        get_array_module(weight._data).asarray(input)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"embedding: indices must be integers, got {idx.dtype}")
    if weight.ndim != 2:
        raise ShapeError(f"embedding: weight must be 2-D (num_embeddings, embedding_dim), got "
                         f"shape {weight.shape}")
    n = weight.shape[0]
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise IndexError(f"embedding: index {int(idx.max() if idx.max() >= n else idx.min())} "
                         f"is out of range for {n} embeddings (weight shape {weight.shape})")
    if padding_idx is not None and padding_idx < 0:
        padding_idx += n
    if max_norm is not None:
        with no_grad():
            xp = get_array_module(weight._data)
            rows = xp.unique(xp.asarray(idx))
            w = weight._data[rows]
            norms = (xp.abs(w) ** norm_type).sum(axis=1, keepdims=True) ** (1 / norm_type)
            scale = xp.where(norms > max_norm, max_norm / (norms + 1e-7), 1.0)
            weight._data[rows] = w * scale
            weight._version[0] += 1
    return nn_ops.Embedding.apply(weight, idx=idx, padding_idx=padding_idx)


# ---------------------------------------------------------------------- attention
def scaled_dot_product_attention(query: Tensor, key: Tensor, value: Tensor, attn_mask=None,
                                 dropout_p: float = 0.0, is_causal: bool = False,
                                 scale: float | None = None, training: bool = True) -> Tensor:
    """``softmax(q k^T / sqrt(d) + mask) v`` over the last two dims.

    A bool ``attn_mask`` marks positions that may be attended (True) as in PyTorch; a float
    mask is added to the scores. ``is_causal`` hides the positions after the diagonal.

    One fused node (``ops.attention``) when q, k and v share their leading dims (at most
    two), no dropout is applied and the mask needs no gradient; else the composition of
    primitives.

    >>> import shendu as sd
    >>> q = sd.randn(2, 4, 8)
    >>> sd.nn.functional.scaled_dot_product_attention(q, q, q, is_causal=True).shape
    (2, 4, 8)
    """
    d = query.shape[-1]
    if query.ndim < 2 or key.ndim != query.ndim or value.ndim != query.ndim:
        raise ShapeError(f"scaled_dot_product_attention: query, key and value must have the "
                         f"same number of dims (at least 2), got shapes {query.shape}, "
                         f"{key.shape}, {value.shape}")
    if key.shape[-1] != d:
        raise ShapeError(f"scaled_dot_product_attention: query has {d} features but key has "
                         f"{key.shape[-1]}")
    if key.shape[-2] != value.shape[-2]:
        raise ShapeError(f"scaled_dot_product_attention: key has {key.shape[-2]} positions "
                         f"but value has {value.shape[-2]} (shapes {key.shape}, "
                         f"{value.shape})")
    scale = scale if scale is not None else 1 / math.sqrt(d)
    mask = None
    if attn_mask is not None:
        mask = attn_mask if isinstance(attn_mask, Tensor) else Tensor._wrap(_asarray(attn_mask))
        scores_shape = query.shape[:-2] + (query.shape[-2], key.shape[-2])
        try:
            fits = np.broadcast_shapes(mask.shape, scores_shape) == scores_shape
        except ValueError:
            fits = False
        if not fits:
            raise ShapeError(f"scaled_dot_product_attention: attn_mask of shape {mask.shape} "
                             f"does not broadcast to the scores' shape {scores_shape}")
        if mask.dtype == np.bool_:
            xp = get_array_module(mask._data)
            mask = Tensor._wrap(xp.where(mask._data, query.dtype.type(0),
                                         query.dtype.type(-np.inf)))
    fused = (not (dropout_p > 0 and training) and query.ndim <= 4
             and query.shape[:-2] == key.shape[:-2] == value.shape[:-2]
             and query.dtype == key.dtype == value.dtype and query.dtype.kind == "f"
             and (mask is None or not mask.requires_grad))
    if not fused:
        return _sdpa_composite(query, key, value, mask, is_causal, scale,
                               dropout_p if training else 0.0)
    m = None if mask is None else mask._data.astype(query.dtype, copy=False)
    return attention_ops.ScaledDotProductAttention.apply(query, key, value, mask=m,
                                                         causal=is_causal, scale=scale)


def _sdpa_composite(query, key, value, mask, causal, scale, dropout_p=0.0):
    """Attention composed from primitives: for dropout, broadcasting leading dims and masks
    that need a gradient (and the fused node's double backward). ``mask`` is additive."""
    from .activation import softmax

    scores = (query @ key.transpose(-2, -1)) * scale
    lq, lk = scores.shape[-2:]
    if causal:
        xp = get_array_module(scores._data)
        scores = scores.masked_fill(Tensor._wrap(~xp.tril(xp.ones((lq, lk), dtype=bool))),
                                    float("-inf"))
    if mask is not None:
        scores = scores + mask
    attn = softmax(scores, dim=-1)
    if dropout_p > 0:
        attn = dropout(attn, dropout_p)
    return attn @ value


# ---------------------------------------------------------------------- resizing
_LINEAR_MODES = {3: "linear", 4: "bilinear", 5: "trilinear"}
_RANK_OF = {m: r for r, m in _LINEAR_MODES.items()}


def _source_scale(n_in, n_out, scale, align_corners, dtype):
    """Output-to-input coordinate scale, as PyTorch computes it: ``1 / scale_factor`` when a
    scale factor is passed on (not recomputed), else ``n_in / n_out``; in the input's float
    precision, because PyTorch's CPU kernels do the index arithmetic in that precision."""
    if align_corners:
        return dtype.type((n_in - 1) / (n_out - 1) if n_out > 1 else 0.0)
    if scale is not None and scale > 0:
        return dtype.type(1.0 / scale)
    return dtype.type(n_in / n_out)


def _nearest_index(n_in, n_out, scale):
    src = np.floor(np.arange(n_out, dtype=np.float32) * _source_scale(
        n_in, n_out, scale, False, np.dtype(np.float32)))
    return np.minimum(src.astype(np.int64), n_in - 1)


def _linear_weights(n_in, n_out, scale, align_corners, dtype):
    """Lower and upper source indices and the weight of the upper one, per output index."""
    ratio = _source_scale(n_in, n_out, scale, align_corners, dtype)
    dst = np.arange(n_out, dtype=dtype)
    src = ratio * dst if align_corners else np.maximum(ratio * (dst + dtype.type(0.5))
                                                       - dtype.type(0.5), 0)
    lo = np.minimum(src.astype(np.int64), n_in - 1)
    hi = np.minimum(lo + 1, n_in - 1)
    return lo, hi, (src - lo).astype(dtype)


def _whole_repeat(n_in, n_out, scale) -> int | None:
    """``f`` when nearest resampling from ``n_in`` to ``n_out`` repeats each element ``f``
    times in place (``n_out = f * n_in``, as the source indices come out), else None."""
    f = n_out // n_in
    if n_out != f * n_in:
        return None
    if f == 1 and (scale is None or scale == 1.0):
        return 1
    index = _nearest_index(n_in, n_out, scale)
    return f if np.array_equal(index, np.arange(n_out) // f) else None


def interpolate(input: Tensor, size=None, scale_factor=None, mode: str = "nearest",
                align_corners: bool | None = None,
                recompute_scale_factor: bool | None = None) -> Tensor:
    """Resize the spatial dims of (N, C, L), (N, C, H, W) or (N, C, D, H, W) (differentiable).

    ``mode`` is ``'nearest'`` or ``'linear'``/``'bilinear'``/``'trilinear'`` (by rank). The
    source coordinates follow PyTorch: with ``align_corners=False`` output index ``i`` reads
    input coordinate ``(i + 0.5) / scale_factor - 0.5`` (clamped at 0), where the scale is
    the one given unless ``recompute_scale_factor=True`` or only ``size`` is given, in which
    case it is ``out_size / in_size``.

    >>> import shendu as sd
    >>> x = sd.tensor([[[1.0, 2.0]]])
    >>> sd.nn.functional.interpolate(x, scale_factor=2, mode='linear')
    tensor([[[1.0000, 1.2500, 1.7500, 2.0000]]])
    """
    k = input.ndim - 2
    if k not in (1, 2, 3):
        raise ValueError(f"interpolate: expected (N, C, L), (N, C, H, W) or (N, C, D, H, W) "
                         f"input, got shape {input.shape}")
    linear = mode in ("linear", "bilinear", "trilinear")
    if mode != "nearest" and not linear:
        raise ValueError(f"interpolate: mode must be 'nearest', 'linear', 'bilinear' or "
                         f"'trilinear', got {mode!r}")
    if linear and mode != _LINEAR_MODES[input.ndim]:
        raise ValueError(f"interpolate: mode {mode!r} needs {_RANK_OF[mode]}-D input; got "
                         f"{input.ndim}-D input of shape {input.shape} (use "
                         f"{_LINEAR_MODES[input.ndim]!r})")
    if not linear and align_corners is not None:
        raise ValueError("interpolate: align_corners only applies to the linear modes, not "
                         f"{mode!r}")
    if (size is None) == (scale_factor is None):
        raise ValueError("interpolate: give exactly one of size and scale_factor")
    in_sizes = input.shape[2:]
    if size is not None:
        out_sizes = (size,) * k if isinstance(size, int) else tuple(int(s) for s in size)
        scales = (None,) * k
    else:
        scales = tuple(float(f) for f in scale_factor) if isinstance(
            scale_factor, (tuple, list)) else (float(scale_factor),) * k
        out_sizes = tuple(int(math.floor(n * f)) for n, f in zip(in_sizes, scales))
        if recompute_scale_factor:
            scales = (None,) * k
    if len(out_sizes) != k or len(scales) != k:
        raise ValueError(f"interpolate: size/scale_factor must give {k} values for input of "
                         f"shape {input.shape}")
    if any(o <= 0 for o in out_sizes):
        raise ValueError(f"interpolate: output size {out_sizes} must be positive (input "
                         f"{input.shape})")
    if not linear and input.ndim == 4 and input.is_floating_point():
        # each pixel repeated in place (a decoder's 2x): one op, a kernel each way
        fh, fw = (_whole_repeat(n_in, n_out, scale)
                  for n_in, n_out, scale in zip(in_sizes, out_sizes, scales))
        if fh and fw and max(fh, fw) > 1:
            return RepeatNearest2d.apply(input, fh=fh, fw=fw)
    out = input
    dtype = np.dtype(input.dtype) if input.is_floating_point() else np.dtype(np.float32)
    # Both modes are separable: resample one spatial axis at a time.
    for axis, n_in, n_out, scale in zip(range(2, input.ndim), in_sizes, out_sizes, scales):
        if n_out == n_in and (scale is None or scale == 1.0):
            continue
        if not linear:
            f = _whole_repeat(n_in, n_out, scale)
            if f:
                # each source element repeated f times: a broadcast, so the gradient is a
                # plain sum over the copies instead of a scatter-add
                shape = list(out.shape)
                out = out.unsqueeze(axis + 1).expand(*shape[:axis + 1], f, *shape[axis + 1:])
                out = out.reshape(*shape[:axis], n_out, *shape[axis + 1:])
            else:
                out = out.index_select(axis, Tensor._wrap(_nearest_index(n_in, n_out, scale)))
            continue
        lo, hi, frac = _linear_weights(n_in, n_out, scale, align_corners, dtype)
        shape = [1] * input.ndim
        shape[axis] = n_out
        xp = get_array_module(input._data)
        w_hi = Tensor._wrap(xp.asarray(frac.reshape(shape)))
        out = out.index_select(axis, Tensor._wrap(lo)) * (1 - w_hi) + \
            out.index_select(axis, Tensor._wrap(hi)) * w_hi
    return out
