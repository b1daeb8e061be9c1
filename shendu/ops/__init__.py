"""The differentiable primitives and the functions built on them."""
from .elementwise import (abs, add, allclose, ceil, clamp, clip, cos, div, elu, eq, equal, exp,
                          floor, floor_divide, fmod, ge, gelu, gt, isclose, isfinite, isinf,
                          isnan, le, leaky_relu, log, log1p, logical_and, logical_not,
                          logical_or, logical_xor, lt, maximum, minimum, mul, ne, neg, pow,
                          relu, remainder, round, rsqrt, sigmoid, sign, sin, softplus, sqrt,
                          square, sub, tanh, trunc, where)
from .linalg import bmm, dot, ger, matmul, mm, mv, outer
from .movement import (argsort, broadcast_tensors, broadcast_to, cat, chunk, clone, concat,
                       concatenate, contiguous, expand, expand_as, expand_dims, flatten, flip,
                       fliplr, flipud, gather, getitem, hstack, index_put, index_select,
                       masked_fill, masked_select, moveaxis, movedim, narrow, nonzero, one_hot,
                       permute, repeat, repeat_interleave, reshape, reshape_as, roll, scatter,
                       scatter_add, select, sort, split, squeeze, stack, swapaxes, swapdims, t,
                       take_along_dim, tensor_split, tile, topk, transpose, tril, triu, type_,
                       unbind, unflatten, unsqueeze, view, view_as, vstack)
from .reduce import (all, amax, amin, any, argmax, argmin, count_nonzero, cumsum, logsumexp,
                     max, mean, min, norm, prod, std, sum, var)
from .movement import pad  # noqa: E402  (also exported as F.pad)
