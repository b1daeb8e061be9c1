"""NumPy references by definition, shared by several test files."""
import numpy as np


def _src_index(out_size, in_size, scale_factor, mode, align_corners, recompute):
    """PyTorch's source coordinate of each output index along one axis."""
    i = np.arange(out_size, dtype=np.float64)
    if align_corners:
        return i * ((in_size - 1) / (out_size - 1) if out_size > 1 else 0.0)
    scale = 1.0 / scale_factor if scale_factor and not recompute else in_size / out_size
    if mode == "nearest":
        return np.minimum(np.floor(i * scale), in_size - 1)
    return np.maximum((i + 0.5) * scale - 0.5, 0.0)


def _linear_weights(src, in_size):
    """(lo, hi, frac): the two neighbours of each source coordinate and the weight of hi."""
    lo = np.minimum(np.floor(src).astype(int), in_size - 1)
    hi = np.minimum(lo + 1, in_size - 1)
    return lo, hi, src - lo


def interpolate_ref(x, size=None, scale_factor=None, mode="nearest", align_corners=None,
                    recompute_scale_factor=None):
    """F.interpolate by PyTorch's index rule, separably along each spatial axis."""
    spatial = x.shape[2:]
    k = len(spatial)
    sf = scale_factor if isinstance(scale_factor, (tuple, list)) else (scale_factor,) * k
    out_sizes = ([int(np.floor(n * f)) for n, f in zip(spatial, sf)] if size is None
                 else list(size) if isinstance(size, (tuple, list)) else [size] * k)
    out = x
    for ax, (n_in, n_out, f) in enumerate(zip(spatial, out_sizes, sf)):
        axis = 2 + ax
        src = _src_index(n_out, n_in, None if size is not None else f, mode,
                         bool(align_corners), bool(recompute_scale_factor))
        if mode == "nearest":
            out = np.take(out, src.astype(int), axis=axis)
        else:
            lo, hi, frac = _linear_weights(src, n_in)
            shape = [1] * out.ndim
            shape[axis] = n_out
            frac = frac.reshape(shape)
            out = np.take(out, lo, axis=axis) * (1 - frac) + np.take(out, hi, axis=axis) * frac
    return out
