"""Helpers around parameters (gradient clipping, flattening, L1/L2 penalties) and
``fuse``, the explicit Linear/Conv2d + ReLU fusion."""
from .. import init as _init
from . import rnn
from .clip_grad import clip_grad_norm_, clip_grad_value_, clip_grads_with_norm_, get_total_norm
from .convert_parameters import parameters_to_vector, vector_to_parameters
from .fusion import fuse
from .regularization import l1_penalty, l2_penalty
from .transfer import discriminative_lr, freeze, is_frozen, replace_head, unfreeze

# PyTorch's deprecated spelling without the underscore (it warns there too)
clip_grad_norm = _init._deprecated(clip_grad_norm_, "nn.utils")

__all__ = ["clip_grad_norm_", "clip_grad_value_", "clip_grads_with_norm_", "get_total_norm",
           "parameters_to_vector", "vector_to_parameters", "l1_penalty", "l2_penalty", "fuse",
           "rnn", "freeze", "unfreeze", "is_frozen", "replace_head", "discriminative_lr"]
