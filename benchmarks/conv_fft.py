"""Where FFT convolution overtakes im2col + GEMM: forward + backward of one conv2d layer,
``algorithm='direct'`` against ``algorithm='fft'``, for growing square kernels ('same'
padding, stride 1), float32.

    nice -n 10 python benchmarks/conv_fft.py [--out benchmarks/results/conv-fft.json]

The two algorithms are timed in alternating rounds (median of the rounds) so that load from
other processes falls on both alike; the ratio direct/fft is what to read. The crossover is
the smallest kernel from which FFT stays faster.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import shendu as sd  # noqa: E402
import shendu.nn.functional as F  # noqa: E402
from shendu._bench_report import machine_info  # noqa: E402


def step_time(x, w, b, k, algorithm, reps):
    """Seconds for one forward + backward (median over ``reps``)."""
    times = []
    for _ in range(reps):
        for t in (x, w, b):
            t.grad = None
        t0 = time.perf_counter()
        F.conv2d(x, w, b, padding=k // 2, algorithm=algorithm).sum().backward()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kernels", default="1,3,5,7,9,11,13,15,19,23")
    ap.add_argument("--shape", default="8,16,32,32", help="N,C,H,W of the input")
    ap.add_argument("--out-channels", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/conv-fft.json"))
    args = ap.parse_args(argv)
    n, c, h, wd = (int(v) for v in args.shape.split(","))
    rng = np.random.default_rng(0)
    x = sd.tensor(rng.standard_normal((n, c, h, wd)).astype(np.float32), requires_grad=True)
    rows = []
    for k in (int(v) for v in args.kernels.split(",")):
        w = sd.tensor(rng.standard_normal((args.out_channels, c, k, k)).astype(np.float32)
                      / k, requires_grad=True)
        b = sd.zeros(args.out_channels, requires_grad=True)
        for alg in ("direct", "fft"):  # warm-up (and first-call compilation)
            step_time(x, w, b, k, alg, 1)
        direct, fft = [], []
        for _ in range(args.rounds):
            direct.append(step_time(x, w, b, k, "direct", args.reps))
            fft.append(step_time(x, w, b, k, "fft", args.reps))
        row = {"kernel": k, "direct_ms": round(1e3 * statistics.median(direct), 3),
               "fft_ms": round(1e3 * statistics.median(fft), 3)}
        row["direct_over_fft"] = round(row["direct_ms"] / row["fft_ms"], 3)
        rows.append(row)
        print(f"k={k:2d}  direct {row['direct_ms']:9.2f} ms   fft {row['fft_ms']:9.2f} ms   "
              f"direct/fft {row['direct_over_fft']:.2f}", flush=True)
    crossover = None
    for i, row in enumerate(rows):
        if all(r["direct_over_fft"] > 1 for r in rows[i:]):
            crossover = row["kernel"]
            break
    machine = machine_info()
    report = {
        "schema": "shendu-bench-conv-fft/1", "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine, "command": "nice -n 10 python benchmarks/conv_fft.py",
        "workload": f"conv2d forward + backward, input {n}x{c}x{h}x{wd}, {args.out_channels} "
                    "output channels, k x k kernel, 'same' padding, stride 1, float32",
        "note": f"median of {args.rounds} alternating rounds of {args.reps} steps each; load "
                f"average at the end {os.getloadavg()[0]:.1f} (the machine is shared)",
        "rows": rows, "crossover_kernel": crossover,
    }
    print(f"FFT is faster from k = {crossover}" if crossover else "FFT never stays faster")
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
