"""A test-only stand-in for CuPy: NumPy underneath, CuPy's rules on top.

shendu runs ``device='cuda'`` through CuPy with the same op code as on the CPU. No GPU is
available where the suite runs, so this module plays CuPy's part and refuses what CuPy
refuses, which is where op code written against NumPy goes wrong on a GPU:

- its own array type (``fakecupy.ndarray``), never a ``numpy.ndarray`` subclass;
- no implicit conversion to NumPy: ``np.asarray(a)`` raises CuPy's ``TypeError``, and the
  array offers no buffer, ``__array_interface__`` or ``ctypes`` (so numba and MKL kernels
  cannot read it either);
- mixing with NumPy arrays raises (``a + np_array``, ``fakecupy.concatenate([a, np_array])``,
  ``np.add(np_array, a)``), NumPy scalars and Python numbers are fine, as in CuPy;
- NumPy functions called on it dispatch to this module (``__array_function__`` and
  ``__array_ufunc__``, as CuPy does) and give arrays of this type;
- reductions and scalar indexing give 0-d arrays, not NumPy scalars;
- ``a[basic_index] = numpy_array`` raises (CuPy's ``fill``), while index arrays and the
  values of advanced-index assignment may come from the host (CuPy copies them over);
- keyword arguments CuPy does not take (``where=`` on ufuncs, ``initial=``/``where=`` on
  reductions) raise ``TypeError``;
- ``.get()`` / ``asnumpy`` and ``asarray`` / ``array`` are the explicit ways across, and
  ``transfers`` counts every crossing (explicit or implicit, such as ``float(a)``).

``install()`` makes ``shendu.backend.cuda`` resolve to this module, so ``device='cuda'`` (the
real code path, ``Device('cuda', 0)`` and all) lands here; ``uninstall()`` puts back what was
there. Nothing in ``shendu`` imports this file.
"""
from __future__ import annotations

import contextlib
import numbers
import types

import numpy as np

__all__ = ["ndarray", "install", "uninstall", "installed", "transfers", "asnumpy"]

transfers = {"to_device": 0, "to_host": 0}

_IMPLICIT = ("Implicit conversion to a NumPy array is not allowed. "
             "Please use `.get()` to construct a NumPy array explicitly.")


def _unsupported(x):
    return TypeError(f"Unsupported type {type(x)}")


class _Device:
    """``a.device`` and ``cupy.cuda.Device(i)`` (a context manager that selects it)."""

    def __init__(self, device=None):
        self.id = 0 if device is None else int(device)
        if self.id != 0:
            raise RuntimeError(f"fakecupy: device {self.id} does not exist (one device, id 0)")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def synchronize(self):
        pass

    def __eq__(self, other):
        return isinstance(other, _Device) and other.id == self.id

    def __hash__(self):
        return hash(self.id)

    def __repr__(self):
        return f"<CUDA Device {self.id}>"


class _FlatIter:
    """``a.flat``: element access in C order, on the device."""

    def __init__(self, arr):
        self._arr = arr

    def __getitem__(self, i):
        return _wrap_result(self._arr._a.flat[_index(i)])

    def __setitem__(self, i, value):
        self._arr._a.flat[_index(i)] = _check_arg(value)

    def __len__(self):
        return self._arr.size


class _MemoryPointer:
    """``a.data``: device memory, opaque to the host (CuPy's ``MemoryPointer``)."""

    def __init__(self, arr):
        self.ptr = arr.__array_interface__["data"][0]


