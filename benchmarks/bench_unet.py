"""The U-Net of ``examples/segment_canvas.py`` (widths 8-16-64-128-256, deep scores, 21
classes) on 1x128x128 canvases, batch 8: a training step (forward, per-pixel
cross-entropy, backward, Adam), vs PyTorch.

Its finest levels (8 and 16 channels on 128x128 and 64x64 maps) are where a convolution's
patch matrix outgrows the caches; the coarse ones run Winograd. The network is written once
against ``nn``/``F`` (shendu's or torch's), with the layout of
``shendu.vision.segmentation.UNet``; ``tests/vision/segmentation/test_bench_unet.py``
checks that the two are the same network.
"""
import _bench_util as u

WIDTHS = (8, 16, 64, 128, 256)


def unet(fw, num_classes: int = 21, widths=WIDTHS):
    """UNet(1, num_classes, widths, deep_scores=True) in ``fw``'s modules."""
    nn, F, cat = fw.nn, fw.F, fw.lib.cat

    def double_conv(cin, cout):
        return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                             nn.BatchNorm2d(cout), nn.ReLU(),
                             nn.Conv2d(cout, cout, 3, padding=1, bias=False),
                             nn.BatchNorm2d(cout), nn.ReLU())

    class UNet(nn.Module):
        def __init__(self):
            super().__init__()
            depth = len(widths) - 1
            self.down = nn.ModuleList([double_conv(a, b)
                                       for a, b in zip((1, *widths[:-1]), widths)])
            self.up = nn.ModuleList([nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2)
                                     for i in reversed(range(depth))])
            self.merge = nn.ModuleList([double_conv(2 * widths[i], widths[i])
                                        for i in reversed(range(depth))])
            self.head = nn.Conv2d(widths[0], num_classes, 1)
            self.coarse_heads = nn.ModuleList([nn.Conv2d(widths[i], num_classes, 1)
                                               for i in range(depth, 0, -1)])
            self.depth = depth

        def forward(self, x):
            skips = []
            for i, block in enumerate(self.down):
                x = block(x)
                if i < self.depth:
                    skips.append(x)
                    x = F.max_pool2d(x, 2)
            scores = self.coarse_heads[0](x)
            for level, (up, merge, skip) in enumerate(zip(self.up, self.merge,
                                                          reversed(skips))):
                x = merge(cat([up(x), skip], 1))
                head = self.coarse_heads[level + 1] if level + 1 < self.depth else self.head
                scores = F.interpolate(scores, scale_factor=2) + head(x)
            return scores

    return UNet()


@u.twin_benchmark("unet_train", "train", items_per_iter=8)
def unet_train(fw):
    """U-Net 8-16-64-128-256 (deep scores) on 1x128x128, 21 classes, Adam, batch 8."""
    fw.seed(0)
    x, y = u.rand(fw, 8, 1, 128, 128), u.labels(fw, 8, 128, 128, classes=21)
    return u.train_step(fw, unet(fw), x, y, lr=1e-3, optimizer="Adam")
