"""PyTorch's spelling of shendu's data package: ``sd.utils.data`` is ``sd.data``.

>>> from shendu.utils.data import DataLoader, TensorDataset
>>> import shendu as sd
>>> DataLoader is sd.data.DataLoader
True
"""
from . import data
