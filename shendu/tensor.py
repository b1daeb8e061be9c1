"""``Tensor``: an n-dimensional array that remembers how it was computed.

A tensor wraps one backend array (NumPy on the CPU, CuPy on a GPU) in ``_data``. When it
was produced by a recorded op, ``grad_fn`` is that op's graph node; ``backward()`` walks
the graph from there. Tensors sharing memory (views, ``detach()``) share one version
counter, bumped by every in-place write, so backward can refuse stale saved arrays.
"""
from __future__ import annotations

import numbers

import numpy as np

from . import dtypes
from .autograd import engine, function
from .autograd.grad_mode import _State, no_grad
from .backend import Device, as_device, cuda, device_of, get_array_module, to_device

_ndarray = np.ndarray
_new = object.__new__


def _ragged(data):
    """Raise a clear error for nested sequences of unequal lengths (NumPy's is cryptic)."""
    def walk(x, depth):
        if isinstance(x, (list, tuple)):
            lens = {len(e) if isinstance(e, (list, tuple)) else None for e in x}
            if len(lens) > 1:
                shown = ", ".join("a number" if v is None else f"length {v}" for v in
                                  sorted(lens, key=lambda v: -1 if v is None else v))
                raise ValueError(f"tensor: nested sequences of unequal lengths at depth "
                                 f"{depth + 1} ({shown}); every row must have the same length")
            for e in x:
                walk(e, depth + 1)
    walk(data, 0)


def _asarray(data, dtype=None):
    """Turn user data (lists, scalars, arrays, tensors) into a backend array."""
    if isinstance(data, Tensor):
        data = data._data
    if cuda.ndarray_type is not None and isinstance(data, cuda.ndarray_type):
        return data if dtype is None else data.astype(dtype, copy=False)
    if dtype is None:
        try:
            arr = np.asarray(data)
        except ValueError:
            _ragged(data)
            raise
        if arr.dtype.kind == "f" and not isinstance(data, (np.ndarray, np.generic)):
            arr = arr.astype(dtypes.get_default_dtype(), copy=False)  # Python floats -> float32
        elif arr.dtype.kind in "OUS":
            raise TypeError(f"tensor: cannot make a tensor from {type(data).__name__} data "
                            f"(numpy dtype {arr.dtype}); expected numbers")
        return arr
    return np.asarray(data, dtype=dtypes.as_dtype(dtype))


def _legacy_data(args, dtype):
    """The array ``Tensor(*args)`` holds: sizes (integers) or one piece of data."""
    if not args:
        return np.empty((0,), dtypes.as_dtype(dtype) if dtype is not None
                        else dtypes.get_default_dtype().dtype)
    if all(isinstance(a, numbers.Integral) and not isinstance(a, (bool, np.bool_))
           for a in args):
        if any(a < 0 for a in args):
            from .errors import ShapeError

            raise ShapeError(f"Tensor: sizes must be non-negative, got {tuple(args)}")
        return np.zeros(tuple(int(a) for a in args),
                        dtypes.as_dtype(dtype) if dtype is not None
                        else dtypes.get_default_dtype().dtype)
    if len(args) != 1:
        raise TypeError(f"Tensor: expected one piece of data (a list, number, array or tensor) "
                        f"or sizes (integers), got {len(args)} arguments of types "
                        f"{[type(a).__name__ for a in args]}")
    data = args[0]
    if dtype is not None:
        return _asarray(data, dtype)
    if isinstance(data, Tensor):  # as PyTorch: the same data, dtype kept
        return data._data
    arr = _asarray(data)
    default = dtypes.get_default_dtype().dtype  # the NumPy dtype (CuPy's astype takes it too)
    return arr if arr.dtype == default or arr.dtype.kind == "c" else arr.astype(default)


