"""MNIST, Fashion-MNIST and CIFAR-10 from their standard distribution files.

MNIST-style sets are read from IDX files (``train-images-idx3-ubyte[.gz]`` ...);
CIFAR-10 from its *binary* version (``cifar-10-batches-bin/*.bin``, fixed 3073-byte
records), never from the pickled Python version. With ``root=None`` files are looked for
in ``$SHENDU_DATA`` or ``~/.cache/shendu`` (and, for Fashion-MNIST, where Debian's
``dataset-fashion-mnist`` package installs them); ``download=True`` fetches missing files
from the standard mirrors, checking each against its published checksum.
"""
from __future__ import annotations

import gzip
import struct
import tarfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ._base import ImageArrayDataset
from ._files import DatasetNotFoundError, cache_dir, download, find_files, write_atomic

__all__ = ["read_idx", "MNIST", "FashionMNIST", "CIFAR10"]

_IDX_DTYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzip-compressed or not.

    The header is two zero bytes, a type code, the number of dimensions, then each
    dimension as a big-endian uint32; the data follows, big-endian, row-major.
    """
    path = Path(path)
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":  # gzip magic, whatever the file is called
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[0] or raw[1] or raw[2] not in _IDX_DTYPES or raw[3] == 0:
        raise ValueError(f"read_idx: {path} is not an IDX file (first bytes "
                         f"{raw[:4].hex()}, expected 0000 + type code + rank)")
    ndim, dtype = raw[3], np.dtype(_IDX_DTYPES[raw[2]])
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"read_idx: {path} ends inside its header (truncated file?)")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(f"read_idx: {path}: the header says shape {shape} ({expected} bytes) "
                         f"but the file holds {len(raw) - header} bytes of data "
                         "(truncated or corrupted?)")
    arr = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return arr if dtype.isnative else arr.astype(dtype.newbyteorder("="))


def _not_found(name: str, files: list[str], dirs: list[Path], hint: str) -> str:
    searched = "\n".join(f"  {d}" for d in dirs)
    return (f"{name}: dataset files not found: {', '.join(files)} (each may also be .gz).\n"
            f"Searched:\n{searched}\n{hint}")


class MNIST(ImageArrayDataset):
    """The MNIST handwritten digits (60,000 training / 10,000 test images, 28x28).

    Args:
        root: folder holding the files (also looked for in ``root/MNIST/raw`` and
            ``root/MNIST``); None searches ``cache_dir()/MNIST``.
        train: the training set (else the test set).
        transform: applied to each ``(1, 28, 28)`` uint8 image (or batch; see
            ``ImageArrayDataset``).
        target_transform: applied to each label.
        download: fetch missing files from the standard mirrors (checksum-verified).

    ``.data`` is ``(N, 28, 28)`` uint8, ``.targets`` ``(N,)`` int64; samples are
    ``((1, 28, 28) uint8 array, int)``.
    """

    folder = "MNIST"
    mirrors = ("https://ossci-datasets.s3.amazonaws.com/mnist/",
               "http://yann.lecun.com/exdb/mnist/")
    checksums = {
        "train-images-idx3-ubyte.gz": ("md5", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
        "train-labels-idx1-ubyte.gz": ("md5", "d53e105ee54ea40749a09fcbcd1e9432"),
        "t10k-images-idx3-ubyte.gz": ("md5", "9fb629c4189551a2d022fa330f9573f3"),
        "t10k-labels-idx1-ubyte.gz": ("md5", "ec29112dd5afa0611ce80d1b7f02629c"),
    }
    system_dirs: tuple[str, ...] = ()
    classes = ["0 - zero", "1 - one", "2 - two", "3 - three", "4 - four", "5 - five",
               "6 - six", "7 - seven", "8 - eight", "9 - nine"]

    def __init__(self, root=None, train: bool = True, transform: Callable | None = None,
                 target_transform: Callable | None = None, download: bool = False):
        prefix = "train" if train else "t10k"
        names = [f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"]
        base = Path(root).expanduser() if root is not None else cache_dir()
        dirs = [base / self.folder / "raw", base / self.folder]
        dirs += [base] if root is not None else [Path(d) for d in self.system_dirs]
        found = find_files(dirs, names)
        if found is None and download:
            self._download(names, dirs[0])
            found = find_files(dirs, names)
        if found is None:
            raise DatasetNotFoundError(_not_found(type(self).__name__, names, dirs, (
                f"To fix: pass download=True to fetch them from {self.mirrors[0]} into "
                f"{dirs[0]} (checksums verified), or copy the files into one of those "
                "folders, or point root= (or $SHENDU_DATA) at where they are.")))
        images, labels = read_idx(found[0]), read_idx(found[1])
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(f"{type(self).__name__}: {found[0].name} has shape {images.shape} "
                             f"and {found[1].name} {labels.shape}; expected (N, H, W) images "
                             "and N labels")
        self.root, self.train, self.files = base, train, found
        super().__init__(images[:, None], labels, transform, target_transform)

    def _download(self, names: list[str], target: Path) -> None:
        for name in names:
            if find_files([target], [name]) is None:
                gz = name + ".gz"
                try:
                    download([m + gz for m in self.mirrors], target / gz, self.checksums[gz])
                except DatasetNotFoundError as exc:
                    raise DatasetNotFoundError(
                        f"{type(self).__name__}: {exc}.\nOffline? Copy {', '.join(names)} "
                        f"(plain or .gz) into {target} and run again without download=True."
                    ) from None

    @property
    def data(self) -> np.ndarray:
        return self._images[:, 0]


class FashionMNIST(MNIST):
    """Zalando's Fashion-MNIST (same format and sizes as MNIST, 10 kinds of clothing).

    With ``root=None`` it is also found where Debian's ``dataset-fashion-mnist`` package
    puts it (``/usr/share/datasets/fashion-mnist``). Arguments as for ``MNIST``.
    """

    folder = "FashionMNIST"
    mirrors = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
               "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/"
               "fashion/")
    checksums = {
        "train-images-idx3-ubyte.gz": ("md5", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
        "train-labels-idx1-ubyte.gz": ("md5", "25c81989df183df01b3e8a0aad5dffbe"),
        "t10k-images-idx3-ubyte.gz": ("md5", "bef4ecab320f06d8554ea6380940ec79"),
        "t10k-labels-idx1-ubyte.gz": ("md5", "bb300cfdad3c16e7a12a480ee83cd310"),
    }
    system_dirs = ("/usr/share/datasets/fashion-mnist",)
    classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
               "Sneaker", "Bag", "Ankle boot"]


_CIFAR_RECORD = 1 + 3 * 32 * 32


def read_cifar_bin(path) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(N, 3, 32, 32)`` uint8 and labels ``(N,)`` from one CIFAR-10 ``.bin`` batch
    (records of 1 label byte then 1024 red, 1024 green and 1024 blue bytes)."""
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % _CIFAR_RECORD:
        raise ValueError(f"read_cifar_bin: {path} holds {raw.size} bytes, not a whole number "
                         f"of {_CIFAR_RECORD}-byte CIFAR-10 records (truncated or wrong file?)")
    records = raw.reshape(-1, _CIFAR_RECORD)
    return records[:, 1:].reshape(-1, 3, 32, 32), records[:, 0].astype(np.int64)


