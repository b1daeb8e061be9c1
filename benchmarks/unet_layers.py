"""The U-Net step's parts that ``unet_train`` changed, timed alone (forward + backward,
batch 8, median of 21 after 3 warm-ups): the finest levels' 3x3 convolutions, the
nearest upsampling of 21 score maps from 64 to 128 pixels, and the 2x2 stride-2
transposed convolution into the finest level. For an A/B of two checkouts run it once
per checkout, from outside the repository, with ``PYTHONPATH`` pointing at each:

    cd /tmp && for i in 1 2; do for tree in /tmp/before /work/main; do
        PYTHONPATH=$tree python /work/main/benchmarks/unet_layers.py --threads 2; done; done

With ``--torch`` the same parts run in PyTorch instead. Prints one JSON line: the
commit (or PyTorch's version), the threads and ms per part.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

PARTS = {  # name -> (op, in channels, out channels, input side)
    "conv 1->8 @128": ("conv", 1, 8, 128), "conv 8->8 @128": ("conv", 8, 8, 128),
    "conv 16->8 @128": ("conv", 16, 8, 128), "conv 8->16 @64": ("conv", 8, 16, 64),
    "conv 16->16 @64": ("conv", 16, 16, 64), "conv 32->16 @64": ("conv", 32, 16, 64),
    "upsample 21 maps 64->128": ("up", 21, 21, 64),
    "conv_transpose 16->8 64->128": ("convT", 16, 8, 64),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--torch", action="store_true", help="time PyTorch's ops instead")
    args = p.parse_args()
    if args.torch:
        import torch as sd
        import torch.nn.functional as F
        sd.set_num_threads(args.threads)
        sd.tensor = lambda a, requires_grad=False: sd.from_numpy(a).requires_grad_(
            requires_grad)
        label = {"torch": sd.__version__}
    else:
        import shendu as sd
        import shendu.nn.functional as F
        from shendu._bench_report import _git_commit

        sd.set_num_threads(args.threads)
        label = {"package": sd.__file__, "commit": _git_commit()}
    rng = np.random.default_rng(0)
    times = {}
    for name, (op, cin, cout, side) in PARTS.items():
        x = sd.tensor(rng.standard_normal((8, cin, side, side), dtype=np.float32),
                      requires_grad=True)
        if op == "conv":
            w = sd.tensor(rng.standard_normal((cout, cin, 3, 3), dtype=np.float32) * 0.1,
                          requires_grad=True)
            f = lambda x=x, w=w: F.conv2d(x, w, padding=1)  # noqa: E731
        elif op == "convT":
            w = sd.tensor(rng.standard_normal((cin, cout, 2, 2), dtype=np.float32) * 0.1,
                          requires_grad=True)
            f = lambda x=x, w=w: F.conv_transpose2d(x, w, stride=2)  # noqa: E731
        else:
            f = lambda x=x: F.interpolate(x, scale_factor=2)  # noqa: E731
        g = sd.tensor(rng.standard_normal(f().shape, dtype=np.float32))
        for _ in range(3):
            f().backward(g)
        ts = []
        for _ in range(21):
            t = time.perf_counter()
            f().backward(g)
            ts.append(time.perf_counter() - t)
        times[name] = round(1e3 * float(np.median(ts)), 2)
    print(json.dumps({**label, "threads": args.threads, "ms": times}))


if __name__ == "__main__":
    main()
