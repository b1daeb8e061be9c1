"""Image utilities with torchvision's names: ``make_grid``, ``save_image``,
``draw_bounding_boxes``, ``draw_segmentation_masks``, and tools to look inside a network
(filters, feature maps, activation statistics, Grad-CAM).

>>> import shendu as sd
>>> make_grid(sd.rand(6, 3, 8, 8), nrow=3).shape
(3, 22, 32)
"""
from ._grid import make_grid, save_image, to_uint8_image
from .draw import draw_bounding_boxes, draw_segmentation_masks
from .interpret import GradCAM, activation_stats, feature_maps, filter_grid, overlay_heatmap

__all__ = ["make_grid", "save_image", "to_uint8_image", "filter_grid", "feature_maps",
           "activation_stats", "GradCAM", "overlay_heatmap", "draw_bounding_boxes",
           "draw_segmentation_masks"]
