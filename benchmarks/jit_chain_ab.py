"""MLP 784-512-512-10 inference (batch 256, no_grad) in one process, blocks of calls
alternating between PyTorch eager, shendu eager, ``sd.compile`` without the Linear chain
pass and ``sd.compile`` as it is: a plain loop beside ``shendu bench``'s harness.

    PYTHONPATH=. python benchmarks/jit_chain_ab.py [--blocks 9] [--shendu-first] [--json FILE]

The two libraries share one GNU OpenMP runtime, which reads its spin setting once, when the
first of them loads it: by default torch is imported first (libgomp's long spin for both);
``--shendu-first`` runs a shendu product first, as ``shendu bench`` does (shendu's short
spin for both).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import numpy as np

import shendu as sd
from shendu._bench_report import machine_info
from shendu.jit import passes


def _mlp(nn):
    return nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                         nn.Linear(512, 10)).eval()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--blocks", type=int, default=9)
    p.add_argument("--calls", type=int, default=100, help="calls per block")
    p.add_argument("--shendu-first", action="store_true",
                   help="load shendu's runtime (MKL, kernels, libgomp) before torch")
    p.add_argument("--json", help="write the medians here")
    args = p.parse_args(argv)
    if args.shendu_first:
        with sd.no_grad():
            sd.nn.Linear(784, 512)(sd.randn(256, 784)).relu()
    import torch

    torch.set_num_threads(2)
    x = np.random.default_rng(0).standard_normal((256, 784), dtype=np.float32)
    sd.manual_seed(0)
    net, tnet = _mlp(sd.nn), _mlp(torch.nn)
    xs, xt = sd.from_numpy(x), torch.from_numpy(x)
    no_chain = [f for f in passes.DEFAULT if f is not passes.fuse_linear_chain]
    runs = {"torch": (torch.no_grad, lambda: tnet(xt)), "eager": (sd.no_grad, lambda: net(xs))}
    for name, compiled in (("compiled_no_chain", sd.compile(net, passes=no_chain)),
                           ("compiled", sd.compile(net))):
        runs[name] = (sd.no_grad, lambda c=compiled: c(xs))
    rates: dict = {k: [] for k in runs}
    for _ in range(2):  # warm-up (traces, compiles, packs)
        for grad_off, call in runs.values():
            with grad_off():
                call()
    for _ in range(args.blocks):
        for k, (grad_off, call) in runs.items():
            with grad_off():
                t0 = time.perf_counter()
                for _ in range(args.calls):
                    call()
                rates[k].append(256 * args.calls / (time.perf_counter() - t0))
    med = {k: statistics.median(v) for k, v in rates.items()}
    for k in runs:
        print(f"{k:18s} {med[k]:9,.0f} samples/s  vs torch {med[k] / med['torch']:.3f}  "
              f"vs eager {med[k] / med['eager']:.3f}")
    if args.json:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True,
                                text=True).stdout.strip()
        doc = {"command": "python " + " ".join(sys.argv), "commit": commit,
               "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": machine_info(),
               "blocks": args.blocks, "calls_per_block": args.calls,
               "shendu_first": args.shendu_first,
               "median_samples_per_s": med,
               "ratio_vs_torch": {k: v / med["torch"] for k, v in med.items()},
               "ratio_vs_eager": {k: v / med["eager"] for k, v in med.items()}}
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
