"""Dataset readers on small files written here in the real formats; downloads via file://."""
import gzip
import hashlib
import io
import os
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest

from shendu.data import DataLoader
from shendu.data.datasets import (
    CIFAR10,
    MNIST,
    ChecksumError,
    DatasetNotFoundError,
    FashionMNIST,
    cache_dir,
    read_idx,
)
from shendu.data.transforms import ToTensor

_CODES = {"u1": 0x08, "i1": 0x09, ">i2": 0x0B, ">i4": 0x0C, ">f4": 0x0D, ">f8": 0x0E}


def idx_bytes(arr: np.ndarray, code: str = "u1") -> bytes:
    header = bytes([0, 0, _CODES[code], arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(code).tobytes()


def write_mnist(folder: Path, n_train=12, n_test=5, gz=True, seed=0):
    r = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = r.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        for kind, arr in (("images-idx3", images), ("labels-idx1", labels)):
            name = f"{prefix}-{kind}-ubyte"
            data = idx_bytes(arr)
            if gz:
                (folder / (name + ".gz")).write_bytes(gzip.compress(data))
            else:
                (folder / name).write_bytes(data)
        out[prefix] = (images, labels)
    return out


def test_read_idx_dtypes_and_errors(tmp_path):
    a = np.arange(-6, 6, dtype=np.int16).reshape(3, 4)
    (tmp_path / "a").write_bytes(idx_bytes(a, ">i2"))
    assert np.array_equal(read_idx(tmp_path / "a"), a) and read_idx(tmp_path / "a").dtype.isnative
    f = np.linspace(0, 1, 5, dtype=np.float32)
    (tmp_path / "f.gz").write_bytes(gzip.compress(idx_bytes(f, ">f4")))
    assert np.array_equal(read_idx(tmp_path / "f.gz"), f)
    (tmp_path / "short").write_bytes(idx_bytes(a, ">i2")[:-3])
    with pytest.raises(ValueError, match=r"shape \(3, 4\).*truncated"):
        read_idx(tmp_path / "short")
    (tmp_path / "bad").write_bytes(b"PK\x03\x04rest")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "bad")


@pytest.mark.parametrize("gz, layout", [(True, "MNIST/raw"), (False, "."), (True, "MNIST")])
def test_mnist_reads_standard_files(tmp_path, gz, layout):
    written = write_mnist(tmp_path / layout, gz=gz)
    train = MNIST(tmp_path, train=True)
    test = MNIST(tmp_path, train=False)
    assert len(train) == 12 and len(test) == 5
    assert train.data.shape == (12, 28, 28) and train.data.dtype == np.uint8
    assert np.array_equal(train.data, written["train"][0])
    assert train.targets.dtype == np.int64 and train.targets.tolist() == list(range(10)) + [0, 1]
    image, label = test[3]
    assert image.shape == (1, 28, 28) and label == 3
    assert np.array_equal(image[0], written["t10k"][0][3])
    assert train.classes[7] == "7 - seven" and train.class_to_idx["7 - seven"] == 7


def test_mnist_loader_batches_with_transform(tmp_path):
    written = write_mnist(tmp_path, n_train=20)
    loader = DataLoader(MNIST(tmp_path, transform=ToTensor()), batch_size=8, shuffle=False)
    x, y = next(iter(loader))
    assert x.shape == (8, 1, 28, 28) and x.dtype == np.float32
    assert np.allclose(x.numpy()[:, 0], written["train"][0][:8] / 255)
    assert y.tolist() == list(range(8))


def test_fashion_mnist_classes_and_mismatched_files(tmp_path):
    write_mnist(tmp_path / "FashionMNIST" / "raw")
    ds = FashionMNIST(tmp_path)
    assert ds.classes[9] == "Ankle boot" and len(ds) == 12
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "train-images-idx3-ubyte").write_bytes(idx_bytes(np.zeros((3, 28, 28), np.uint8)))
    (bad / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(4, np.uint8)))
    with pytest.raises(ValueError, match=r"expected \(N, H, W\) images and N labels"):
        MNIST(bad)


DEBIAN = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(not (DEBIAN / "t10k-labels-idx1-ubyte.gz").is_file(),
                    reason="Debian's dataset-fashion-mnist package is not installed")
def test_fashion_mnist_found_in_debian_package(tmp_path, monkeypatch):
    monkeypatch.setenv("SHENDU_DATA", str(tmp_path))  # an empty cache: only Debian's copy
    test = FashionMNIST(train=False)
    assert test.files[0].parent == DEBIAN
    assert test.data.shape == (10000, 28, 28)
    assert np.bincount(test.targets).tolist() == [1000] * 10


