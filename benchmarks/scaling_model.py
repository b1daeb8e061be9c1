"""Predicted data-parallel scaling efficiency for 8-256 ranks from the ring all-reduce
model, with α, β, γ measured here (``allreduce_alpha_beta.py``) and the compute time per
step measured here (one process, one thread, shendu, per-rank batch 64).

    python benchmarks/scaling_model.py --alpha-beta benchmarks/results/allreduce-alpha-beta.json \\
        --json benchmarks/results/scaling-model.json

Model (weak scaling: the per-rank batch stays, so compute per step t_c stays):

    T_ar(n, N) = 2(N-1)·α + 2(N-1)/N · n/β + (N-1)/N · n·γ      one all-reduce of n bytes
    k buckets of n/k bytes: the latency term is paid k times.

* no overlap (shendu's DDP today: the engine runs the parameters' hooks at the end of the
  sweep, so every bucket starts after backward): T_step = t_c + T_ar over the k buckets;
* overlap: gradients come out evenly over backward (t_b = 2/3 of t_c, an assumption);
  bucket j is ready at t_b·j/k and goes when the link is free; what is left after backward
  ends is exposed. The reduction (γ) runs on the same CPU as backward, so it is never
  hidden.

Efficiency = t_c / T_step (1.0: N ranks give N times the samples per second).
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RANKS = (2, 8, 16, 32, 64, 128, 256)
BACKWARD_SHARE = 2 / 3


def t_allreduce(nbytes: float, nranks: int, alpha: float, beta: float, gamma: float,
                buckets: int = 1) -> float:
    """Ring all-reduce of ``nbytes`` in ``buckets`` equal pieces, one after another."""
    if nranks == 1:
        return 0.0
    lat = 2 * (nranks - 1) * alpha * buckets
    return lat + 2 * (nranks - 1) / nranks * nbytes / beta + (nranks - 1) / nranks * nbytes * gamma


def step_time(t_c: float, nbytes: float, nranks: int, alpha: float, beta: float,
              gamma: float, bucket_bytes: float, overlap: bool) -> float:
    """Time of one data-parallel step (compute ``t_c`` plus exposed communication)."""
    if nranks == 1:
        return t_c
    k = max(1, math.ceil(nbytes / bucket_bytes))
    piece = nbytes / k
    if not overlap:
        return t_c + t_allreduce(nbytes, nranks, alpha, beta, gamma, k)
    t_b = BACKWARD_SHARE * t_c
    wire = 2 * (nranks - 1) * alpha + 2 * (nranks - 1) / nranks * piece / beta
    end = 0.0
    for j in range(1, k + 1):     # bucket j is ready at t_b * j / k (last layers first)
        end = max(end, t_b * j / k) + wire
    reduce_cpu = (nranks - 1) / nranks * nbytes * gamma
    return t_c + max(0.0, end - t_b) + reduce_cpu


def efficiency(t_c, nbytes, nranks, ab, bucket_bytes, overlap) -> float:
    return t_c / step_time(t_c, nbytes, nranks, ab["alpha_s"], ab["beta_bytes_per_s"],
                           ab["gamma_s_per_byte"], bucket_bytes, overlap)


# ------------------------------------------------------------------ compute time per step
def measure_compute(batch: int, steps: int) -> dict:
    """Seconds per training step (forward, loss, backward, SGD-momentum), 1 thread."""
    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(ROOT))
    import _bench_util as u
    import numpy as np
    from bench_resnet import resnet18_small

    import shendu as sd
    sd.set_num_threads(1)
    fw = u.shendu_fw()
    out = {}
    for name, build, shape in (("mlp", u.mlp, (784,)), ("lenet5", u.lenet5, (1, 28, 28)),
                               ("resnet18", resnet18_small, (3, 32, 32))):
        fw.seed(0)
        model = fw.fuse(build(fw.nn))
        rng = np.random.default_rng(0)
        x = sd.tensor(rng.standard_normal((batch, *shape), dtype=np.float32))
        y = sd.tensor(rng.integers(0, 10, batch))
        opt = sd.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

        def step(opt=opt, model=model, x=x, y=y):
            opt.zero_grad()
            sd.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        step()
        n = steps if name != "resnet18" else max(2, steps // 10)
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
        params = sum(int(np.prod(p.shape)) for p in model.parameters())
        out[name] = {"step_s": statistics.median(times), "steps_timed": n,
                     "params": params, "grad_bytes": 4 * params}
        print(f"{name:9} {1e3 * out[name]['step_s']:9.1f} ms/step  {params:>10,} parameters",
              flush=True)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--alpha-beta", required=True, help="allreduce_alpha_beta.py's JSON")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--assume", action="append", default=[], metavar="NAME=MODEL:SECONDS",
                   help="also model MODEL's gradient with an assumed step time (e.g. "
                   "resnet18-gpu=resnet18:0.02 for a GPU-class step); labelled as assumed")
    p.add_argument("--json")
    args = p.parse_args(argv)
    ab_doc = json.loads(Path(args.alpha_beta).read_text())
    ab = ab_doc["model"]
    compute = measure_compute(args.batch, args.steps)
    for spec in args.assume:
        label, rest = spec.split("=", 1)
        base, seconds = rest.split(":")
        compute[label] = {**compute[base], "step_s": float(seconds), "assumed": True}
    mb = 2 ** 20
    table = {}
    print(f"\nα = {ab['alpha_s'] * 1e6:.1f} µs, β = {ab['beta_bytes_per_s'] / 1e9:.2f} GB/s, "
          f"γ = {ab['gamma_s_per_byte'] * 1e9:.2f} ns/B")
    print("efficiency, 25 MB buckets: no overlap / overlap; 1 MB buckets with overlap")
    print("workload   " + "".join(f"{n:>20}" for n in RANKS))
    for name, c in compute.items():
        row = {}
        for n in RANKS:
            row[n] = {"no_overlap_25mb": efficiency(c["step_s"], c["grad_bytes"], n, ab,
                                                    25 * mb, False),
                      "overlap_25mb": efficiency(c["step_s"], c["grad_bytes"], n, ab,
                                                 25 * mb, True),
                      "overlap_1mb": efficiency(c["step_s"], c["grad_bytes"], n, ab,
                                                1 * mb, True)}
        table[name] = row
        print(f"{name:10} " + "".join(
            f"{r['no_overlap_25mb']:>8.2f}/{r['overlap_25mb']:.2f}/{r['overlap_1mb']:.2f}"
            for r in row.values()))
    buckets = {}
    for name, c in compute.items():
        buckets[name] = {f"{cap:g}MB": {
            "no_overlap": efficiency(c["step_s"], c["grad_bytes"], 64, ab, cap * mb, False),
            "overlap": efficiency(c["step_s"], c["grad_bytes"], 64, ab, cap * mb, True)}
            for cap in (0.0625, 0.25, 1, 4, 25)}
    print("\n64 ranks, efficiency by bucket size (no overlap / overlap):")
    for name, row in buckets.items():
        print(f"{name:10} " + "  ".join(f"{k}: {v['no_overlap']:.2f}/{v['overlap']:.2f}"
                                         for k, v in row.items()))
    if args.json:
        sys.path.insert(0, str(ROOT))
        from shendu._bench_report import machine_info
        info = machine_info()
        doc = {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
               "command": "python benchmarks/scaling_model.py "
                          + " ".join(argv if argv is not None else sys.argv[1:]),
               "commit": info.get("git_commit"), "machine": info,
               "alpha_beta": {"file": args.alpha_beta, **ab},
               "backward_share": BACKWARD_SHARE, "batch_per_rank": args.batch,
               "compute": compute, "efficiency": table, "bucket_sizes_64_ranks": buckets}
        Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
