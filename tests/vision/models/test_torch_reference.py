"""NiN and ResNets against reference modules written here in PyTorch (no torchvision
needed): d2l's NiN code, and a small-input ResNet in training and eval mode."""
import numpy as np
import pytest
from _parity import compare_eval, copy_state, randomize_batch_norm

import shendu as sd
import shendu.nn.functional as F
from shendu.vision import models as M

torch = pytest.importorskip("torch", reason="PyTorch is the reference")
tnn = torch.nn


def d2l_nin():
    def nin_block(i, o, k, s, p):
        return tnn.Sequential(tnn.Conv2d(i, o, k, s, p), tnn.ReLU(), tnn.Conv2d(o, o, 1),
                              tnn.ReLU(), tnn.Conv2d(o, o, 1), tnn.ReLU())
    return tnn.Sequential(nin_block(1, 96, 11, 4, 0), tnn.MaxPool2d(3, 2),
                          nin_block(96, 256, 5, 1, 2), tnn.MaxPool2d(3, 2),
                          nin_block(256, 384, 3, 1, 1), tnn.MaxPool2d(3, 2), tnn.Dropout(0.5),
                          nin_block(384, 10, 3, 1, 1), tnn.AdaptiveAvgPool2d((1, 1)),
                          tnn.Flatten())


class TorchBlock(tnn.Module):
    def __init__(self, cin, planes, stride, bottleneck):
        super().__init__()
        cout = planes * (4 if bottleneck else 1)
        # registration order as torchvision's blocks, so the state-dict keys line up
        if bottleneck:  # v1.5: stride on the 3x3
            self.conv1 = tnn.Conv2d(cin, planes, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(planes)
            self.conv2 = tnn.Conv2d(planes, planes, 3, stride, 1, bias=False)
            self.bn2 = tnn.BatchNorm2d(planes)
            self.conv3 = tnn.Conv2d(planes, cout, 1, bias=False)
            self.bn3 = tnn.BatchNorm2d(cout)
        else:
            self.conv1 = tnn.Conv2d(cin, planes, 3, stride, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(planes)
            self.conv2 = tnn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = tnn.BatchNorm2d(planes)
        self.relu = tnn.ReLU()
        self.bottleneck = bottleneck
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = tnn.Sequential(tnn.Conv2d(cin, cout, 1, stride, bias=False),
                                             tnn.BatchNorm2d(cout))

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.bottleneck:
            out = self.bn3(self.conv3(self.relu(out)))
        return self.relu(out + idt)


class TorchSmallResNet(tnn.Module):
    """The CIFAR-style ResNet: 3x3 stem, no max-pool."""

    def __init__(self, layers, bottleneck, width, num_classes, cin):
        super().__init__()
        self.conv1 = tnn.Conv2d(cin, width, 3, 1, 1, bias=False)
        self.bn1, self.relu = tnn.BatchNorm2d(width), tnn.ReLU()
        c = width
        for i, n in enumerate(layers):
            planes = width * 2 ** i
            blocks = []
            for j in range(n):
                blocks.append(TorchBlock(c, planes, 2 if i and not j else 1, bottleneck))
                c = planes * (4 if bottleneck else 1)
            setattr(self, f"layer{i + 1}", tnn.Sequential(*blocks))
        self.fc = tnn.Linear(c, num_classes)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
        return self.fc(x.mean((2, 3)))


def test_nin_matches_d2l_code():
    torch.manual_seed(0)
    ref = d2l_nin().double()
    mine = copy_state(ref, M.nin()).double()
    x = np.random.default_rng(0).standard_normal((2, 1, 96, 96))
    compare_eval(ref, mine, x, rtol=1e-9)


@pytest.mark.parametrize("name,layers,bottleneck", [("resnet18", [2, 2, 2, 2], False),
                                                     ("resnet50", [3, 4, 6, 3], True)])
def test_small_input_resnet_matches_in_eval_and_training(name, layers, bottleneck):
    torch.manual_seed(0)
    ref = TorchSmallResNet(layers, bottleneck, 8, 10, 1)
    randomize_batch_norm(ref)
    mine = copy_state(ref, getattr(M, name)(num_classes=10, small_input=True, in_channels=1,
                                            width=8))
    ref.double()
    mine.double()
    x = np.random.default_rng(0).standard_normal((4, 1, 12, 12))
    compare_eval(ref, mine, x, rtol=1e-9)
    # training mode: batch statistics, then the same gradients and running statistics
    ref.train()
    mine.train()
    y = np.array([0, 3, 5, 9])
    tloss = tnn.functional.cross_entropy(ref(torch.from_numpy(x)), torch.from_numpy(y))
    tloss.backward()
    loss = F.cross_entropy(mine(sd.tensor(x)), sd.tensor(y))
    loss.backward()
    assert abs(loss.item() - tloss.item()) < 1e-9
    tparams = dict(ref.named_parameters())
    for k, p in mine.named_parameters():
        want = tparams[k].grad.numpy()
        np.testing.assert_allclose(p.grad.numpy(), want, rtol=1e-7,
                                   atol=1e-9 * (np.abs(want).max() + 1e-30), err_msg=k)
    tstate = ref.state_dict()
    for k, v in mine.state_dict().items():
        if "running" in k:
            np.testing.assert_allclose(v.numpy(), tstate[k].numpy(), rtol=1e-9, atol=1e-12)
