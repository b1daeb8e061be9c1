"""Mathematical constants under PyTorch's names: ``sd.pi``, ``sd.e``, ``sd.inf``, ``sd.nan``.

>>> import shendu as sd
>>> round(sd.pi, 4), sd.inf > 1e308
(3.1416, True)
"""
import math

pi = math.pi
e = math.e
inf = math.inf
nan = math.nan
