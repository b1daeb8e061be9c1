"""Save and load tensors, state dicts and checkpoints without pickle.

``save`` writes a zip archive (readable by ``numpy.load`` too): every array is a ``.npy``
member and ``shendu.json`` describes the nesting around them: dicts (with their key types),
OrderedDicts, lists, tuples, tensors, arrays and plain scalars, including big integers such
as NumPy's generator state. Loading reads arrays with ``allow_pickle=False``, so a file can
never run code. Writes go to a temporary file that is fsynced and then renamed over the
target, so a crash mid-save leaves the previous file intact.
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import os
import secrets
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from typing import IO, Any, Union

import numpy as np

from .backend import cuda as _cuda
from .backend import to_device
from .tensor import Tensor

PathOrFile = Union[str, os.PathLike, IO[bytes]]
STRUCTURE = "shendu.json"
FORMAT_VERSION = 1
_SCALARS = (type(None), bool, int, float, str)


def _where(path: str, key) -> str:
    return f"{path}[{key!r}]"


class _Encoder:
    """Turn a nested object into JSON-ready nodes plus a list of arrays."""

    def __init__(self) -> None:
        self.arrays: list[np.ndarray] = []
        self._memo: dict[int, int] = {}  # id(tensor or array) -> index, keeps shared ones shared
        self._active: set[int] = set()

    def _array(self, obj, data) -> int:
        if id(obj) not in self._memo:
            arr = np.asarray(to_device(data, "cpu"))
            if arr.dtype.hasobject:
                raise TypeError(f"save: cannot store an array of dtype {arr.dtype} (object "
                                "arrays need pickle)")
            self._memo[id(obj)] = len(self.arrays)
            self.arrays.append(arr)
        return self._memo[id(obj)]

    def node(self, obj, where: str = "obj"):
        if isinstance(obj, np.generic):  # before float: np.float64 subclasses float
            return {"t": "npscalar", "a": self._array(obj, np.asarray(obj))}
        if obj is None or isinstance(obj, bool):
            return obj
        if isinstance(obj, str):
            return str(obj)
        if isinstance(obj, int):
            return int(obj)
        if isinstance(obj, float):
            return float(obj) if math.isfinite(obj) else {"t": "float", "v": repr(float(obj))}
        if isinstance(obj, Tensor):
            return {"t": "tensor", "a": self._array(obj, obj._data), "device": str(obj.device)}
        if isinstance(obj, np.ndarray):
            return {"t": "ndarray", "a": self._array(obj, obj)}
        if isinstance(obj, (dict, list, tuple)):
            if id(obj) in self._active:
                raise ValueError(f"save: {where} contains itself (a reference cycle)")
            self._active.add(id(obj))
            try:
                return self._container(obj, where)
            finally:
                self._active.discard(id(obj))
        raise TypeError(f"save: cannot store {type(obj).__name__} at {where}; supported are "
                        "Tensor, numpy arrays and scalars, dict/OrderedDict, list, tuple, int, "
                        "float, str, bool and None")

    def _container(self, obj, where: str):
        if isinstance(obj, dict):
            items = []
            for k, v in obj.items():
                if not isinstance(k, (*_SCALARS, tuple, np.generic)):
                    raise TypeError(f"save: dict key {k!r} of type {type(k).__name__} at "
                                    f"{where} is not supported (use str, int, float, bool, "
                                    "None or tuples of those)")
                items.append([self.node(k, where), self.node(v, _where(where, k))])
            kind = "odict" if isinstance(obj, OrderedDict) else "dict"
            return {"t": kind, "items": items}
        kind = "tuple" if isinstance(obj, tuple) else "list"
        return {"t": kind, "items": [self.node(v, _where(where, i)) for i, v in enumerate(obj)]}


def _write_member(zf: zipfile.ZipFile, name: str, arr: np.ndarray) -> None:
    with zf.open(name, "w", force_zip64=True) as member:
        np.lib.format.write_array(member, arr, allow_pickle=False)


def _write_archive(f: IO[bytes], structure: dict, arrays: list[np.ndarray], compress: bool):
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(f, "w", compression=method) as zf:
        zf.writestr(STRUCTURE, json.dumps(structure, allow_nan=False))
        for i, arr in enumerate(arrays):
            _write_member(zf, f"arr_{i}.npy", arr)


def _atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> None:
    """Write via a temp file in the same directory, fsync it, then rename it over ``path``."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"save: directory {directory!r} for {path!r} does not exist")
    # O_EXCL on a fresh random name: never clobbers another writer's temp file; mode 0o666
    # lets the umask apply as for a normal open()
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # persist the rename itself (POSIX only)
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def save(obj: Any, f: PathOrFile, *, compress: bool = False) -> None:
    """Save tensors, arrays, (nested) state dicts or a checkpoint to ``f`` without pickle.

    Args:
        obj: a Tensor or ndarray, or dicts/OrderedDicts/lists/tuples nesting them with
            int/float/str/bool/None (dict keys may be int, str, float, bool, None, tuple).
        f: a path (written atomically) or a binary file object.
        compress: deflate the arrays (smaller, slower).

    >>> import os, tempfile, shendu as sd
    >>> path = os.path.join(tempfile.mkdtemp(), "ckpt.sd")
    >>> save({"w": sd.tensor([1.0, 2.0]), "epoch": 3, "lrs": (0.1, 0.01)}, path)
    >>> load(path)
    {'w': tensor([1., 2.]), 'epoch': 3, 'lrs': (0.1, 0.01)}
    """
    enc = _Encoder()
    structure = {"format": "shendu", "version": FORMAT_VERSION, "root": enc.node(obj)}
    write = lambda fh: _write_archive(fh, structure, enc.arrays, compress)  # noqa: E731
    if hasattr(f, "write"):
        write(f)
    else:
        _atomic_write(f, write)


