"""Detection building blocks with torchvision's names: anchor generation, anchor
labelling (``Matcher``), balanced sampling and box offset coding.

>>> from shendu.vision.detection import AnchorGenerator
>>> AnchorGenerator(((32, 64),), ((0.5, 1.0, 2.0),)).num_anchors_per_location()
[6]
"""
from .anchors import AnchorGenerator
from .backbone import BackboneWithFPN, CanvasBackbone
from .box_coder import BoxCoder
from .faster_rcnn import FasterRCNN, fasterrcnn_canvas
from .matcher import BalancedPositiveNegativeSampler, Matcher
from .postprocess import filter_detections, postprocess_detections
from .roi_heads import FastRCNNPredictor, RoIHeads, TwoMLPHead
from .rpn import RegionProposalNetwork, RPNHead
from .ssd import SSD, SSDHead, ssd_canvas

__all__ = ["AnchorGenerator", "BoxCoder", "Matcher", "BalancedPositiveNegativeSampler",
           "filter_detections", "postprocess_detections",
           "CanvasBackbone", "BackboneWithFPN", "SSD", "SSDHead", "ssd_canvas", "FasterRCNN",
           "fasterrcnn_canvas", "FastRCNNPredictor", "RoIHeads", "TwoMLPHead",
           "RegionProposalNetwork", "RPNHead"]
