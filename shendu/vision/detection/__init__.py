"""Detection building blocks with torchvision's names: anchor generation, anchor
labelling (``Matcher``), balanced sampling and box offset coding.

>>> from shendu.vision.detection import AnchorGenerator
>>> AnchorGenerator(((32, 64),), ((0.5, 1.0, 2.0),)).num_anchors_per_location()
[6]
"""
from .anchors import AnchorGenerator
from .box_coder import BoxCoder
from .matcher import BalancedPositiveNegativeSampler, Matcher
from .postprocess import filter_detections, postprocess_detections

__all__ = ["AnchorGenerator", "BoxCoder", "Matcher", "BalancedPositiveNegativeSampler",
           "filter_detections", "postprocess_detections"]
