"""Computer vision: model zoo (``shendu.vision.models``) and box/region ops
(``shendu.vision.ops``) and detection building blocks (``shendu.vision.detection``),
torchvision's names.

>>> import shendu as sd
>>> from shendu.vision.models import LeNet5
>>> LeNet5()(sd.zeros(2, 1, 28, 28)).shape
(2, 10)
"""
from . import detection, models, ops, utils

__all__ = ["detection", "models", "ops", "utils"]
