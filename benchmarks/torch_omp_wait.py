"""PyTorch's MLP inference (784-512-512-10, batch 256, 2 threads) in a process of its own,
at libgomp's default spin and with ``GOMP_SPINCOUNT=1000`` (shendu's short spin): what
PyTorch's side of an in-process ``shendu bench`` row loses when it inherits shendu's
setting through the libgomp both libraries share.

    python benchmarks/torch_omp_wait.py --rounds 2
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

CHILD = """
import time, numpy as np, torch
torch.set_num_threads(2)
x = torch.randn(256, 784)
net = torch.nn.Sequential(torch.nn.Linear(784, 512), torch.nn.ReLU(), torch.nn.Linear(512, 512),
                          torch.nn.ReLU(), torch.nn.Linear(512, 10)).eval()
def step():
    with torch.no_grad():
        net(x)
for _ in range(200):
    step()
blocks = []
for _ in range(7):
    t = time.perf_counter()
    for _ in range(300):
        step()
    blocks.append((time.perf_counter() - t) / 300)
print(256 / float(np.median(blocks)))
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    for r in range(args.rounds):
        for name, extra in (("libgomp default", {}), ("GOMP_SPINCOUNT=1000", {"GOMP_SPINCOUNT": "1000"})):
            env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
            out = subprocess.run([sys.executable, "-c", CHILD], env={**env, **extra},
                                 capture_output=True, text=True, check=True)
            print(f"round {r + 1} {name:22s} {float(out.stdout):10,.0f} samples/s", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")


if __name__ == "__main__":
    main()