class CIFAR10(ImageArrayDataset):
    """CIFAR-10: 50,000 training / 10,000 test colour images, 32x32, 10 classes.

    Args:
        root: folder holding ``cifar-10-batches-bin/`` (or the ``.bin`` files themselves);
            None searches ``cache_dir()`` and ``cache_dir()/CIFAR10``.
        train, transform, target_transform, download: as for ``MNIST``. The download is
            the binary archive; only its ``.bin``/meta members are extracted.

    ``.data`` is ``(N, 32, 32, 3)`` uint8 (PyTorch's layout, a view); samples are
    ``((3, 32, 32) uint8 array, int)``.
    """

    url = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
    archive = "cifar-10-binary.tar.gz"
    archive_checksum = ("md5", "c32a1d4ab5d03f1284b67883e8d87530")
    folder = "cifar-10-batches-bin"
    train_files = [f"data_batch_{i}.bin" for i in range(1, 6)]
    test_files = ["test_batch.bin"]
    meta_file = "batches.meta.txt"
    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
               "truck"]

    def __init__(self, root=None, train: bool = True, transform: Callable | None = None,
                 target_transform: Callable | None = None, download: bool = False):
        names = self.train_files if train else self.test_files
        base = Path(root).expanduser() if root is not None else cache_dir()
        dirs = [base / self.folder, base] if root is not None else \
            [base / self.folder, base / "CIFAR10" / self.folder]
        found = find_files(dirs, names)
        if found is None and download:
            self._download(base)
            found = find_files(dirs, names)
        if found is None:
            raise DatasetNotFoundError(_not_found(type(self).__name__, names, dirs, (
                f"To fix: pass download=True to fetch {self.url} (checksum verified) and "
                f"unpack its binary batches into {dirs[0]}, or copy the files there, or "
                "point root= (or $SHENDU_DATA) at where they are. The pickled 'python "
                "version' is deliberately not read.")))
        parts = [read_cifar_bin(p) for p in found]
        images = np.concatenate([p[0] for p in parts])
        labels = np.concatenate([p[1] for p in parts])
        meta = found[0].parent / self.meta_file
        if meta.is_file():
            names_in_file = [c.strip() for c in meta.read_text().splitlines() if c.strip()]
            if len(names_in_file) == len(type(self).classes):
                self.classes = names_in_file
        self.root, self.train, self.files = base, train, found
        super().__init__(images, labels, transform, target_transform)

    def _download(self, base: Path) -> None:
        archive = base / self.archive
        if not archive.is_file():
            try:
                download([self.url], archive, self.archive_checksum)
            except DatasetNotFoundError as exc:
                raise DatasetNotFoundError(
                    f"CIFAR10: {exc}.\nOffline? Put {self.archive} in {base} (or its "
                    f"cifar-10-batches-bin/ folder) and run again.") from None
        extract_members(archive, base / self.folder, self.folder,
                        self.train_files + self.test_files + [self.meta_file])

    @property
    def data(self) -> np.ndarray:
        return self._images.transpose(0, 2, 3, 1)


def extract_members(archive: Path, target: Path, prefix: str, names: list[str]) -> None:
    """Copy the regular files ``prefix/name`` out of a tar archive into ``target``, each
    written atomically; nothing else in the archive is touched (no path traversal)."""
    with tarfile.open(archive, "r:*") as tar:
        for name in names:
            try:
                member = tar.getmember(f"{prefix}/{name}")
            except KeyError:
                raise ValueError(f"extract_members: {archive} has no member {prefix}/{name}") \
                    from None
            if not member.isfile():
                raise ValueError(f"extract_members: {prefix}/{name} in {archive} is not a "
                                 "regular file")
            src = tar.extractfile(member)
            write_atomic(target / name, iter(lambda src=src: src.read(1 << 20), b""))
