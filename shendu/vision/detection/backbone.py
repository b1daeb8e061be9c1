"""A small convolutional trunk for the detectors and segmenters, light enough to train on
a CPU: stages of (3x3 conv stride 2, BN, ReLU, 3x3 conv, BN, ReLU), each halving the size;
``BackboneWithFPN`` puts a feature pyramid on top of any trunk that returns several maps.

>>> import shendu as sd
>>> from shendu.vision.detection import CanvasBackbone
>>> net = CanvasBackbone(1, (8, 16, 32), return_stages=(1, 2))
>>> [tuple(f.shape) for f in net(sd.zeros(2, 1, 32, 32))], net.out_channels
([(2, 16, 8, 8), (2, 32, 4, 4)], [16, 32])
"""
from __future__ import annotations

from shendu import nn

from ..ops import FeaturePyramidNetwork


def conv_bn_relu(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    """3x3 convolution (no bias), batch norm, ReLU."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU())


class CanvasBackbone(nn.Module):
    """Feature maps at several strides.

    Args:
        in_channels: image channels.
        widths: channels of each stage; stage ``s`` has stride ``2 ** (s + 1)``.
        return_stages: which stages' outputs ``forward`` returns (a list, finest first).

    ``out_channels`` lists the returned maps' channels (what detection heads read).
    """

    def __init__(self, in_channels: int = 1, widths=(16, 32, 64, 128, 128),
                 return_stages=(2, 3, 4)):
        super().__init__()
        if max(return_stages) >= len(widths):
            raise ValueError(f"CanvasBackbone: return_stages {return_stages} beyond the "
                             f"{len(widths)} stages")
        chans = [in_channels, *widths]
        self.stages = nn.ModuleList([
            nn.Sequential(conv_bn_relu(chans[s], chans[s + 1], 2),
                          conv_bn_relu(chans[s + 1], chans[s + 1]))
            for s in range(len(widths))])
        self.return_stages = tuple(return_stages)
        self.out_channels = [widths[s] for s in self.return_stages]

    def forward(self, x):
        out = []
        for s, stage in enumerate(self.stages):
            x = stage(x)
            if s in self.return_stages:
                out.append(x)
            if s >= max(self.return_stages):
                break
        return out


class _Unread(nn.Identity):
    """Stands for the output convolution of a pyramid level nobody reads. Checkpoints
    written while it was still a convolution load too: its weights are passed over."""

    def _load_from_state_dict(self, state_dict, prefix, missing_keys, unexpected_keys,
                              error_msgs, copies):
        pass


class BackboneWithFPN(nn.Module):
    """A trunk's maps passed through a ``FeaturePyramidNetwork`` (torchvision's name).

    Args:
        backbone: returns a list of maps, finest first, and has ``out_channels``.
        out_channels: channels of every pyramid level.
        return_levels: which pyramid levels ``forward`` returns (default: all); a
            single-map detector such as ``FasterRCNN`` takes the finest, which then carries
            what the coarser levels saw.
    """

    def __init__(self, backbone, out_channels: int, return_levels=None):
        super().__init__()
        self.body = backbone
        self.fpn = FeaturePyramidNetwork(backbone.out_channels, out_channels)
        n = len(backbone.out_channels)
        self.return_levels = tuple(range(n) if return_levels is None else return_levels)
        if not self.return_levels or not all(0 <= i < n for i in self.return_levels):
            raise ValueError(f"BackboneWithFPN: return_levels {return_levels} must name "
                             f"levels 0..{n - 1}")
        for i in range(n):  # a level nobody reads needs no output convolution: it would
            if i not in self.return_levels:  # run each step and its weights never train
                self.fpn.layer_blocks[i] = _Unread()
        self.out_channels = [out_channels] * len(self.return_levels)

    def forward(self, x):
        levels = self.fpn(self.body(x))
        return [levels[i] for i in self.return_levels]