class Tensor:
    """A multi-dimensional array with automatic differentiation.

    >>> import shendu as sd
    >>> x = sd.tensor([1.0, 2.0, 3.0], requires_grad=True)
    >>> (x * x).sum().backward()
    >>> x.grad
    tensor([2., 4., 6.])
    """

    __slots__ = ("_data", "requires_grad", "grad", "grad_fn", "_out_idx", "_version",
                 "_hooks", "_retains_grad", "__weakref__")
    __array_priority__ = 1000  # ndarray (op) Tensor defers to Tensor's reflected operator

    def __init__(self, *args, dtype=None, device=None, requires_grad=False):
        # PyTorch's legacy constructor: ``Tensor(2, 3)`` is a (2, 3) tensor (uninitialised
        # there, zeros here) and ``Tensor([1, 2])`` is float (the default dtype), ints too;
        # ``sd.tensor`` keeps the data's dtype. ``dtype=`` (shendu's own) picks one.
        self._init(_legacy_data(args, dtype), device, requires_grad)

    def _init(self, arr, device=None, requires_grad=False):
        """Fill in a new tensor around backend array ``arr`` (subclasses start here)."""
        if device is not None:
            arr = to_device(arr, device)
        self._data = arr
        self.grad = None
        self.grad_fn = None
        self._out_idx = 0
        self._version = [0]
        self._hooks = None
        self._retains_grad = False
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @staticmethod
    def _wrap(data, node=None, idx=0):
        """Fast internal constructor: ``data`` is already a backend array."""
        if data.__class__ is not _ndarray and (cuda.ndarray_type is None
                                               or data.__class__ is not cuda.ndarray_type):
            data = np.asarray(data)  # NumPy reductions hand back scalars, not 0-d arrays
        t = _new(Tensor)
        t._data = data
        t.requires_grad = node is not None
        t.grad = None
        t.grad_fn = node
        t._out_idx = idx
        t._version = [0]
        t._hooks = None
        t._retains_grad = False
        return t

    # ------------------------------------------------------------------ properties
    @property
    def data(self) -> Tensor:
        """A tensor sharing this one's memory, cut from the graph (like PyTorch's ``.data``).
        Unlike PyTorch's, it shares the version counter too (shendu checks no saved tensors
        against it): a write through ``p.data`` shows to whatever caches ``p``'s contents,
        such as ``sd.compile``'s packed weights."""
        t = Tensor._wrap(self._data)
        t._version = self._version
        return t

    @data.setter
    def data(self, value):
        self._data = _asarray(value)

    @property
    def shape(self) -> tuple:
        return self._data.shape

    @property
    def ndim(self) -> int:
        return self._data.ndim

    @property
    def dtype(self) -> dtypes.dtype:
        return dtypes._of(self._data.dtype)

    @property
    def device(self) -> Device:
        return device_of(self._data)

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    @property
    def itemsize(self) -> int:
        return self._data.itemsize

    @property
    def nbytes(self) -> int:
        return self._data.nbytes

    @property
    def T(self) -> Tensor:
        return self.permute(*range(self.ndim - 1, -1, -1))

    @property
    def mT(self) -> Tensor:
        return self.transpose(-2, -1)

    def size(self, dim=None):
        return self._data.shape if dim is None else self._data.shape[dim]

    def numel(self) -> int:
        return int(self._data.size)

    def dim(self) -> int:
        return self._data.ndim

    def element_size(self) -> int:
        return self._data.itemsize

    def is_floating_point(self) -> bool:
        return self._data.dtype.kind == "f"

    def is_contiguous(self) -> bool:
        return bool(self._data.flags.c_contiguous)

    # ------------------------------------------------------------------ conversion
    def numpy(self) -> np.ndarray:
        """The data as a NumPy array (sharing memory on the CPU; copied from a GPU)."""
        if self.requires_grad and _State.enabled:
            raise RuntimeError("numpy(): the tensor requires grad; call .detach().numpy()")
        return to_device(self._data, "cpu")

    def __array__(self, dtype=None, copy=None):
        arr = to_device(self._data, "cpu")
        return arr if dtype is None else arr.astype(dtype, copy=False)

    def __dlpack__(self, *, stream=None, max_version=None, dl_device=None, copy=None):
        """A DLPack capsule sharing this tensor's memory (see ``shendu.from_dlpack``)."""
        from .interop.dlpack import to_dlpack_capsule

        return to_dlpack_capsule(self, stream=stream, max_version=max_version,
                                 dl_device=dl_device, copy=copy)

    def __dlpack_device__(self):
        return self._data.__dlpack_device__()

    def item(self):
        if self._data.size != 1:
            from .errors import ShapeError

            raise ShapeError(f"item(): only one-element tensors can be converted to a Python "
                             f"number, this one has shape {self.shape}")
        return self._data.reshape(()).item()

    def tolist(self):
        return to_device(self._data, "cpu").tolist()

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        if self._data.dtype.kind not in "iub":
            raise TypeError(f"only integer tensors can be used as an index, got {self.dtype}")
        return int(self.item())

    def __bool__(self):
        if self._data.size != 1:
            raise RuntimeError(f"bool(): the truth value of a tensor with {self._data.size} "
                               "elements is ambiguous; use .any() or .all()")
        return bool(self.item())

    def __len__(self):
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    def __iter__(self):
        if self._data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self._data.shape[0]))

    def __hash__(self):
        return id(self)

    def __repr__(self):
        arr = to_device(self._data, "cpu")
        fixed = arr.dtype.kind == "f" and arr.size and not np.all(
            np.mod(arr[np.isfinite(arr)], 1) == 0)  # integral floats print as "2.", as torch
        from .printing import array2string_args

        body = np.array2string(arr, separator=", ", prefix="tensor(",
                               floatmode="fixed" if fixed else "maxprec",
                               **array2string_args(arr))
        extras = []
        usual = (dtypes.get_default_dtype(), dtypes.int64, dtypes.bool)
        if arr.dtype not in usual or arr.size == 0:
            extras.append(f"dtype=shendu.{arr.dtype}")
        if self.device.type != "cpu":
            extras.append(f"device='{self.device}'")
        if self.grad_fn is not None:
            extras.append(f"grad_fn=<{self.grad_fn.name}>")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + ", ".join([body] + extras) + ")"

    __str__ = __repr__

    def to(self, *args, **kwargs) -> Tensor:
        """``to(dtype)``, ``to(device)``, ``to(device, dtype)`` or ``to(other_tensor)``."""
        dtype = kwargs.pop("dtype", None)
        device = kwargs.pop("device", None)
        kwargs.pop("non_blocking", None)
        kwargs.pop("copy", None)
        if kwargs:
            raise TypeError(f"to(): unexpected arguments {sorted(kwargs)}")
        for a in args:
            if isinstance(a, Tensor):
                dtype, device = a.dtype, a.device
            elif isinstance(a, (str, Device)) and str(a).split(":")[0] in ("cpu", "cuda"):
                device = a
            else:
                dtype = a
        out = self
        if device is not None and as_device(device) != self.device:
            from .ops.movement import to_device as _to_device

            out = _to_device(out, as_device(device))
        if dtype is not None and dtypes.as_dtype(dtype) != out.dtype:
            out = out.type(dtype)
        return out

    def cpu(self) -> Tensor:
        return self.to("cpu")

    def cuda(self, device=None) -> Tensor:
        return self.to(Device("cuda", device if isinstance(device, int) else None)
                       if not isinstance(device, (str, Device)) else device)

    def float(self) -> Tensor:
        return self.type(dtypes.float32)

    def double(self) -> Tensor:
        return self.type(dtypes.float64)

    def half(self) -> Tensor:
        return self.type(dtypes.float16)

    def long(self) -> Tensor:
        return self.type(dtypes.int64)

    def int(self) -> Tensor:
        return self.type(dtypes.int32)

    def bool(self) -> Tensor:
        return self.type(dtypes.bool)

    # ------------------------------------------------------------------ autograd
    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if requires_grad and self._data.dtype.kind not in "fc":
            raise RuntimeError(f"requires_grad_: only floating-point tensors can require "
                               f"gradients, this one is {self.dtype}")
        if not requires_grad and self.grad_fn is not None:
            raise RuntimeError("requires_grad_(False): only leaf tensors can be set; "
                               "use detach() on a tensor computed by an op")
        self.requires_grad = bool(requires_grad)
        return self

    def detach(self) -> Tensor:
        """The same data, cut from the graph (shares memory and version counter)."""
        t = Tensor._wrap(self._data)
        t._version = self._version
        return t

    def detach_(self) -> Tensor:
        self.grad_fn = None
        self.requires_grad = False
        return self

    def retain_grad(self) -> None:
        """Keep ``.grad`` for this non-leaf tensor after backward."""
        if self.grad_fn is None or self._retains_grad:
            return
        import weakref

        ref = weakref.ref(self)

        def keep(grad):
            t = ref()
            if t is not None:
                t.grad = grad.clone() if t.grad is None else t.grad + grad
        self._retains_grad = True
        self.register_hook(keep)

    def register_hook(self, hook):
        """Call ``hook(grad)`` when this tensor's gradient is computed; a returned tensor
        replaces the gradient. Returns a handle whose ``remove()`` unregisters it."""
        if not self.requires_grad:
            raise RuntimeError("register_hook: cannot register a hook on a tensor that "
                               "does not require grad")
        if self.grad_fn is None:
            if self._hooks is None:
                self._hooks = []
            lst = self._hooks
        else:
            from .autograd.engine import hooked_backward

            d = self.grad_fn.__dict__
            lst = d.setdefault("hooks", {}).setdefault(self._out_idx, [])
            d["backward"] = hooked_backward
        lst.append(hook)
        return _HookHandle(lst, hook)

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad``.

        ``gradient`` is required unless this tensor holds a single element. With
        ``create_graph=True`` the backward pass is recorded, so the ``.grad`` it leaves can
        be differentiated again (a gradient penalty, a Hessian-vector product).
        """
        if not self.requires_grad:
            raise RuntimeError("backward: this tensor does not require grad and has no "
                               "grad_fn; did you compute it under no_grad() or from tensors "
                               "without requires_grad=True?")
        if gradient is None:
            if self._data.size != 1:
                raise RuntimeError(f"backward: grad can be created implicitly only for a "
                                   f"single-element output, this one has shape {self.shape}; "
                                   "pass gradient= a tensor of that shape")
            xp = get_array_module(self._data)
            g = xp.ones(self._data.shape, self._data.dtype)
        else:
            g = gradient if create_graph and isinstance(gradient, Tensor) else \
                _asarray(gradient)
            if g.shape != self._data.shape:
                raise RuntimeError(f"backward: gradient has shape {g.shape} but the output "
                                   f"has shape {self.shape}")
            if g.dtype != self._data.dtype:
                g = g.type(self.dtype) if isinstance(g, Tensor) else g.astype(self.dtype)
        edge = (self.grad_fn, self._out_idx) if self.grad_fn is not None else self
        if inputs is not None:
            from .autograd import grad as _grad

            inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
            grads = _grad([self], inputs, [g if isinstance(g, Tensor) else Tensor._wrap(g)],
                          retain_graph=retain_graph, create_graph=create_graph,
                          allow_unused=True)
            for t, gr in zip(inputs, grads):
                if gr is not None:
                    t.grad = gr if t.grad is None else t.grad + gr
            return
        if create_graph:
            from .autograd.graph_backward import run_backward_graph

            g = g if isinstance(g, Tensor) else Tensor._wrap(g)
            run_backward_graph([(edge, g)], retain_graph=retain_graph is None or
                               bool(retain_graph))
            return
        engine.run_backward([(edge, g)], retain_graph=bool(retain_graph))

    # ------------------------------------------------------------------ in-place writes
    def _inplace(self, fn, *others, op=None):
        """Apply the out-of-place ``fn(self, *others)`` and write the result into ``self``.

        When gradients are being recorded the tensor takes the new op as its ``grad_fn``;
        ops that saved the old contents will see the bumped version and refuse to run.
        """
        op = op or "in-place op"
        _check_writable(self, op)
        if _State.enabled and (self.requires_grad or any(
                isinstance(o, Tensor) and o.requires_grad for o in others)):
            if self.grad_fn is None and self.requires_grad:
                raise RuntimeError(
                    f"{op}: in-place op on a leaf tensor that requires grad; wrap the update "
                    "in sd.no_grad() (as optimizers do) or clone() the tensor first")
            src = Tensor._wrap(self._data.copy(), self.grad_fn, self._out_idx)
            src.requires_grad = self.requires_grad
            new = fn(src, *others)
            _write(self, new._data, op)
            self.grad_fn, self._out_idx, self.requires_grad = new.grad_fn, new._out_idx, True
        else:
            with no_grad():
                new = fn(self, *others)
            _write(self, new._data, op)
        self._version[0] += 1
        return self

    def _arith_(self, ufunc, fn, other, op=None):
        """In-place arithmetic: straight into the array when nothing is being recorded."""
        if _State.enabled and (self.requires_grad or (isinstance(other, Tensor)
                                                      and other.requires_grad)):
            return self._inplace(fn, other, op=op)
        o = other._data if isinstance(other, Tensor) else other
        try:
            ufunc(self._data, o, out=self._data)
        except (ValueError, TypeError) as exc:
            raise _write_error(op or ufunc.__name__, self, o, exc) from None
        self._version[0] += 1
        return self

    def add_(self, other, alpha=1):
        if alpha != 1:
            other = other * alpha
        return self._arith_(np.add, lambda a, b: a + b, other, op="add_")

    def sub_(self, other, alpha=1):
        if alpha != 1:
            other = other * alpha
        return self._arith_(np.subtract, lambda a, b: a - b, other, op="sub_")

    def mul_(self, other):
        return self._arith_(np.multiply, lambda a, b: a * b, other, op="mul_")

    def div_(self, other):
        return self._arith_(np.true_divide, lambda a, b: a / b, other, op="div_")

    __iadd__ = add_
    __isub__ = sub_
    __imul__ = mul_
    __itruediv__ = div_

    def pow_(self, exponent):
        return self._inplace(lambda a, e: a ** e, exponent, op="pow_")

    def clamp_(self, min=None, max=None):
        return self._inplace(lambda a: a.clamp(min, max), op="clamp_")

    def neg_(self):
        return self._inplace(lambda a: -a, op="neg_")

    def exp_(self):
        return self._inplace(lambda a: a.exp(), op="exp_")

    def sqrt_(self):
        return self._inplace(lambda a: a.sqrt(), op="sqrt_")

    def relu_(self):
        return self._inplace(lambda a: a.relu(), op="relu_")

    def sigmoid_(self):
        return self._inplace(lambda a: a.sigmoid(), op="sigmoid_")

    def tanh_(self):
        return self._inplace(lambda a: a.tanh(), op="tanh_")

    def masked_fill_(self, mask, value):
        return self._inplace(lambda a, m: a.masked_fill(m, value), mask, op="masked_fill_")

    def zero_(self):
        return self.fill_(0)

    def fill_(self, value):
        if _State.enabled and self.requires_grad:
            return self._inplace(lambda a: a * 0 + value, op="fill_")
        _check_writable(self, "fill_")
        _write(self, value._data if isinstance(value, Tensor) else value, "fill_")
        self._version[0] += 1
        return self

    def copy_(self, src):
        """Write ``src`` (broadcast to this shape, cast to this dtype and device) into self."""
        src = src if isinstance(src, Tensor) else Tensor._wrap(_asarray(src))
        if _State.enabled and (self.requires_grad or src.requires_grad):
            return self._inplace(lambda a, s: a * 0 + s.to(a.dtype), src, op="copy_")
        _check_writable(self, "copy_")
        _write(self, to_device(src._data, self.device), "copy_")
        self._version[0] += 1
        return self

    def uniform_(self, a=0.0, b=1.0, generator=None):
        from .random import _rng

        with no_grad():
            return self.copy_(Tensor._wrap(_rng(generator).uniform(a, b, self.shape)))

    def normal_(self, mean=0.0, std=1.0, generator=None):
        from .random import _rng

        with no_grad():
            return self.copy_(Tensor._wrap(_rng(generator).normal(mean, std, self.shape)))

    def bernoulli_(self, p=0.5, generator=None):
        from .random import _rng

        with no_grad():
            return self.copy_(Tensor._wrap(_rng(generator).random(self.shape) < p))

    def __setitem__(self, index, value):
        from .ops.indexing import set_region

        if isinstance(index, Tensor):
            index = index._data
        _check_writable(self, "setitem")
        if _State.enabled and (self.requires_grad or
                               (isinstance(value, Tensor) and value.requires_grad)):
            self._inplace(lambda a, v: set_region(a, index, v),
                          value if isinstance(value, Tensor) else Tensor._wrap(
                              get_array_module(self._data).asarray(value, self.dtype)),
                          op="setitem")
            return
        idx = _index_arrays(index)
        v = value._data if isinstance(value, Tensor) else value
        try:
            self._data[idx] = v
        except IndexError as exc:
            raise IndexError(f"setitem: {exc} (tensor of shape {self.shape})") from None
        except ValueError as exc:
            region = self._data[idx].shape
            vshape = getattr(v, "shape", np.shape(v)) if not isinstance(v, str) else None
            if vshape is None:
                raise
            from .errors import ShapeError

            raise ShapeError(f"setitem: value of shape {tuple(vshape)} cannot be broadcast "
                             f"to the indexed region of shape {region} (tensor of shape "
                             f"{self.shape})") from exc
        self._version[0] += 1


def _check_writable(t, op):
    if not getattr(t._data.flags, "writeable", True):
        raise _readonly_error(op, t)


def _readonly_error(op, t):
    from .errors import ReadOnlyError

    if any(s == 0 for s, n in zip(t._data.strides, t._data.shape) if n > 1):
        why = ("it is an expand()ed (broadcast) tensor: more than one element refers to a "
               "single memory location")
    else:
        why = ("it is read-only: view() of a tensor whose memory layout (e.g. a convolution "
               "output, stored channel-major) needs a copy returns a copy that cannot be "
               "written through")
    return ReadOnlyError(f"{op}: cannot write into this tensor of shape {t.shape}: {why}; "
                         "clone() it first, or write into the original tensor")


def _write(t, value, op):
    """``t._data[...] = value`` with NumPy's errors reworded for the op."""
    try:
        t._data[...] = value
    except (ValueError, TypeError) as exc:
        raise _write_error(op, t, value, exc) from None


