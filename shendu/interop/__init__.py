"""Other libraries' formats: PyTorch checkpoints, safetensors and DLPack.

``shendu.load`` recognises every format here by its first bytes, so
``sd.load("resnet18.pth")`` and ``sd.load("model.safetensors")`` just work; this package
holds the readers and writers themselves:

- :mod:`~shendu.interop.pytorch`: ``torch.save`` files (zip and legacy) read without
  PyTorch, through an allow-list unpickler that never calls anything a file names;
- :mod:`~shendu.interop.safetensors`: ``load_file``/``save_file`` as in ``safetensors.numpy``;
- :func:`shendu.from_dlpack` and ``Tensor.__dlpack__`` share memory with NumPy, PyTorch
  and CuPy.

>>> import io, shendu as sd
>>> buf = io.BytesIO(sd.interop.safetensors.save({"w": sd.ones(2)}))
>>> sd.load(buf)["w"]
tensor([1., 1.])
"""
from . import pytorch, safetensors
from .pytorch import CheckpointError
from .safetensors import SafetensorsError

__all__ = ["CheckpointError", "SafetensorsError", "pytorch", "safetensors"]
