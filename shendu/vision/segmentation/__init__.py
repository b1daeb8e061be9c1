"""Semantic segmentation models: ``FCN`` (FCN-8s, bilinear-initialised transposed
convolutions, skip connections) and ``UNet``, and ``predict_multiscale`` (test-time scales).

>>> import shendu as sd
>>> from shendu.vision.segmentation import UNet
>>> UNet(1, 2, widths=(4, 8))(sd.zeros(1, 1, 8, 8)).shape
(1, 2, 8, 8)
"""
from .fcn import FCN, bilinear_kernel, bilinear_upsampler
from .multiscale import predict_multiscale
from .unet import UNet

__all__ = ["FCN", "UNet", "bilinear_kernel", "bilinear_upsampler",
           "predict_multiscale"]
