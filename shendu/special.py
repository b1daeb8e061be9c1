"""``sd.special``: PyTorch's ``torch.special`` names for the special functions.

>>> import shendu as sd
>>> sd.special.expit(sd.tensor([0.0]))
tensor([0.5000])
"""
from __future__ import annotations

from .nn.functional import log_softmax, softmax
from .ops import (
    digamma,
    erf,
    erfc,
    erfinv,
    exp2,
    expm1,
    lgamma,
    log1p,
    logit,
    logsumexp,
    sigmoid,
    sinc,
    xlogy,
)

expit = sigmoid
psi = digamma
gammaln = lgamma


def ndtr(input):
    """The standard normal distribution function: ``(1 + erf(x / sqrt(2))) / 2``."""
    return (1 + erf(input * 0.7071067811865476)) * 0.5


def ndtri(input):
    """The inverse of ``ndtr``: ``sqrt(2) * erfinv(2p - 1)``."""
    return erfinv(input * 2 - 1) * 1.4142135623730951


def erfcx(input):
    """The scaled complementary error function ``exp(x**2) * erfc(x)``."""
    return (input * input).exp() * erfc(input)


__all__ = ["digamma", "erf", "erfc", "erfcx", "erfinv", "exp2", "expit", "expm1", "gammaln",
           "log1p", "log_softmax", "logit", "logsumexp", "ndtr", "ndtri", "psi", "sinc",
           "softmax", "xlogy"]