class _Decoder:
    def __init__(self, zf: zipfile.ZipFile, name: str, map_location) -> None:
        self.zf, self.name, self.map_location = zf, name, map_location
        self._arrays: dict[int, np.ndarray] = {}
        self._tensors: dict[int, Tensor] = {}

    def bad(self, what: str) -> ValueError:
        return ValueError(f"load: {self.name} is corrupt ({what}); expected a file written "
                          "by shendu.save")

    def array(self, index) -> np.ndarray:
        if not isinstance(index, int) or isinstance(index, bool):
            raise self.bad(f"array reference {index!r}")
        if index not in self._arrays:
            self._arrays[index] = self.member(f"arr_{index}.npy")
        return self._arrays[index]

    def member(self, member: str) -> np.ndarray:
        fmt = np.lib.format
        try:
            info = self.zf.getinfo(member)
            with self.zf.open(info) as fh:  # check the header before allocating the array
                major, _ = fmt.read_magic(fh)
                read_header = fmt.read_array_header_1_0 if major == 1 else \
                    fmt.read_array_header_2_0
                shape, _, dtype = read_header(fh)
            if math.prod(shape) * dtype.itemsize > info.file_size:
                raise ValueError(f"header promises shape {shape} of {dtype} but the member "
                                 f"holds only {info.file_size} bytes")
            with self.zf.open(info) as fh:
                return fmt.read_array(fh, allow_pickle=False)
        except KeyError:
            raise self.bad(f"array {member} is missing") from None
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
            raise self.bad(f"array {member}: {exc}") from exc

    def device(self, saved: str) -> str:
        loc = self.map_location
        if isinstance(loc, Mapping):
            return str(loc.get(saved, saved))
        if loc is None:  # where it was saved, or the CPU on a machine without that GPU
            return saved if saved == "cpu" or _cuda.is_available() else "cpu"
        return str(loc)

    def node(self, n):
        if n is None or isinstance(n, (bool, int, float, str)):
            return n
        if not isinstance(n, dict) or "t" not in n:
            raise self.bad(f"unexpected structure entry {str(n)[:60]!r}")
        t = n["t"]
        if t == "tensor":
            idx, arr = n.get("a"), self.array(n.get("a"))
            if idx not in self._tensors:  # a tensor saved twice (tied weights) loads as one
                arr = to_device(arr, self.device(str(n.get("device", "cpu"))))
                self._tensors[idx] = Tensor._wrap(arr)
            return self._tensors[idx]
        if t == "ndarray":
            return self.array(n.get("a"))
        if t == "npscalar":
            return self.array(n.get("a"))[()]
        if t == "float" and n.get("v") in ("nan", "inf", "-inf"):
            return float(n["v"])
        if t in ("list", "tuple") and isinstance(n.get("items"), list):
            items = [self.node(v) for v in n["items"]]
            return tuple(items) if t == "tuple" else items
        if t in ("dict", "odict") and isinstance(n.get("items"), list):
            out = OrderedDict() if t == "odict" else {}
            for pair in n["items"]:
                if not (isinstance(pair, list) and len(pair) == 2):
                    raise self.bad("malformed dict item")
                key = self.node(pair[0])
                if not isinstance(key, Hashable):
                    raise self.bad(f"unhashable dict key {key!r:.60}")
                out[key] = self.node(pair[1])
            return out
        raise self.bad(f"unknown entry type {t!r}")


