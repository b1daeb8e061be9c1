"""shendu (深度): a deep learning framework you can read end to end.

Tensors with automatic differentiation over NumPy (CPU) and CuPy (GPU), layers, optimizers
and training tools with PyTorch's names.

>>> import shendu as sd
>>> x = sd.tensor([1.0, 2.0], requires_grad=True)
>>> y = (x ** 2).sum()
>>> y.backward()
>>> x.grad
tensor([2., 4.])
"""
from . import (
    _tensor_methods,  # noqa: F401  (binds ops to Tensor)
    autograd,
    backend,
    backends,
    dtypes,
    nn,
    ops,
    random,
    special,  # (after nn and ops, which it uses)
)
from ._threads import get_num_threads, set_num_threads
from .autograd import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .autograd.grad_mode import inference_mode
from .backend import Device
from .backend import Device as device
from .constants import e, inf, nan, pi
from .creation import (
    arange,
    as_tensor,
    asarray,
    bernoulli,
    empty,
    empty_like,
    eye,
    from_dlpack,
    from_numpy,
    full,
    full_like,
    linspace,
    logspace,
    multinomial,
    normal,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randint_like,
    randn,
    randn_like,
    randperm,
    tensor,
    zeros,
    zeros_like,
)
from .dtypes import (
    bool,
    double,
    dtype,
    float,
    float16,
    float32,
    float64,
    get_default_dtype,
    half,
    int,
    int8,
    int16,
    int32,
    int64,
    long,
    set_default_dtype,
    short,
    uint8,
)
from .legacy import (
    BoolTensor,
    ByteTensor,
    CharTensor,
    DoubleTensor,
    FloatTensor,
    HalfTensor,
    IntTensor,
    LongTensor,
    ShortTensor,
)
from .nn.functional import log_softmax, softmax
from .ops import *  # noqa: F403  (ops.__all__: the op functions, no module names)
from .ops import abs, all, any, max, min, pow, round, sum  # noqa: F401  (shadow builtins)
from .printing import set_printoptions
from .random import Generator, get_rng_state, manual_seed, seed, set_rng_state
from .tensor import Tensor
from .typeinfo import finfo, iinfo

__version__ = "0.1.0"

# The public namespace: what ``from shendu import *`` gives and what is documented. The
# sub-packages (nn, optim, data, ...) are reached as attributes.
__all__ = [
    "Tensor", "Device", "device", "Generator", "cuda", "is_tensor", "numel",
    "save", "load",  # noqa: F405  (loaded on first use, see __getattr__)
    "get_num_threads", "set_num_threads",
    "enable_grad", "is_grad_enabled", "no_grad", "set_grad_enabled",
    "arange", "as_tensor", "asarray", "bernoulli", "empty", "empty_like", "eye", "from_dlpack",
    "from_numpy", "full", "full_like", "linspace", "logspace", "multinomial", "normal", "ones",
    "ones_like", "rand", "rand_like", "randint", "randint_like", "randn", "randn_like",
    "randperm", "tensor", "zeros", "zeros_like",
    "bool", "double", "float", "float16", "float32", "float64", "get_default_dtype", "half",
    "int", "int8", "int16", "int32", "int64", "long", "set_default_dtype", "short", "uint8",
    "get_rng_state", "manual_seed", "seed", "set_rng_state",
    # issue 10: PyTorch's everyday names outside the op modules
    "inference_mode", "e", "inf", "nan", "pi", "finfo", "iinfo", "set_printoptions",
    "softmax", "log_softmax", "BoolTensor", "ByteTensor", "CharTensor", "DoubleTensor",
    "FloatTensor", "HalfTensor", "IntTensor", "LongTensor", "ShortTensor",
    *ops.__all__,
]


class cuda:  # noqa: N801 - mirrors torch.cuda
    """``sd.cuda.is_available()``, ``device_count()``, ``synchronize()``."""

    is_available = staticmethod(backend.cuda.is_available)
    device_count = staticmethod(backend.cuda.device_count)
    synchronize = staticmethod(backend.cuda.synchronize)

    @staticmethod
    def manual_seed(value):
        manual_seed(value)

    @staticmethod
    def manual_seed_all(value):
        """Seed every device's generator (shendu's generator is one for all devices)."""
        manual_seed(value)


def is_tensor(obj) -> bool:
    return isinstance(obj, Tensor)


def numel(input) -> int:
    return input.numel()


# Sub-packages with heavier imports load on first use (``sd.optim``, ``sd.data``, ...).
_LAZY_MODULES = {"optim", "data", "metrics", "train", "vision", "models", "serialization",
                 "bench", "utils", "rl", "text", "jit", "interop", "onnx"}


def __getattr__(name):
    import importlib

    if name in _LAZY_MODULES:
        return importlib.import_module(f".{name}", __name__)
    if name == "compile":
        from .jit import compile

        return compile
    if name in ("save", "load"):
        from . import serialization

        return getattr(serialization, name)
    raise AttributeError(f"module 'shendu' has no attribute {name!r}")
