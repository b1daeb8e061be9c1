"""ResNet-18 with the small-input stem (3x3 conv, no max-pool) on 3x32x32, batch 64:
training step (forward, cross-entropy, backward, SGD) and eval-mode inference, vs PyTorch.

The network is written once against ``nn`` (shendu's or torch's), with the layout of
``shendu.vision.models.resnet18(num_classes=10, small_input=True)``;
``tests/vision/models/test_bench_resnet.py`` checks that the two are the same network.
"""
import _bench_util as u


def resnet18_small(nn, num_classes: int = 10):
    """ResNet-18, CIFAR stem, BasicBlocks [2, 2, 2, 2], 64-512 planes."""
    class Block(nn.Module):
        def __init__(self, cin, planes, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.relu = nn.ReLU()
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.downsample = None
            if stride != 1 or cin != planes:
                self.downsample = nn.Sequential(nn.Conv2d(cin, planes, 1, stride, bias=False),
                                                nn.BatchNorm2d(planes))

        def forward(self, x):
            idt = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.bn1(self.conv1(x)))
            return self.relu(self.bn2(self.conv2(out)) + idt)

    class ResNet18(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.relu = nn.ReLU()
            cin = 64
            for i, planes in enumerate((64, 128, 256, 512)):
                stride = 1 if i == 0 else 2
                setattr(self, f"layer{i + 1}",
                        nn.Sequential(Block(cin, planes, stride), Block(planes, planes, 1)))
                cin = planes
            self.fc = nn.Linear(512, num_classes)

        def forward(self, x):
            x = self.relu(self.bn1(self.conv1(x)))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(x.mean((2, 3)))

    return ResNet18()


@u.twin_benchmark("resnet18_train", "train", items_per_iter=64)
def resnet18_train(fw):
    """ResNet-18 (small input) on 3x32x32, SGD, batch 64."""
    fw.seed(0)
    x, y = u.rand(fw, 64, 3, 32, 32), u.labels(fw, 64, classes=10)
    return u.train_step(fw, resnet18_small(fw.nn), x, y)


@u.twin_benchmark("resnet18_infer", "inference", items_per_iter=64)
def resnet18_infer(fw):
    """ResNet-18 (small input) forward in eval mode, batch 64."""
    fw.seed(0)
    return u.infer_step(fw, resnet18_small(fw.nn), u.rand(fw, 64, 3, 32, 32))