class ndarray:  # noqa: N801 - CuPy's name
    """A device array: a NumPy array the host may not read without asking."""

    __slots__ = ("_a",)
    __array_priority__ = 100  # CuPy's; shendu's Tensor (1000) still wins
    __hash__ = None

    def __init__(self, shape, dtype=float, order="C"):
        self._a = np.empty(shape, dtype, order=order)

    # -- crossing to the host ------------------------------------------------------------
    def __array__(self, dtype=None, copy=None):
        raise TypeError(_IMPLICIT)

    def get(self, stream=None, order="C", out=None):
        transfers["to_host"] += 1
        if out is not None:
            out[...] = self._a
            return out
        return np.array(self._a, order=order)

    def set(self, arr, stream=None):
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"Only numpy.ndarray can be set to cupy.ndarray, got {type(arr)}")
        transfers["to_device"] += 1
        self._a[...] = arr

    def item(self):
        transfers["to_host"] += 1
        return self._a.item()

    def tolist(self):
        transfers["to_host"] += 1
        return self._a.tolist()

    def _scalar(self, kind):
        if self._a.size != 1:
            raise TypeError(f"only size-1 arrays can be converted to Python scalars, "
                            f"got shape {self._a.shape}")
        transfers["to_host"] += 1
        return kind(self._a.reshape(()).item())

    def __float__(self):
        return self._scalar(float)

    def __int__(self):
        return self._scalar(int)

    def __complex__(self):
        return self._scalar(complex)

    def __bool__(self):
        return self._scalar(bool)

    def __index__(self):
        if self._a.dtype.kind not in "iub" or self._a.ndim != 0:
            raise TypeError("only integer scalar arrays can be converted to a scalar index")
        return self._scalar(int)

    def __reduce__(self):  # pickling goes through the host, as CuPy's does
        return (_from_host, (self.get(),))

    def __copy__(self):
        return _wrap(self._a.copy())

    def __deepcopy__(self, memo):
        return _wrap(self._a.copy())

    # -- attributes ------------------------------------------------------------------------
    shape = property(lambda self: self._a.shape)
    ndim = property(lambda self: self._a.ndim)
    dtype = property(lambda self: self._a.dtype)
    size = property(lambda self: self._a.size)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: _wrap(self._a.T))
    mT = property(lambda self: _wrap(np.swapaxes(self._a, -1, -2)))
    real = property(lambda self: _wrap(self._a.real))
    imag = property(lambda self: _wrap(self._a.imag))
    base = property(lambda self: None if self._a.base is None else _wrap(self._a.base))
    device = property(lambda self: _Device(0))
    flat = property(lambda self: _FlatIter(self))
    data = property(lambda self: _MemoryPointer(self._a))

    @shape.setter
    def shape(self, value):
        self._a.shape = value

    def __getattr__(self, name):
        if name in _METHODS:
            return _method(self, name)
        raise AttributeError(f"'fakecupy.ndarray' object has no attribute '{name}' "
                             "(CuPy arrays have no host-memory views)")

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        if self._a.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(len(self._a)))

    def __repr__(self):
        return "fakecupy." + repr(self._a)

    __str__ = __repr__

    def __format__(self, spec):
        if self._a.ndim == 0:
            return format(self._scalar(lambda v: v), spec)
        return str(self)

    # -- indexing --------------------------------------------------------------------------
    def __getitem__(self, key):
        return _wrap_result(self._a[_index(key)])

    def __setitem__(self, key, value):
        key = _index(key)
        if isinstance(value, ndarray):
            value = value._a
        elif isinstance(value, np.ndarray) and value.ndim > 0:
            if not _is_advanced(key):  # CuPy fills the view: only scalars are taken
                raise ValueError("non-scalar numpy.ndarray cannot be used for fill")
            transfers["to_device"] += 1
        elif not _is_scalar(value):
            value = _check_arg(value)
        self._a[key] = value

    # -- operators -------------------------------------------------------------------------
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return _ufunc_call(ufunc, method, inputs, kwargs)

    def __array_function__(self, func, types_, args, kwargs):
        mod = func.__module__ or ""
        name = func.__name__
        if name in _MISSING:
            return NotImplemented
        if mod.startswith("numpy.linalg"):
            return _call(getattr(np.linalg, name), args, kwargs)
        if mod.startswith("numpy.fft"):
            return _call(getattr(np.fft, name), args, kwargs)
        return _call(func, args, kwargs)


def _binop(ufunc, reflected=False):
    if reflected:
        return lambda self, other: _ufunc_call(ufunc, "__call__", (other, self), {})
    return lambda self, other: _ufunc_call(ufunc, "__call__", (self, other), {})


def _inplace(ufunc):
    def op(self, other):
        _ufunc_call(ufunc, "__call__", (self, other), {"out": (self,)})
        return self
    return op


for _name, _uf in [("add", np.add), ("sub", np.subtract), ("mul", np.multiply),
                   ("truediv", np.true_divide), ("floordiv", np.floor_divide),
                   ("mod", np.remainder), ("pow", np.power), ("matmul", np.matmul),
                   ("and", np.bitwise_and), ("or", np.bitwise_or), ("xor", np.bitwise_xor),
                   ("lshift", np.left_shift), ("rshift", np.right_shift)]:
    setattr(ndarray, f"__{_name}__", _binop(_uf))
    setattr(ndarray, f"__r{_name}__", _binop(_uf, reflected=True))
    setattr(ndarray, f"__i{_name}__", _inplace(_uf))
