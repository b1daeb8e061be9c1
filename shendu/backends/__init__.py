"""``sd.backends``: PyTorch's backend switches that portable code queries or sets.

shendu runs on NumPy (CPU) and CuPy (CUDA); it has no Apple Metal (MPS) backend and does
not call cuDNN, so ``sd.backends.mps.is_available()`` is False and the ``cudnn`` flags are
plain settable attributes that change nothing (code that sets ``benchmark = True`` runs).

>>> import shendu as sd
>>> sd.backends.mps.is_available()
False
>>> sd.backends.cudnn.benchmark = True

``sd.backends.conv.algorithm`` (shendu's own) picks how ``F.conv2d`` computes by default.
"""
from . import conv, cudnn, mps

__all__ = ["conv", "cudnn", "mps"]
