"""The work DDP's shared-memory path leaves to the rank that comes last, on the MLP's
gradients: write its row (gradient / 2) and sum both rows into its gradient, in two passes
over each whole parameter or a 256 KB piece at a time, each piece summed right after it is
written (what DDP's shared-memory path did for a while; it went back to whole passes at
the last gradient, which ``ddp_floor.py`` measured faster inside a real step).

    python benchmarks/ddp_unit_sums.py --json out.json

Two ranks (``shendu run --threads 1``) share the rows through an MPI shared-memory window,
as DDP does. Each repetition: both make fresh gradients (the two big ones by a matrix
product, as backward does), rank 1 writes its rows (the rank that came first), then rank 0
does the timed work, then rank 1 reads rank 0's rows (as it sums them); the variants
alternate. Median and quartile over the repetitions, in µs.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SIZES = [10, 512 * 10, 512, 512 * 512, 512, 784 * 512]   # the MLP's, in hook order
PIECE_BYTES = 256 * 1024   # the pieces DDP's units had


def _job(args) -> None:
    import numpy as np
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    me = comm.Get_rank()
    n = sum(SIZES)
    win = MPI.Win.Allocate_shared(2 * 2 * n * 4 if me == 0 else 0, 4, comm=comm)
    buf, _ = win.Shared_query(0)
    rows = np.ndarray((2, 2, n), np.float32, buffer=buf)
    offsets = np.concatenate([[0], np.cumsum(SIZES)])
    rng = np.random.default_rng(me)
    x = rng.standard_normal((64, 784), dtype=np.float32)
    h = rng.standard_normal((64, 512), dtype=np.float32)
    d = rng.standard_normal((64, 512), dtype=np.float32)

    def gradients():
        big = {784 * 512: lambda: d.T @ x, 512 * 512: lambda: d.T @ h}
        return [big[s]().reshape(-1) if s in big else rng.standard_normal(s, dtype=np.float32)
                for s in SIZES]

    def whole(gs, q):
        for k, g in enumerate(gs):
            at = slice(offsets[k], offsets[k + 1])
            np.multiply(g, 0.5, out=rows[q, me, at])
            np.add(rows[q, 0, at], rows[q, 1, at], out=g)

    def pieces(gs, q, piece=PIECE_BYTES // 4):
        for k, g in enumerate(gs):
            for lo in range(0, g.size, piece):
                hi = min(lo + piece, g.size)
                at = slice(offsets[k] + lo, offsets[k] + hi)
                np.multiply(g[lo:hi], 0.5, out=rows[q, me, at])
                np.add(rows[q, 0, at], rows[q, 1, at], out=g[lo:hi])
    variants = {"whole parameters": whole, "256 KB pieces": pieces}
    times = {name: [] for name in variants}
    for rep in range(args.reps):
        for name, work in variants.items():
            q = rep % 2
            gs = gradients()
            comm.Barrier()
            if me == 1:
                for k, g in enumerate(gs):
                    np.multiply(g, 0.5, out=rows[q, 1, offsets[k]:offsets[k + 1]])
            comm.Barrier()
            if me == 0:
                t0 = time.perf_counter()
                work(gs, q)
                times[name].append(time.perf_counter() - t0)
            comm.Barrier()
            if me == 1:
                float(rows[q, 0].sum())
            comm.Barrier()
    if me == 0:
        Path(args.result).write_text(json.dumps(times))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--reps", type=int, default=300)
    p.add_argument("--json", help="write the results here")
    p.add_argument("--job", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.job:
        _job(args)
        return 0
    load_before = os.getloadavg()
    sys.path.insert(0, str(HERE))
    from _bench_util import run_ranks
    times = run_ranks(__file__, ["--reps", str(args.reps)], timeout_s=300)
    summary = {}
    for name, v in times.items():
        q1, med, q3 = statistics.quantiles(v, n=4)
        summary[name] = {"median_us": med * 1e6, "q1_us": q1 * 1e6, "q3_us": q3 * 1e6}
        print(f"{name:18} median {med * 1e6:5.0f} µs  (quartiles {q1 * 1e6:.0f}-{q3 * 1e6:.0f})")
    if args.json:
        sys.path.insert(0, str(ROOT))
        from shendu._bench_report import write_script_json
        write_script_json(
            args.json, "python benchmarks/ddp_unit_sums.py "
            + " ".join(argv if argv is not None else sys.argv[1:]), load_before,
            settings={"reps": args.reps, "gradient_floats": SIZES},
            summary=summary, times_s=times)
    return 0


if __name__ == "__main__":
    sys.exit(main())