for _name, _uf in [("eq", np.equal), ("ne", np.not_equal), ("lt", np.less),
                   ("le", np.less_equal), ("gt", np.greater), ("ge", np.greater_equal)]:
    setattr(ndarray, f"__{_name}__", _binop(_uf))
for _name, _uf in [("neg", np.negative), ("pos", np.positive), ("abs", np.absolute),
                   ("invert", np.invert)]:
    setattr(ndarray, f"__{_name}__", lambda self, _uf=_uf: _ufunc_call(_uf, "__call__",
                                                                        (self,), {}))
ndarray.__divmod__ = _binop(np.divmod)


# Methods CuPy's ndarray has (array in, arrays out); anything else NumPy's ndarray offers
# (ctypes, tofile, byteswap, setflags, ...) is missing here, as it is there.
_METHODS = frozenset("""
    all any argmax argmin argpartition argsort astype choose clip compress conj conjugate
    copy cumprod cumsum diagonal dot fill flatten max mean min nonzero partition prod ptp
    put ravel repeat reshape round sort squeeze std sum swapaxes take trace transpose var
    view
""".split())

# NumPy functions CuPy does not provide: dispatching them raises TypeError, as on a GPU.
_MISSING = frozenset({"nanpercentile", "apply_along_axis", "frompyfunc", "vectorize",
                      "piecewise", "savetxt", "save", "load"})

# Keyword arguments CuPy's functions do not accept.
_UFUNC_KW = frozenset({"out", "dtype", "casting", "signature"})
_NO_KW = {name: {"initial", "where"} for name in
          ("sum", "prod", "max", "min", "amax", "amin", "mean", "var", "std", "all", "any",
           "nansum", "nanprod", "nanmax", "nanmin", "nanmean")}
_TRANSFER_IN = frozenset({"asarray", "array", "asanyarray"})
# Where CuPy reads integer host arrays as shapes, axes or indices (it iterates over them or
# copies them over), so they are not a leak there.
_HOST_INTS_OK = frozenset({"transpose", "reshape", "broadcast_to", "zeros", "ones", "empty",
                           "full", "tile", "expand_dims", "moveaxis", "take"})


def _wrap(a):
    out = object.__new__(ndarray)
    out._a = a
    return out


def _from_host(a):
    transfers["to_device"] += 1
    return _wrap(np.array(a))


def _is_scalar(x):
    return isinstance(x, (numbers.Number, np.generic)) or x is None


def _is_advanced(key):
    keys = key if isinstance(key, tuple) else (key,)
    return any(isinstance(k, (np.ndarray, list)) for k in keys)


def _index(key):
    """Index arrays may live on either side (CuPy copies host ones over)."""
    if isinstance(key, tuple):
        return tuple(_index(k) for k in key)
    if isinstance(key, ndarray):
        return key._a
    if isinstance(key, (np.ndarray, list)):
        transfers["to_device"] += 1
        return np.asarray([_index(k) for k in key]) if isinstance(key, list) and any(
            isinstance(k, ndarray) for k in key) else key
    return key


def _check_arg(x, host_ints=False):
    """Unwrap device arrays; refuse host arrays, anywhere in nested lists and tuples
    (integer ones are let through where ``host_ints``)."""
    if isinstance(x, ndarray):
        return x._a
    if isinstance(x, np.ndarray):
        if host_ints and x.dtype.kind in "iu" and x.ndim <= 1:
            return x
        raise _unsupported(x)
    if isinstance(x, list):
        return [_check_arg(v, host_ints) for v in x]
    if isinstance(x, tuple) and not hasattr(x, "_fields"):
        return tuple(_check_arg(v, host_ints) for v in x)
    if hasattr(x, "__array__") and not isinstance(x, (np.generic, type, np.dtype)):
        raise _unsupported(x)  # a host array-like, a Tensor, ...
    return x


def _wrap_result(r):
    if isinstance(r, np.ndarray):
        return _wrap(r)
    if isinstance(r, np.generic) and not isinstance(r, (np.str_, np.bytes_, np.void)):
        return _wrap(np.asarray(r))  # CuPy reduces to 0-d arrays, not host scalars
    if isinstance(r, tuple) and hasattr(r, "_fields"):
        return type(r)(*(_wrap_result(v) for v in r))
    if isinstance(r, (tuple, list)):
        return type(r)(_wrap_result(v) for v in r)
    return r


