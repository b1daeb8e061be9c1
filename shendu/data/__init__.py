"""Data pipeline: datasets, samplers, the ``DataLoader``, transforms and built-in datasets.

>>> import shendu as sd
>>> from shendu.data import DataLoader, TensorDataset
>>> x, y = sd.randn(100, 3), sd.randint(0, 2, (100,))
>>> loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)
>>> [tuple(xb.shape) for xb, yb in loader]
[(32, 3), (32, 3), (32, 3), (4, 3)]
"""
from . import datasets, transforms
from ._workers import WorkerInfo, get_worker_info
from .collate import default_collate, default_convert
from .dataloader import DataLoader
from .dataset import (
                      ConcatDataset,
                      Dataset,
                      IterableDataset,
                      Subset,
                      TensorDataset,
                      random_split,
                      stratified_split,
)
from .sampler import (
                      BatchSampler,
                      DistributedSampler,
                      RandomSampler,
                      Sampler,
                      SequentialSampler,
                      SubsetRandomSampler,
                      WeightedRandomSampler,
)

__all__ = ["Dataset", "IterableDataset", "TensorDataset", "Subset", "ConcatDataset",
           "random_split", "stratified_split", "DataLoader", "get_worker_info", "WorkerInfo",
           "default_collate", "default_convert", "Sampler", "SequentialSampler", "RandomSampler",
           "SubsetRandomSampler", "WeightedRandomSampler", "BatchSampler", "DistributedSampler",
           "datasets",
           "transforms"]
