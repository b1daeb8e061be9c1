"""How ``F.conv2d`` computes when the call does not say (its ``algorithm`` argument).

``algorithm``: ``"direct"`` (im2col + GEMM, the default), or ``"fft"`` (products of
spectra; see ``shendu/ops/conv_fft.py``) for every convolution it can compute (stride 1,
dilation 1, one group; others stay direct).

>>> import shendu as sd
>>> sd.backends.conv.algorithm = "fft"
>>> sd.backends.conv.algorithm = "direct"
"""

algorithm = "direct"
ALGORITHMS = ("direct", "fft")