def _call(func, args, kwargs, name=None):
    name = name or getattr(func, "__name__", "")
    bad = _NO_KW.get(name, ()) & kwargs.keys()
    if bad:
        raise TypeError(f"{name}() got an unexpected keyword argument '{sorted(bad)[0]}'")
    host_ints = name in _HOST_INTS_OK
    args = [_check_arg(a, host_ints) for a in args]
    out = kwargs.get("out")
    kwargs = {k: _check_arg(v, host_ints) for k, v in kwargs.items()}
    r = func(*args, **kwargs)
    return out if isinstance(out, ndarray) else _wrap_result(r)


def _ufunc_call(ufunc, method, inputs, kwargs):
    if method == "__call__":
        bad = kwargs.keys() - _UFUNC_KW
        if bad:
            raise TypeError(f"{ufunc.__name__}: Wrong arguments {sorted(bad)}")
    out = kwargs.get("out")
    if isinstance(out, tuple):
        kwargs = dict(kwargs, out=tuple(_check_arg(o) for o in out))
    elif out is not None:
        kwargs = dict(kwargs, out=_check_arg(out))
    if method == "at":  # ufunc.at(a, indices, b): the indices may come from the host
        a, idx, *rest = inputs
        inputs = (_check_arg(a), _index(idx), *(_check_arg(v) for v in rest))
        getattr(ufunc, method)(*inputs, **kwargs)
        return None
    inputs = tuple(_check_arg(x) for x in inputs)
    r = getattr(ufunc, method)(*inputs, **kwargs) if method != "__call__" else \
        ufunc(*inputs, **kwargs)
    if out is not None:
        outs = out if isinstance(out, tuple) else (out,)
        return outs[0] if len(outs) == 1 else outs
    return _wrap_result(r)


def _method(arr, name):
    bound = getattr(arr._a, name)

    def call(*args, **kwargs):
        if name == "fill" and args and isinstance(args[0], np.ndarray) and args[0].ndim == 0:
            args = (args[0].item(),) + args[1:]  # CuPy's fill takes a 0-d host array
        return _call(bound, args, kwargs, name)
    return call


# -- the module's functions ----------------------------------------------------------------
class _Ufunc:
    """``fakecupy.add`` and friends: callable, with ``at``/``reduce``/``outer``/..."""

    def __init__(self, uf):
        self._uf = uf
        self.__name__ = uf.__name__
        self.nin, self.nout = uf.nin, uf.nout

    def __call__(self, *args, **kwargs):
        return _ufunc_call(self._uf, "__call__", args, kwargs)

    def __getattr__(self, method):
        if method not in ("at", "reduce", "accumulate", "outer", "reduceat"):
            raise AttributeError(method)
        return lambda *args, **kwargs: _ufunc_call(self._uf, method, args, kwargs)


def _function(fn, name):
    if name in _TRANSFER_IN:
        return lambda a, dtype=None, *args, **kwargs: _to_device(a, dtype, name, args, kwargs)

    def call(*args, **kwargs):
        return _call(fn, args, kwargs, name)
    call.__name__ = name
    return call


def _to_device(a, dtype, name, args, kwargs):
    copy = name == "array" and kwargs.get("copy", True) is not False
    if isinstance(a, ndarray):
        r = a._a.astype(dtype) if dtype is not None else a._a
        return _wrap(r.copy() if copy and r is a._a else r)
    if isinstance(a, (list, tuple)) and any(isinstance(v, ndarray) for v in a):
        return _wrap(np.array([_check_arg(v) for v in a], dtype=dtype))
    if isinstance(a, np.ndarray):
        transfers["to_device"] += 1
    elif hasattr(a, "__array__") and not isinstance(a, np.generic):
        raise _unsupported(a)  # CuPy takes arrays, sequences and numbers, not Tensors
    order = kwargs.get("order") or "K"
    return _wrap(np.array(a, dtype=dtype, copy=True, order=order))


