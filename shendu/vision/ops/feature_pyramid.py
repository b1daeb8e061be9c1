"""Feature pyramid network (torchvision's ``ops.FeaturePyramidNetwork``): gives every level
of a backbone the meaning of the coarsest one. A backbone's fine maps see little of the
image (a few convolutions deep), so a detector head reading them recognises shapes but not
objects; the pyramid brings each level to one width with a 1x1 convolution, adds the
nearest-upsampled level above it, from the coarsest down, and smooths each sum with a 3x3
convolution.

>>> import shendu as sd
>>> from shendu.vision.ops import FeaturePyramidNetwork
>>> fpn = FeaturePyramidNetwork([16, 32], 8)
>>> [tuple(f.shape) for f in fpn([sd.zeros(1, 16, 8, 8), sd.zeros(1, 32, 4, 4)])]
[(1, 8, 8, 8), (1, 8, 4, 4)]
"""
from __future__ import annotations

from shendu import nn
from shendu.nn import functional as F

__all__ = ["FeaturePyramidNetwork"]


class FeaturePyramidNetwork(nn.Module):
    """Top-down pathway with lateral connections (Lin et al., 2017).

    Args:
        in_channels_list: channels of each input map, finest first.
        out_channels: channels of every output map.

    ``forward(x)`` takes the maps finest first, as a list or a dict (torchvision passes an
    ``OrderedDict``), and returns the same kind with the same keys. The weights start as
    torchvision's do (Kaiming uniform with ``a=1``, zero biases); torchvision's
    ``extra_blocks`` and ``norm_layer`` options are not offered.
    """

    def __init__(self, in_channels_list, out_channels: int):
        super().__init__()
        if not in_channels_list or any(c <= 0 for c in in_channels_list):
            raise ValueError(f"FeaturePyramidNetwork: in_channels_list must be positive "
                             f"channel counts, got {list(in_channels_list)}")
        self.inner_blocks = nn.ModuleList([nn.Conv2d(c, out_channels, 1)
                                           for c in in_channels_list])
        self.layer_blocks = nn.ModuleList([nn.Conv2d(out_channels, out_channels, 3, padding=1)
                                           for _ in in_channels_list])
        for conv in (*self.inner_blocks, *self.layer_blocks):
            nn.init.kaiming_uniform_(conv.weight, a=1)
            nn.init.zeros_(conv.bias)

    def forward(self, x):
        names = list(x) if isinstance(x, dict) else None
        maps = list(x.values()) if names else list(x)
        if len(maps) != len(self.inner_blocks):
            raise ValueError(f"FeaturePyramidNetwork: expected {len(self.inner_blocks)} maps, "
                             f"got {len(maps)}")
        top = self.inner_blocks[-1](maps[-1])
        out = [self.layer_blocks[-1](top)]
        for i in range(len(maps) - 2, -1, -1):
            lateral = self.inner_blocks[i](maps[i])
            top = lateral + F.interpolate(top, size=tuple(lateral.shape[-2:]), mode="nearest")
            out.insert(0, self.layer_blocks[i](top))
        return dict(zip(names, out)) if names else out
