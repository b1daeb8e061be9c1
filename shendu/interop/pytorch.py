"""Read ``torch.save`` checkpoints without PyTorch and without running code from them.

Both of PyTorch's layouts load: the zip archive (``torch.save``'s default since 1.6: a
``data.pkl`` plus one raw member per storage) and the legacy stream (``_use_new_zipfile_
serialization=False``: a few pickles followed by the raw storages). The pickles go through
the allow-list unpickler in ``_unpickle``, which only records which storage, offset, shape
and strides each tensor has; the tensors are built afterwards as NumPy views of the
storages, so tensors that shared a storage in PyTorch share memory here too.
"""
from __future__ import annotations

import zipfile
from collections import OrderedDict
from collections.abc import Mapping

import numpy as np

from ..backend import cuda as _cuda
from ..backend import to_device
from ..serialization import _short
from ..tensor import Tensor
from . import _unpickle as up

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
_MAGIC_BYTES = LEGACY_MAGIC.to_bytes(10, "little")

# torch dtype -> (numpy type string without byte order, itemsize); bfloat16 is read as raw
# 16-bit words and widened to float32 (exactly: a bfloat16 is a float32's top half)
_NUMPY = {"float64": "f8", "float32": "f4", "float16": "f2", "bfloat16": "u2", "int64": "i8",
          "int32": "i4", "int16": "i2", "int8": "i1", "uint8": "u1", "bool": "b1"}
_ITEMSIZE = {"complex64": 8, "complex128": 16, "complex32": 4, "uint16": 2, "uint32": 4,
             "uint64": 8, "qint32": 4, "bits16": 2, **{k: int(v[1]) for k, v in _NUMPY.items()}}


class CheckpointError(ValueError):
    """A PyTorch checkpoint that shendu will not or cannot read (names the file)."""


def is_legacy(head: bytes) -> bool:
    """Whether ``head`` (the first bytes of a file) starts a legacy ``torch.save`` stream."""
    return head[:1] == b"\x80" and _MAGIC_BYTES in head[:32]


def is_torch_zip(names: list[str]) -> bool:
    return any(n.count("/") == 1 and n.endswith("/data.pkl") for n in names)


def place(saved: str, map_location) -> str:
    """The device a tensor saved on ``saved`` loads to (``torch.load``'s ``map_location``
    as a device, a name or a dict; saved GPUs fall back to the CPU without CuPy)."""
    if isinstance(map_location, Mapping):
        if saved in map_location:
            return str(map_location[saved])
        map_location = None
    if map_location is not None:
        return str(map_location)
    return saved if saved.startswith("cuda") and _cuda.is_available() else "cpu"