class _Namespace(types.ModuleType):
    """A module whose attributes wrap the NumPy module ``np_mod``'s."""

    def __init__(self, name, np_mod, extra=None):
        super().__init__(name)
        self._np_mod = np_mod
        self.__dict__.update(extra or {})

    def __getattr__(self, name):
        if name.startswith("__") or name in _MISSING:
            raise AttributeError(f"module '{self.__name__}' has no attribute '{name}'")
        obj = getattr(self._np_mod, name)
        if isinstance(obj, np.ufunc):
            wrapped = _Ufunc(obj)
        elif isinstance(obj, (type, np.dtype, numbers.Number, types.ModuleType)) or \
                not callable(obj) or name in ("errstate", "printoptions"):
            wrapped = obj  # dtypes, constants, finfo, ...: shared with NumPy, as in CuPy
        else:
            wrapped = _function(obj, name)
        setattr(self, name, wrapped)
        return wrapped


class _Generator:
    """``fakecupy.random.default_rng(seed)``: draws land on the device."""

    def __init__(self, seed=None):
        self._g = np.random.default_rng(seed)

    def __getattr__(self, name):
        fn = getattr(self._g, name)
        return lambda *args, **kwargs: _call(fn, args, kwargs, name)


def _legacy_random(name):
    """``cupy.random.random(size, dtype)`` and friends: CuPy's take a ``dtype``."""
    fn = getattr(np.random, name)

    def draw(*args, dtype=None, **kwargs):
        r = _call(fn, args, kwargs, name)
        return r if dtype is None else r.astype(np.dtype(dtype), copy=False)
    return draw


def _special_module():
    """``cupyx.scipy.special``, from SciPy's (a test dependency)."""
    import scipy.special as sp

    mod = _Namespace("cupyx.scipy.special", sp)
    return mod


def asnumpy(a, stream=None, order="C", out=None):
    if isinstance(a, ndarray):
        return a.get(order=order, out=out)
    return np.asarray(a, order=order)


def get_array_module(*args):
    return _module if any(isinstance(a, ndarray) for a in args) else np


def _runtime_device_count():
    return 1


cuda = types.SimpleNamespace(
    Device=_Device,
    runtime=types.SimpleNamespace(getDeviceCount=_runtime_device_count),
    get_current_stream=lambda: types.SimpleNamespace(synchronize=lambda: None),
)

_module = _Namespace("fakecupy", np, {
    "ndarray": ndarray, "asnumpy": asnumpy, "get_array_module": get_array_module,
    "cuda": cuda, "__version__": "fake",
    "linalg": _Namespace("fakecupy.linalg", np.linalg),
    "fft": _Namespace("fakecupy.fft", np.fft),
    "random": _Namespace("fakecupy.random", np.random, dict(
        {"default_rng": _Generator},
        **{n: _legacy_random(n) for n in ("random", "rand", "randn", "standard_normal",
                                          "uniform", "normal", "random_sample")})),
    "lib": types.SimpleNamespace(stride_tricks=_Namespace("fakecupy.lib.stride_tricks",
                                                          np.lib.stride_tricks)),
})
module = _module


# -- standing in for CuPy inside shendu ----------------------------------------------------
_saved: list[tuple] = []


_CUPYX = ("cupyx", "cupyx.scipy", "cupyx.scipy.special")


def install():
    """Make ``shendu.backend.cuda`` (and so ``device='cuda'``) use this module, and
    ``import cupyx.scipy.special`` find its stand-in."""
    import sys

    from shendu.backend import cuda as sd_cuda

    _saved.append(((sd_cuda.cupy, sd_cuda.ndarray_type, sd_cuda._import_error),
                   {name: sys.modules.get(name) for name in _CUPYX}))
    sd_cuda.cupy, sd_cuda.ndarray_type, sd_cuda._import_error = _module, ndarray, None
    special = _special_module()
    scipy_ns = types.ModuleType("cupyx.scipy")
    scipy_ns.special = special
    cupyx = types.ModuleType("cupyx")
    cupyx.scipy = scipy_ns
    sys.modules.update(zip(_CUPYX, (cupyx, scipy_ns, special)))


def uninstall():
    import sys

    from shendu.backend import cuda as sd_cuda

    state, modules = _saved.pop()
    sd_cuda.cupy, sd_cuda.ndarray_type, sd_cuda._import_error = state
    for name, mod in modules.items():
        if mod is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = mod


@contextlib.contextmanager
def installed():
    """``with installed():`` the stand-in is CUDA inside the block."""
    install()
    try:
        yield _module
    finally:
        uninstall()
