"""Computer vision with torchvision's names: model zoo (``models``), box/region ops
(``ops``), detectors and their building blocks (``detection``), segmentation models
(``segmentation``), detection/segmentation datasets (``datasets``), drawing (``draw``)
and image grids, saving and interpretation (``utils``; style transfer in ``style``).

>>> import shendu as sd
>>> from shendu.vision.models import LeNet5
>>> LeNet5()(sd.zeros(2, 1, 28, 28)).shape
(2, 10)
"""
from . import datasets, detection, draw, models, ops, segmentation, utils
from .draw import draw_bounding_boxes, draw_segmentation_masks

__all__ = ["datasets", "detection", "draw", "models", "ops", "segmentation", "utils",
           "draw_bounding_boxes", "draw_segmentation_masks"]