class _Reader:
    """Turns the records of an unpickled checkpoint into shendu tensors."""

    def __init__(self, name: str, map_location, byteorder: str = "<") -> None:
        self.name, self.map_location, self.byteorder = name, map_location, byteorder
        self.refs: dict[str, up.StorageRef] = {}
        self.raw: dict[str, np.ndarray] = {}  # storage key -> its bytes (uint8, writable)
        self._typed: dict[tuple[str, str], np.ndarray] = {}
        self._done: dict[int, object] = {}

    def bad(self, what: str) -> CheckpointError:
        return CheckpointError(f"load: {self.name} is not a readable PyTorch checkpoint: "
                               f"{what}")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
            raise up.UnpicklingError(f"unexpected persistent id {pid!r:.80}")
        kind, key, location, numel = pid[1:5]
        if len(pid) == 6 and pid[5] is not None:
            raise self.bad(f"storage {key!r} is a view of another storage, which only "
                           "PyTorch before 1.0 wrote; load and re-save it with a newer torch")
        if not (isinstance(kind, up.StorageType) and isinstance(key, str)
                and isinstance(location, str) and type(numel) is int and numel >= 0):
            raise up.UnpicklingError(f"malformed storage id {pid!r:.80}")
        ref = self.refs.get(key)
        if ref is None:
            ref = self.refs[key] = up.StorageRef(key, kind.dtype, numel, location)
        elif (ref.dtype, ref.numel) != (kind.dtype, numel):
            raise up.UnpicklingError(f"storage {key!r} is described twice differently")
        return ref

    def nbytes(self, ref: up.StorageRef) -> int:
        if ref.dtype not in _ITEMSIZE:
            raise self.bad(f"storage {ref.key!r} has element type torch.{ref.dtype}, which "
                           "shendu cannot read")
        return ref.numel * _ITEMSIZE[ref.dtype]

    def typed(self, ref: up.StorageRef, dtype: str, where: str) -> np.ndarray:
        """The storage as a flat array of ``dtype`` (shared by every tensor viewing it)."""
        if dtype not in _NUMPY:
            raise self.bad(f"the tensor at {where} has dtype torch.{dtype}, which shendu "
                           "does not have (it has float16/32/64, bfloat16 read as float32, "
                           "int8/16/32/64, uint8 and bool)")
        if (ref.key, dtype) not in self._typed:
            raw = self.raw[ref.key]
            size = int(_NUMPY[dtype][1])
            if raw.nbytes % size:
                raise self.bad(f"storage {ref.key!r} of {raw.nbytes} bytes does not hold "
                               f"whole torch.{dtype} elements")
            arr = raw.view(np.dtype(self.byteorder + _NUMPY[dtype]))
            if not arr.dtype.isnative:
                arr = arr.astype(arr.dtype.newbyteorder("="))
            if dtype == "bfloat16":  # the 16 bits are the top half of a float32
                arr = (arr.astype(np.uint32) << 16).view(np.float32)
            self._typed[ref.key, dtype] = arr
        return self._typed[ref.key, dtype]

    def tensor(self, rec: up.TensorRecord, where: str) -> Tensor:
        flat = self.typed(rec.storage, rec.dtype, where)
        size, stride, offset = rec.size, rec.stride, rec.offset
        ints = lambda xs: isinstance(xs, tuple) and all(type(x) is int and x >= 0 for x in xs)  # noqa: E731
        if not (ints(size) and ints(stride) and len(size) == len(stride)
                and type(offset) is int and offset >= 0):
            raise self.bad(f"the tensor at {where} has a malformed shape {size!r:.60}, "
                           f"stride {stride!r:.60} or offset {offset!r:.20}")
        # the last element the view touches must lie inside the storage
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        if 0 not in size and last >= flat.size:
            raise self.bad(f"the tensor at {where} (shape {size}, stride {stride}, offset "
                           f"{offset}) reaches past its storage of {flat.size} elements")
        item = flat.itemsize
        arr = np.lib.stride_tricks.as_strided(flat[min(offset, flat.size):], shape=size,
                                              strides=[s * item for s in stride])
        device = place(rec.storage.location, self.map_location)
        t = Tensor._wrap(arr if device == "cpu" else to_device(arr, device))
        if rec.parameter:
            from ..nn import Parameter

            return Parameter(t, requires_grad=rec.requires_grad)
        return t

    def build(self, obj, where: str = "checkpoint"):
        """A copy of the unpickled structure with tensors in place of the records; shared
        sub-objects stay shared (and a reference cycle stays a cycle)."""
        if obj is None or isinstance(obj, (bool, int, float, complex, str, bytes)):
            return obj
        done = self._done.get(id(obj))
        if done is not None:
            return done
        if isinstance(obj, up.TensorRecord):
            out = self._done[id(obj)] = self.tensor(obj, where)
            return out
        if isinstance(obj, dict):
            out = OrderedDict() if isinstance(obj, OrderedDict) else {}
            self._done[id(obj)] = out
            for k, v in obj.items():
                out[self.build(k, where)] = self.build(v, f"{where}[{k!r}]")
            return out
        if isinstance(obj, list):
            out = self._done[id(obj)] = []
            out.extend(self.build(v, f"{where}[{i}]") for i, v in enumerate(obj))
            return out
        if isinstance(obj, (tuple, set, frozenset)):
            out = type(obj)(self.build(v, f"{where}[{i}]") for i, v in enumerate(obj))
            self._done[id(obj)] = out
            return out
        raise self.bad(f"unexpected {type(obj).__name__} at {where}")

    def finish(self, root):
        try:
            return self.build(root)
        except RecursionError:
            raise self.bad("nesting too deep") from None


def _unpickle(reader: _Reader, data, offset: int = 0, storages: bool = False):
    try:
        return up.unpickle(data, reader.persistent_load if storages else None, offset)
    except up.RefusedGlobal as exc:
        raise CheckpointError(
            f"load: {reader.name} refers to {exc.qualname}, which shendu does not load: "
            "a checkpoint may only hold tensors, storages, OrderedDicts and plain "
            "containers (nothing from the file was run)") from None
    except CheckpointError:
        raise
    except Exception as exc:  # noqa: BLE001 - any parse failure of untrusted bytes
        raise reader.bad(f"broken pickle ({type(exc).__name__}: {_short(exc)})") from None


