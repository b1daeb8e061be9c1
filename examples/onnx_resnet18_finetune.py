"""A ResNet-18 built in PyTorch, exported to ONNX, imported into shendu and fine-tuned.

The network is torchvision's ResNet-18 layout written out in PyTorch here (random
weights: nothing is downloaded), given Fashion-MNIST's batch-norm statistics by a few
forward passes, exported with ``torch.onnx.export`` (the TorchScript exporter,
``dynamo=False``, which works offline), then read with ``sd.onnx.import_model``: its
weights become shendu ``Parameter``s under PyTorch's names, and shendu trains them.

    python examples/onnx_resnet18_finetune.py --steps 150

A run's output: examples/results/onnx_resnet18_finetune (test accuracy 0.08 -> 0.80).

Images are 28x28 grey, padded to 32x32 and repeated over 3 channels. In eval mode
PyTorch's exporter folds each batch norm into the convolution before it, so the imported
graph is convolutions, ReLUs, additions, pooling and a Gemm, all trained here. Needs torch
and onnx.
"""
import argparse
import io
import time
import warnings

import numpy as np

import shendu as sd
import shendu.nn.functional as F
from shendu.data.datasets import FashionMNIST


def torch_resnet18(num_classes):
    import torch
    from torch import nn

    class BasicBlock(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.relu = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.downsample = None
            if stride != 1 or cin != cout:
                self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                                nn.BatchNorm2d(cout))

        def forward(self, x):
            idt = x if self.downsample is None else self.downsample(x)
            y = self.relu(self.bn1(self.conv1(x)))
            return self.relu(self.bn2(self.conv2(y)) + idt)

    class ResNet18(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            widths, cin = (64, 128, 256, 512), 64
            for i, w in enumerate(widths):
                stride = 1 if i == 0 else 2
                setattr(self, f"layer{i + 1}", nn.Sequential(BasicBlock(cin, w, stride),
                                                             BasicBlock(w, w, 1)))
                cin = w
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(512, num_classes)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(torch.flatten(self.avgpool(x), 1))

    return ResNet18()


def images(ds, idx):
    x = ds.data[idx].astype(np.float32) / 255.0
    x = (x - 0.286) / 0.353  # Fashion-MNIST's mean and standard deviation
    x = np.pad(x, ((0, 0), (2, 2), (2, 2)))
    return np.repeat(x[:, None], 3, axis=1)


def accuracy(model, ds, idx, batch=250):
    correct = 0
    with sd.no_grad():
        for k in range(0, len(idx), batch):
            part = idx[k:k + batch]
            logits = model(images(ds, part)).numpy()
            correct += int((logits.argmax(1) == ds.targets[part]).sum())
    return correct / len(idx)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--eval-images", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    import torch

    torch.manual_seed(args.seed)
    sd.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    train, test = FashionMNIST(train=True), FashionMNIST(train=False)

    net = torch_resnet18(10)
    net.train()
    with torch.no_grad():  # batch-norm statistics of the data (the weights stay random)
        for _ in range(10):
            net(torch.from_numpy(images(train, rng.integers(0, len(train.data), 128))))
    net.eval()
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.zeros(1, 3, 32, 32),), f, dynamo=False,
                          input_names=["images"], output_names=["logits"],
                          dynamic_axes={"images": [0], "logits": [0]})
    model = sd.onnx.import_model(f.getvalue())
    n_params = sum(p.numel() for p in model.parameters())
    print(f"imported: {len(model._nodes)} ONNX nodes, {n_params:,} trainable parameters")

    x = images(test, np.arange(8))
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    with sd.no_grad():
        got = model(x).numpy()
    print(f"shendu vs PyTorch on 8 test images: max |difference| {np.abs(got - ref).max():.2e}")

    test_idx = rng.choice(len(test.data), args.eval_images, replace=False)
    print(f"test accuracy before fine-tuning: {accuracy(model, test, test_idx):.3f}")
    opt = sd.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4)
    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        idx = rng.integers(0, len(train.data), args.batch_size)
        loss = F.cross_entropy(model(images(train, idx)), sd.tensor(train.targets[idx]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 25 == 0 or step == 1:
            print(f"step {step:4d}  loss {loss.item():.3f}  "
                  f"({time.perf_counter() - start:.0f} s)")
    print(f"test accuracy after {args.steps} steps: {accuracy(model, test, test_idx):.3f}")


if __name__ == "__main__":
    main()
