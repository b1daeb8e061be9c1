"""``sd.backends``: PyTorch's backend switches that portable code queries or sets.

shendu runs on NumPy (CPU) and CuPy (CUDA); it has no Apple Metal (MPS) backend and does
not call cuDNN, so ``sd.backends.mps.is_available()`` is False and the ``cudnn`` flags are
plain settable attributes that change nothing (code that sets ``benchmark = True`` runs).

>>> import shendu as sd
>>> sd.backends.mps.is_available()
False
>>> sd.backends.cudnn.benchmark = True
"""
from . import cudnn, mps

__all__ = ["cudnn", "mps"]