def _member(zf: zipfile.ZipFile, member: str, reader: _Reader) -> zipfile.ZipInfo:
    """A member's entry, refusing sizes beyond the archive (a zip bomb, a forged header)."""
    try:
        info = zf.getinfo(member)
    except KeyError:
        raise reader.bad(f"the archive lacks {member}") from None
    size = zf.fp.seek(0, 2)  # zipfile seeks to its own position before every read
    if info.file_size > size:
        raise reader.bad(f"{member} claims {info.file_size} bytes, more than the whole "
                         f"archive ({size} bytes)")
    return info


def _read_member(zf: zipfile.ZipFile, member: str, nbytes: int, reader: _Reader):
    info = _member(zf, member, reader)
    if info.compress_type != zipfile.ZIP_STORED or info.file_size != nbytes:
        raise reader.bad(f"{member} holds {info.file_size} bytes (compression "
                         f"{info.compress_type}); expected {nbytes} stored bytes")
    out = np.empty(nbytes, np.uint8)
    view, got = memoryview(out), 0
    with zf.open(info) as fh:
        while got < nbytes:
            n = fh.readinto(view[got:])
            if not n:
                raise reader.bad(f"{member} is truncated")
            got += n
        fh.read(1)  # reaching the end checks the member's CRC
    return out


def load_zip(zf: zipfile.ZipFile, name: str, map_location=None):
    """Load the checkpoint in the open zip archive ``zf`` (``name`` is for messages)."""
    names = zf.namelist()
    reader = _Reader(name, map_location)
    if any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
        raise reader.bad("it is a TorchScript archive (torch.jit.save); shendu reads "
                         "checkpoints written by torch.save")
    pkl = next(n for n in names if n.count("/") == 1 and n.endswith("/data.pkl"))
    prefix = pkl[: -len("data.pkl")]
    if prefix + "byteorder" in names:
        order = zf.read(_member(zf, prefix + "byteorder", reader)).decode("ascii", "replace")
        if order not in ("little", "big"):
            raise reader.bad(f"unknown byte order {order!r:.20}")
        reader.byteorder = "<" if order == "little" else ">"
    root, _ = _unpickle(reader, zf.read(_member(zf, pkl, reader)), storages=True)
    for key, ref in reader.refs.items():
        reader.raw[key] = _read_member(zf, f"{prefix}data/{key}", reader.nbytes(ref), reader)
    return reader.finish(root)


def load_legacy(data: bytearray, name: str, map_location=None):
    """Load a legacy (non-zip) ``torch.save`` stream held in ``data``."""
    reader = _Reader(name, map_location)
    magic, off = _unpickle(reader, data)
    if magic != LEGACY_MAGIC:
        raise reader.bad("wrong magic number")
    protocol, off = _unpickle(reader, data, off)
    if protocol != LEGACY_PROTOCOL:
        raise reader.bad(f"unknown legacy protocol {protocol!r:.20}")
    info, off = _unpickle(reader, data, off)
    if not isinstance(info, dict):
        raise reader.bad("malformed system info")
    endian = "little" if info.get("little_endian", True) else "big"
    reader.byteorder = "<" if endian == "little" else ">"
    root, off = _unpickle(reader, data, off, storages=True)
    keys, off = _unpickle(reader, data, off)
    if not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)):
        raise reader.bad("malformed list of storages")
    for key in keys:
        ref = reader.refs.get(key)
        if ref is None or key in reader.raw:
            raise reader.bad(f"unexpected storage {key!r:.40} in the data section")
        if off + 8 > len(data):
            raise reader.bad("truncated in the data section")
        count = int.from_bytes(data[off:off + 8], endian, signed=True)
        nbytes = reader.nbytes(ref)
        if count != ref.numel or off + 8 + nbytes > len(data):
            raise reader.bad(f"storage {key!r} is truncated or has a wrong size "
                             f"({count} elements, expected {ref.numel})")
        reader.raw[key] = np.frombuffer(data, np.uint8, nbytes, off + 8)
        off += 8 + nbytes
    missing = set(reader.refs) - set(reader.raw)
    if missing:
        raise reader.bad(f"the data of storage {sorted(missing)[0]!r} is missing")
    if off != len(data):
        raise reader.bad(f"{len(data) - off} unexpected bytes after the last storage")
    return reader.finish(root)


__all__ = ["CheckpointError", "is_legacy", "is_torch_zip", "load_legacy", "load_zip", "place"]
