"""Built-in datasets: the embedded digits, MNIST / Fashion-MNIST / CIFAR-10 readers, and
small synthetic sets for teaching.

>>> from shendu.data.datasets import load_digits, make_xor
>>> load_digits("test")[0].shape
(1000, 28, 28)
>>> make_xor(4, noise=0.0)[1].tolist()
[0, 1, 1, 0]
"""
from ._base import ImageArrayDataset
from ._files import ChecksumError, DatasetNotFoundError, cache_dir, download, file_digest
from .digits import Digits, load_digits
from .synthetic import (
                        make_blobs,
                        make_circles,
                        make_moons,
                        make_regression,
                        make_spirals,
                        make_xor,
                        two_blobs,
)
from .vision import CIFAR10, MNIST, FashionMNIST, read_cifar_bin, read_idx

__all__ = ["Digits", "load_digits", "MNIST", "FashionMNIST", "CIFAR10", "read_idx",
           "read_cifar_bin", "ImageArrayDataset", "cache_dir", "download", "file_digest",
           "ChecksumError", "DatasetNotFoundError", "make_xor", "make_blobs", "two_blobs",
           "make_circles", "make_moons", "make_spirals", "make_regression"]
