"""The allow-list unpickler behind :func:`shendu.interop.pytorch.load`.

``pickle.Unpickler`` asks ``find_class`` for every global a pickle names (``GLOBAL``,
``STACK_GLOBAL``, ``INST``, ``OBJ`` and the copyreg ``EXT`` codes all go through it), and
``REDUCE``/``NEWOBJ`` can only call what ``find_class`` returned. So answering with
shendu's own inert builders for the few globals a ``torch.save`` file needs, and refusing
every other name, means no callable from the file ever runs. The builders return records
(``TensorRecord``, ``StorageRef``) that refuse ``BUILD`` state; turning them into tensors
happens after unpickling, when the whole file has been checked.
"""
from __future__ import annotations

import io
import pickle
from collections import OrderedDict

# storage classes of torch.save files -> element type (torch's dtype names)
STORAGE_DTYPES = {
    "DoubleStorage": "float64", "FloatStorage": "float32", "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32",
    "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8",
    "BoolStorage": "bool", "ComplexFloatStorage": "complex64",
    "ComplexDoubleStorage": "complex128", "UntypedStorage": "uint8",
}
# torch dtypes a _rebuild_tensor_v3 call may name; shendu says which ones it lacks later
TORCH_DTYPES = {
    "float64", "float32", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8",
    "bool", "complex64", "complex128", "complex32", "uint16", "uint32", "uint64",
    "float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz", "float8_e8m0fnu",
    "float4_e2m1fn_x2", "qint8", "quint8", "qint32", "quint4x2", "quint2x4", "bits8",
    "bits16", "bits1x8", "bits2x4", "bits4x2",
}


UnpicklingError = pickle.UnpicklingError


class RefusedGlobal(pickle.UnpicklingError):
    """A pickle named a global outside the allow-list; nothing it names was called."""

    def __init__(self, qualname: str) -> None:
        super().__init__(qualname)
        self.qualname = qualname


class _Inert:
    """Base of the builders' records: ``BUILD`` (``__setstate__``) on them is refused."""

    __slots__ = ()

    def __setstate__(self, state):
        raise pickle.UnpicklingError(f"unexpected state for a {type(self).__name__}")


class StorageType(_Inert):
    __slots__ = ("name", "dtype")

    def __init__(self, name: str) -> None:
        self.name, self.dtype = name, STORAGE_DTYPES[name]


class TorchDtype(_Inert):
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


class StorageRef(_Inert):
    """A storage named by a persistent id: its key, element type and element count."""

    __slots__ = ("key", "dtype", "numel", "location", "view")

    def __init__(self, key, dtype, numel, location, view=None) -> None:
        self.key, self.dtype, self.numel, self.location, self.view = \
            key, dtype, numel, location, view


class TensorRecord(_Inert):
    """What ``torch._utils._rebuild_tensor_v*`` would have built, as plain numbers."""

    __slots__ = ("storage", "offset", "size", "stride", "dtype", "parameter", "requires_grad")

    def __init__(self, storage, offset, size, stride, dtype=None, requires_grad=False):
        if not isinstance(storage, StorageRef):
            raise pickle.UnpicklingError(f"a tensor's storage is a {type(storage).__name__}")
        if dtype is not None and not isinstance(dtype, TorchDtype):
            raise pickle.UnpicklingError(f"a tensor's dtype is a {type(dtype).__name__}")
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride
        self.dtype = storage.dtype if dtype is None else dtype.name
        self.parameter, self.requires_grad = False, bool(requires_grad)


class SafeOrderedDict(OrderedDict):
    """``collections.OrderedDict`` as a pickle may rebuild it: ``BUILD`` state (PyTorch
    attaches ``_metadata`` to state dicts) is accepted and dropped."""

    def __setstate__(self, state):
        pass


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored):
    return TensorRecord(storage, storage_offset, size, stride)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    return TensorRecord(storage, storage_offset, size, stride, requires_grad=requires_grad)


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, backward_hooks,
                       dtype, metadata=None):
    return TensorRecord(storage, storage_offset, size, stride, dtype, requires_grad)


def _rebuild_parameter(data, requires_grad, backward_hooks, state=None):
    if not isinstance(data, TensorRecord):
        raise pickle.UnpicklingError(f"a parameter's data is a {type(data).__name__}")
    data.parameter, data.requires_grad = True, bool(requires_grad)
    return data


def _encode(text, encoding="latin1"):
    """``_codecs.encode`` as protocol-2 pickles use it for bytes: latin-1 text only."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("_codecs.encode is allowed only for latin-1 text")
    return text.encode("latin-1")


def _size(*args):
    return tuple(*args)


def _device(*args):
    return ":".join(str(a) for a in args)


_ALLOWED = {
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("collections", "OrderedDict"): SafeOrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("_codecs", "encode"): _encode,
    ("torch", "Size"): _size,
    ("torch", "device"): _device,
}


class Unpickler(pickle.Unpickler):
    """Rebuilds only tensors, storages, OrderedDicts and plain containers; the caller's
    ``persistent_load`` turns a storage's persistent id into a :class:`StorageRef`."""

    def __init__(self, file, persistent_load) -> None:
        super().__init__(file, fix_imports=True, encoding="utf-8")
        self._storage = persistent_load

    def find_class(self, module: str, name: str):
        if module == "__builtin__":  # protocol 2 spells builtins the Python 2 way
            module = "builtins"
        fn = _ALLOWED.get((module, name))
        if fn is not None:
            return fn
        if module in ("torch", "torch.storage") and name in STORAGE_DTYPES:
            return StorageType(name)
        if module == "torch" and name in TORCH_DTYPES:
            return TorchDtype(name)
        raise RefusedGlobal(f"{module}.{name}")

    def persistent_load(self, pid):
        return self._storage(pid)


def _no_persistent_ids(pid):
    raise pickle.UnpicklingError(f"unexpected persistent id {pid!r:.60}")


def unpickle(data: bytes, persistent_load=None, offset: int = 0):
    """Unpickle the pickle of ``data`` that starts at ``offset``; returns the object and
    the offset where the pickle ended.

    Raises :class:`RefusedGlobal` for a global outside the allow-list and
    ``pickle.UnpicklingError`` (or the stdlib's other parse errors) for a broken pickle.
    """
    buf = io.BytesIO(data)
    buf.seek(offset)
    obj = Unpickler(buf, persistent_load or _no_persistent_ids).load()
    return obj, buf.tell()