_PICKLE_NOTE = ("shendu never unpickles because loading a pickle can run arbitrary code; "
                "convert it to safetensors or re-save it with shendu.save")


def _describe(head: bytes) -> str:
    if head[:1] == b"\x80":
        return f"it looks like a pickle (torch.save / pickle.dump). {_PICKLE_NOTE}"
    return f"it starts with the bytes {head[:8]!r}"


@contextlib.contextmanager
def _open_read(f: PathOrFile):
    if hasattr(f, "read"):
        yield f if hasattr(f, "seek") and f.seekable() else io.BytesIO(f.read())
    else:
        with open(f, "rb") as fh:
            yield fh


def _name(f: PathOrFile) -> str:
    return repr(getattr(f, "name", "<file object>") if hasattr(f, "read") else os.fspath(f))


def load(f: PathOrFile, map_location=None) -> Any:
    """Load an object written by :func:`save`; never executes code from the file.

    Args:
        f: a path or binary file object.
        map_location: where tensors go: ``None`` (where they were saved, or the CPU when
            that GPU is unavailable), ``'cpu'``, ``'cuda'``/``'cuda:N'``, a ``Device``, or a
            dict such as ``{'cuda:0': 'cpu'}``. Arrays always load as NumPy arrays.

    Tensors come back with ``requires_grad=False``. Raises ``ValueError`` naming the file
    when it is not a shendu archive (truncated, random bytes, a pickle). A plain ``.npz``
    of arrays loads as a dict of arrays and a ``.npy`` as an array.
    """
    name = _name(f)
    with _open_read(f) as fh:
        start = fh.tell()
        head = fh.read(8)
        fh.seek(start)
        if head.startswith(b"\x93NUMPY"):
            try:
                return np.lib.format.read_array(fh, allow_pickle=False)
            except (ValueError, OSError, EOFError) as exc:
                raise ValueError(f"load: {name} is a corrupt or object-dtype .npy file "
                                 f"({exc})") from exc
        if not head.startswith(b"PK"):
            raise ValueError(f"load: {name} is not a shendu checkpoint (expected a zip "
                             f"archive written by shendu.save); {_describe(head)}")
        try:
            zf = zipfile.ZipFile(fh)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            raise ValueError(f"load: {name} is truncated or corrupt ({exc}); expected a "
                             "complete zip archive written by shendu.save") from exc
        with zf:
            return _load_archive(_Decoder(zf, name, map_location))