def _write_error(op, t, other, exc):
    """A clear error for an in-place write NumPy refused (``exc``): a read-only target, a
    result larger than the tensor, or a dtype the tensor cannot hold."""
    from .errors import DTypeError, ShapeError

    if not getattr(t._data.flags, "writeable", True):
        return _readonly_error(op, t)
    oshape = tuple(getattr(other, "shape", ()))
    try:
        res = np.broadcast_shapes(t.shape, oshape)
    except ValueError:
        return ShapeError(f"{op}: shapes {t.shape} and {oshape} cannot be broadcast together "
                          "(trailing dimensions must be equal or 1)")
    if res != t.shape:
        return ShapeError(f"{op}: the result has shape {res} but the tensor written into has "
                          f"shape {t.shape}; an in-place op cannot change a tensor's shape "
                          "(use the out-of-place op instead)")
    odt = getattr(other, "dtype", None)
    if isinstance(exc, TypeError) and odt is not None:
        res_dt = dtypes._of(np.result_type(t._data.dtype, odt))
        return DTypeError(f"{op}: the result has dtype {res_dt} but the tensor written into "
                          f"is {t.dtype}; an "
                          "in-place op keeps the tensor's dtype (convert with .to(...) "
                          "first)")
    return exc


def _index_arrays(index):
    """Replace tensors inside an index by their arrays."""
    if isinstance(index, Tensor):
        return index._data
    if isinstance(index, tuple):
        return tuple(i._data if isinstance(i, Tensor) else i for i in index)
    return index


class _HookHandle:
    def __init__(self, lst, hook):
        self._lst, self._hook = lst, hook

    def remove(self):
        if self._hook in self._lst:
            self._lst.remove(self._hook)


function._make = Tensor._wrap
