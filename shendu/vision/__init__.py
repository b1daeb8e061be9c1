"""Computer vision: model zoo (``shendu.vision.models``).

>>> import shendu as sd
>>> from shendu.vision.models import LeNet5
>>> LeNet5()(sd.zeros(2, 1, 28, 28)).shape
(2, 10)
"""
from . import models

__all__ = ["models"]
