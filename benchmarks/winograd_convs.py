"""Each of ResNet-18's 3x3 stride-1 convolutions (small input, batch 64) by the direct
kernel and by Winograd's F(2x2, 3x3), shendu alone, forward in no_grad, median of 15
after 0.7 s of warm-up; also the largest difference between the two over the largest
output (both float32).

    python benchmarks/winograd_convs.py
    python benchmarks/winograd_convs.py --torch   # PyTorch's, in a process of its own
"""
import sys
import time

import numpy as np

N = 64
SHAPES = [("l1", 64, 64, 32), ("l2", 128, 128, 16), ("l3", 256, 256, 8), ("l4", 512, 512, 4),
          ("odd", 128, 96, 7)]  # (name, in channels, out channels, map size)


def bench(f, reps=15):
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 0.7:
        f()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return np.median(times) * 1e3


def torch_side():
    import torch
    torch.set_num_threads(2)
    for name, c, o, h in SHAPES:
        x = torch.randn(N, c, h, h)
        w = torch.randn(o, c, 3, 3) / np.sqrt(9 * c)
        with torch.no_grad():
            ms = bench(lambda x=x, w=w: torch.nn.functional.conv2d(x, w, padding=1))
        print(name, f"torch {ms:.2f}")


def shendu_side():
    import shendu as sd
    from shendu.backend import runtime
    sd.set_num_threads(2)
    rng = np.random.default_rng(0)
    for name, c, o, h in SHAPES:
        x = sd.tensor(rng.standard_normal((N, c, h, h), dtype=np.float32))
        w = sd.tensor((rng.standard_normal((o, c, 3, 3)) / np.sqrt(9 * c)).astype(np.float32))
        times, outs = [], []
        with sd.no_grad():
            for winograd in (False, True):
                with runtime.use(winograd=winograd):
                    times.append(bench(lambda x=x, w=w: sd.nn.functional.conv2d(x, w, padding=1)))
                    outs.append(sd.nn.functional.conv2d(x, w, padding=1).numpy())
        err = np.abs(outs[0] - outs[1]).max() / np.abs(outs[0]).max()
        print(name, f"direct {times[0]:.2f} winograd {times[1]:.2f} err {err:.1e}")


if __name__ == "__main__":
    torch_side() if "--torch" in sys.argv else shendu_side()