def write_cifar(folder: Path, per_batch=4, seed=0, meta=True):
    r = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        labels = r.integers(0, 10, per_batch, dtype=np.uint8)
        images = r.integers(0, 256, (per_batch, 3, 32, 32), dtype=np.uint8)
        records = np.concatenate([labels[:, None], images.reshape(per_batch, -1)], axis=1)
        (folder / name).write_bytes(records.tobytes())
        out[name] = (images, labels)
    if meta:
        names = ["plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
        (folder / "batches.meta.txt").write_text("\n".join(names) + "\n\n")
    return out


def test_cifar10_reads_binary_batches(tmp_path):
    written = write_cifar(tmp_path / "cifar-10-batches-bin")
    train = CIFAR10(tmp_path, train=True)
    test = CIFAR10(tmp_path, train=False)
    assert len(train) == 20 and len(test) == 4
    img0, lab0 = written["data_batch_1.bin"]
    assert train.data.shape == (20, 32, 32, 3)  # PyTorch's HWC layout
    assert np.array_equal(train.data[0, :, :, 0], img0[0, 0])  # red plane comes first
    assert train[0][0].shape == (3, 32, 32) and train[0][1] == lab0[0]
    last_imgs, last_labels = written["data_batch_5.bin"]
    assert np.array_equal(train.targets[-4:], last_labels)
    assert np.array_equal(test.data[1], written["test_batch.bin"][0][1].transpose(1, 2, 0))
    assert train.classes[1] == "car"
    (tmp_path / "cifar-10-batches-bin" / "test_batch.bin").write_bytes(b"\0" * 3000)
    with pytest.raises(ValueError, match="3073-byte CIFAR-10 records"):
        CIFAR10(tmp_path, train=False)


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _mnist_mirror(tmp_path):
    mirror = tmp_path / "mirror"
    write_mnist(mirror, gz=True)
    sums = {p.name: ("md5", _md5(p.read_bytes())) for p in mirror.iterdir()}
    return mirror.as_uri() + "/", sums


def test_download_verifies_and_writes_atomically(tmp_path):
    url, sums = _mnist_mirror(tmp_path)

    class Mirrored(MNIST):
        mirrors = ("file:///nonexistent/mirror/", url)  # the first mirror fails
        checksums = sums

    root = tmp_path / "data"
    ds = Mirrored(root, train=True, download=True)
    assert len(ds) == 12
    raw = root / "MNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == ["train-images-idx3-ubyte.gz",
                                                     "train-labels-idx1-ubyte.gz"]
    assert len(Mirrored(root, train=False, download=True)) == 5
    assert not [p for p in raw.iterdir() if p.name.endswith(".part")]


def test_checksum_mismatch_raises_and_leaves_nothing(tmp_path):
    url, sums = _mnist_mirror(tmp_path)
    sums = dict(sums, **{"train-images-idx3-ubyte.gz": ("md5", "0" * 32)})

    class Tampered(MNIST):
        mirrors = (url,)
        checksums = sums

    with pytest.raises(ChecksumError, match=r"expected 0{32}.*discarded"):
        Tampered(tmp_path / "data", download=True)
    raw = tmp_path / "data" / "MNIST" / "raw"
    assert not raw.exists() or not any(p.name.startswith(".train-images") or
                                       p.name == "train-images-idx3-ubyte.gz"
                                       for p in raw.iterdir())


def test_missing_files_error_is_clear(tmp_path, monkeypatch):
    monkeypatch.setenv("SHENDU_DATA", str(tmp_path / "cache"))
    assert cache_dir() == tmp_path / "cache"
    with pytest.raises(DatasetNotFoundError) as info:
        MNIST(train=False)
    msg = str(info.value)
    for part in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
                 str(tmp_path / "cache" / "MNIST" / "raw"), "download=True", "SHENDU_DATA"):
        assert part in msg

    class Offline(MNIST):
        mirrors = ((tmp_path / "nowhere").as_uri() + "/",)

    with pytest.raises(DatasetNotFoundError, match="Offline\\?.*Copy"):
        Offline(tmp_path / "root", download=True)
    with pytest.raises(DatasetNotFoundError, match="cifar-10-batches-bin.*not read"):
        CIFAR10(tmp_path / "empty")


def test_cifar_download_extracts_only_expected_members(tmp_path):
    src = tmp_path / "src"
    write_cifar(src / "cifar-10-batches-bin", per_batch=2)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(src / "cifar-10-batches-bin", arcname="cifar-10-batches-bin")
        evil = tarfile.TarInfo("../evil.txt")
        payload = b"should never be written"
        evil.size = len(payload)
        tar.addfile(evil, io.BytesIO(payload))
    archive = tmp_path / "cifar-10-binary.tar.gz"
    archive.write_bytes(buf.getvalue())

    class Local(CIFAR10):
        url = archive.as_uri()
        archive_checksum = ("sha256", hashlib.sha256(buf.getvalue()).hexdigest())

    root = tmp_path / "root"
    ds = Local(root, train=True, download=True)
    assert len(ds) == 10 and ds.classes[0] == "plane"
    assert not (tmp_path / "evil.txt").exists() and not (root.parent / "evil.txt").exists()
    assert sorted(os.listdir(root / "cifar-10-batches-bin"))[0] == "batches.meta.txt"

    class Wrong(Local):
        archive_checksum = ("sha256", "f" * 64)

    with pytest.raises(ChecksumError):
        Wrong(tmp_path / "root2", download=True)
    assert not (tmp_path / "root2" / "cifar-10-binary.tar.gz").exists()


def test_file_digest_and_image_array_dataset(tmp_path):
    import hashlib

    from shendu.data.datasets import ImageArrayDataset, file_digest
    blob = np.random.default_rng(0).integers(0, 256, 3_000_000, dtype=np.uint8).tobytes()
    (tmp_path / "f.bin").write_bytes(blob)  # larger than one read chunk
    assert file_digest(tmp_path / "f.bin") == hashlib.sha256(blob).hexdigest()
    assert file_digest(tmp_path / "f.bin", "md5") == hashlib.md5(blob).hexdigest()

    images = np.arange(4 * 1 * 2 * 2, dtype=np.uint8).reshape(4, 1, 2, 2)
    ds = ImageArrayDataset(images, [3, 1, 0, 2])
    img, label = ds[2]
    assert np.array_equal(img, images[2]) and label == 0
    xb, yb = ds.get_batch(np.array([3, 0]))
    assert np.array_equal(np.asarray(xb), images[[3, 0]]) and list(yb) == [2, 3]
    with pytest.raises(ValueError, match=r"expected images \(N, C, H, W\) and N labels"):
        ImageArrayDataset(images[0], [1])