def _load_archive(dec: _Decoder) -> Any:
    names = dec.zf.namelist()
    if STRUCTURE not in names:
        if any(n.endswith(".pkl") for n in names):
            raise ValueError(f"load: {dec.name} is a PyTorch-style archive holding a pickle; "
                             f"{_PICKLE_NOTE}")
        if names and all(n.endswith(".npy") for n in names):  # a plain np.savez file
            return {n[:-4]: dec.member(n) for n in names}
        raise ValueError(f"load: {dec.name} is a zip archive without {STRUCTURE}; expected a "
                         "file written by shendu.save")
    try:
        structure = json.loads(dec.zf.read(STRUCTURE))
    except (ValueError, zipfile.BadZipFile, OSError, EOFError, RecursionError) as exc:
        raise dec.bad(f"unreadable {STRUCTURE}: {exc}") from exc
    if not isinstance(structure, dict) or structure.get("format") != "shendu":
        raise dec.bad(f"{STRUCTURE} is not a shendu structure")
    version = structure.get("version", 0)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(f"load: {dec.name} uses format version {version!r}; this shendu "
                         f"reads versions up to {FORMAT_VERSION} (upgrade shendu)")
    try:
        return dec.node(structure.get("root"))
    except RecursionError:
        raise dec.bad("nesting too deep") from None


def _flat_arrays(tensors: Mapping, fn: str) -> dict[str, np.ndarray]:
    if not isinstance(tensors, Mapping):
        raise TypeError(f"{fn}: expected a flat dict of name -> Tensor, got "
                        f"{type(tensors).__name__}")
    out = {}
    for k, v in tensors.items():
        if not isinstance(k, str):
            raise TypeError(f"{fn}: keys must be str, got {k!r}")
        if not isinstance(v, (Tensor, np.ndarray)):
            raise TypeError(f"{fn}: value for {k!r} is {type(v).__name__}; safetensors holds "
                            "only tensors in a flat dict (use shendu.save for nested data)")
        data = v._data if isinstance(v, Tensor) else v
        out[k] = np.asarray(to_device(data, "cpu"), order="C")  # keeps 0-d arrays 0-d
    return out


def save_safetensors(tensors: Mapping[str, Tensor], path: str | os.PathLike,
                     metadata: Mapping[str, str] | None = None) -> None:
    """Write a flat ``{name: Tensor}`` dict (e.g. a state dict) as a ``.safetensors`` file.

    Requires the optional ``safetensors`` package; the write is atomic like :func:`save`.

    >>> import os, tempfile, shendu as sd
    >>> path = os.path.join(tempfile.mkdtemp(), "model.safetensors")
    >>> save_safetensors({"fc.weight": sd.ones(2, 2)}, path)
    >>> load_safetensors(path)["fc.weight"]
    tensor([[1., 1.],
            [1., 1.]])
    """
    st = _safetensors("save_safetensors")
    arrays = _flat_arrays(tensors, "save_safetensors")
    blob = st.save(arrays, metadata=dict(metadata) if metadata else None)
    _atomic_write(path, lambda fh: fh.write(blob))


def load_safetensors(path: str | os.PathLike, device=None) -> OrderedDict[str, Tensor]:
    """Read a ``.safetensors`` file into an ``OrderedDict`` of tensors (on ``device``)."""
    st = _safetensors("load_safetensors")
    with open(path, "rb") as fh:
        blob = fh.read()
    try:
        arrays = st.load(blob)
    except Exception as exc:  # SafetensorError and friends: never trust a bad header
        raise ValueError(f"load_safetensors: {_name(path)} is not a valid safetensors file "
                         f"({exc}); {_describe(blob[:8])}") from exc
    dev = "cpu" if device is None else device
    return OrderedDict((k, Tensor._wrap(to_device(a, dev))) for k, a in arrays.items())


def _safetensors(fn: str):
    try:
        import safetensors.numpy as st
    except ImportError as exc:
        raise ImportError(f"{fn} needs the optional safetensors package: pip install "
                          "safetensors") from exc
    return st


__all__ = ["save", "load", "save_safetensors", "load_safetensors"]
