"""ResNet-18's layer kinds, forward + backward, shendu vs PyTorch in one process, 1 thread:
best of 3 by process CPU time. Run: ``python benchmarks/resnet18_layers.py``.
Results: ``benchmarks/results/resnet18-conv-dispatch.txt``."""
import time

import numpy as np
import torch

import shendu as sd
from shendu._threads import blas_threads

CONVS = [(64, 64, 32, 3, 1), (64, 128, 32, 3, 2), (64, 128, 32, 1, 2), (128, 128, 16, 3, 1),
         (256, 256, 8, 3, 1), (512, 512, 4, 3, 1), (256, 512, 8, 3, 2)]
NORMS = [(64, 32), (128, 16), (512, 4)]


def best_cpu_time(f, n=3):
    f()
    best = float("inf")
    for _ in range(n):
        t = time.process_time()
        f()
        best = min(best, time.process_time() - t)
    return best


def conv_case(cin, cout, hw, k, s, batch=64):
    x = np.random.randn(batch, cin, hw, hw).astype(np.float32)
    w = np.random.randn(cout, cin, k, k).astype(np.float32) * 0.05
    xs, ws = sd.tensor(x, requires_grad=True), sd.tensor(w, requires_grad=True)
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)

    def mine():
        sd.nn.functional.conv2d(xs, ws, None, s, k // 2).sum().backward()

    def theirs():
        torch.nn.functional.conv2d(xt, wt, None, s, k // 2).sum().backward()
    return best_cpu_time(mine), best_cpu_time(theirs)


def norm_case(c, hw, batch=64):
    x = np.random.randn(batch, c, hw, hw).astype(np.float32)
    ms, mt = sd.nn.BatchNorm2d(c), torch.nn.BatchNorm2d(c)
    xs, xt = sd.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    return (best_cpu_time(lambda: ms(xs).sum().backward()),
            best_cpu_time(lambda: mt(xt).sum().backward()))


if __name__ == "__main__":
    torch.set_num_threads(1)
    with blas_threads(1):
        for kind, cases, fn in (("conv", CONVS, conv_case), ("bn", NORMS, norm_case)):
            for args in cases:
                a, b = fn(*args)
                print(kind, args, f"shendu {a * 1e3:.0f} ms, torch {b * 1e3:.0f} ms, "
                      f"ratio {b / a:.2f}", flush=True)
