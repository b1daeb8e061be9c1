"""Detection and segmentation datasets: the generated canvases of real images
(``CanvasDetection``, ``CanvasSegmentation``) and readers for COCO and Pascal VOC
annotation files.

>>> from shendu.vision.datasets import CanvasDetection
>>> CanvasDetection("test", num_images=1, sources=("digits",)).num_classes
11
"""
from .canvas import CanvasDetection, CanvasSegmentation, detection_collate
from .coco import CocoDetection, load_coco_annotations
from .voc import VOCDetection, parse_voc_xml

__all__ = ["CanvasDetection", "CanvasSegmentation", "detection_collate", "CocoDetection",
           "load_coco_annotations", "VOCDetection", "parse_voc_xml"]
