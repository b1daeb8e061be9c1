"""Latency α and bandwidth β of the gradient all-reduce, measured on 2 ranks here, for the
ring model T(n, N) = 2(N-1)·α + 2(N-1)/N · n/β + (N-1)/N · n·γ
(docs/distributed.md, "Scaling model").

    python benchmarks/allreduce_alpha_beta.py --json benchmarks/results/allreduce-alpha-beta.json

A job of 2 ranks (``shendu run --threads 1``) times ``MPI_Allreduce`` (SUM, in place, on a
float32 NumPy buffer: what DDP's buckets do) for message sizes from 4 bytes to 64 MiB, the
median of many repetitions per size; and ``shendu.distributed.all_reduce`` on a tensor,
which adds the check that every rank called the same collective. γ, the time per byte of
the reduction itself, is timed on one rank (``np.add`` in place on float32). With the
reduction's (N-1)/N · n·γ taken out, α is fitted on the sizes up to 64 KiB and β on those
of 16 MiB and more (least squares on relative error): one line does not fit both. Messages
of 1-4 MiB ran at 5-20 GB/s (in cache, and varying from run to run), those of 16-64 MiB at
about 1 GB/s; β is the latter, so the model is pessimistic for a 2.7 MB gradient.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _job(result: str, max_bytes: int, budget_s: float) -> None:
    from mpi4py import MPI

    import shendu as sd
    import shendu.distributed as dist
    dist.init_process_group("mpi")
    comm, rank = MPI.COMM_WORLD, dist.get_rank()
    sizes = [4]
    while sizes[-1] * 4 <= max_bytes:
        sizes.append(sizes[-1] * 4)
    rows = []
    for nbytes in sizes:
        buf = np.ones(nbytes // 4, dtype=np.float32)
        t = sd.ones(nbytes // 4)
        for _ in range(3):  # warm: first touches, MPI's internal buffers
            comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        comm.Barrier()
        t0 = time.perf_counter()
        comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        one = comm.bcast(time.perf_counter() - t0, root=0)
        reps = int(max(5, min(2000, budget_s / max(one, 1e-7))))
        raw, wrapped = [], []
        for _ in range(reps):
            comm.Barrier()
            t0 = time.perf_counter()
            comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
            raw.append(time.perf_counter() - t0)
        for _ in range(max(5, reps // 4)):
            comm.Barrier()
            t0 = time.perf_counter()
            dist.all_reduce(t)
            wrapped.append(time.perf_counter() - t0)
        # the slower rank's time is the collective's
        raw_med = comm.allreduce(statistics.median(raw), op=MPI.MAX)
        wrapped_med = comm.allreduce(statistics.median(wrapped), op=MPI.MAX)
        rows.append({"bytes": nbytes, "reps": reps, "mpi_allreduce_s": raw_med,
                     "shendu_all_reduce_s": wrapped_med,
                     "mpi_q1_s": statistics.quantiles(raw, n=4)[0] if reps > 1 else raw_med,
                     "mpi_q3_s": statistics.quantiles(raw, n=4)[2] if reps > 1 else raw_med})
        if rank == 0:
            print(f"{nbytes:>10} B  MPI {raw_med * 1e6:10.1f} µs   shendu all_reduce "
                  f"{wrapped_med * 1e6:10.1f} µs  ({reps} reps)", flush=True)
    if rank == 0:
        Path(result).write_text(json.dumps(rows))
    dist.destroy_process_group()


def reduction_gamma(max_bytes: int) -> float:
    """Seconds per byte of an in-place float32 add on one core, large buffers."""
    n = max(max_bytes // 4, 1 << 20)
    a, b = np.ones(n, np.float32), np.ones(n, np.float32)
    np.add(a, b, out=a)
    times = []
    for _ in range(7):
        t0 = time.perf_counter()
        np.add(a, b, out=a)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) / (4 * n)


SMALL, LARGE = 64 * 1024, 16 << 20   # beyond this machine's caches in every run seen


def fit(rows, gamma: float, nranks: int = 2) -> dict:
    """α, β of the ring model from 2-rank timings, least squares on relative error: α from
    the messages up to 64 KiB (where latency rules), then β from those of 1 MiB and more
    (gradient buckets; out of cache, so slower than small messages in cache would say)."""
    n = np.array([r["bytes"] for r in rows], dtype=np.float64)
    t = np.array([r["mpi_allreduce_s"] for r in rows], dtype=np.float64)
    lat = 2 * (nranks - 1)
    per_byte = 2 * (nranks - 1) / nranks
    t_comm = t - (nranks - 1) / nranks * n * gamma    # the reduction's share comes out
    small, large = n <= SMALL, n >= LARGE
    a = np.stack([np.full_like(n, lat), per_byte * n], 1)
    coef, *_ = np.linalg.lstsq(a[small] / t[small, None], t_comm[small] / t[small],
                               rcond=None)
    alpha = float(coef[0])
    rest = (t_comm[large] - lat * alpha) / t[large]
    inv_beta = float(np.linalg.lstsq((per_byte * n[large] / t[large])[:, None], rest,
                                     rcond=None)[0][0])
    pred = lat * alpha + per_byte * n * inv_beta + (nranks - 1) / nranks * n * gamma
    err = np.abs(pred - t) / t
    return {"alpha_s": alpha, "beta_bytes_per_s": 1 / inv_beta, "gamma_s_per_byte": gamma,
            "fit": f"alpha from sizes <= {SMALL} B, beta from sizes >= {LARGE} B",
            "relative_error": {str(int(k)): float(e) for k, e in zip(n, err)},
            "median_relative_error_fitted": float(np.median(err[small | large]))}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--max-mb", type=float, default=64)
    p.add_argument("--budget-s", type=float, default=0.4, help="time per size, roughly")
    p.add_argument("--json")
    p.add_argument("--job", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    max_bytes = int(args.max_mb * 2 ** 20)
    if args.job:
        _job(args.job, max_bytes, args.budget_s)
        return 0
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="shendu-ab-") as tmp:
        result = os.path.join(tmp, "rows.json")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            q for q in (str(ROOT), os.environ.get("PYTHONPATH")) if q))
        cmd = [sys.executable, "-m", "shendu.cli", "run", "--nproc", "2", "--threads", "1",
               "--timeout", "900", str(Path(__file__).resolve()), "--max-mb",
               str(args.max_mb), "--budget-s", str(args.budget_s), "--job", result]
        proc = subprocess.run(cmd, env=env)
        if proc.returncode != 0:
            return proc.returncode
        rows = json.loads(Path(result).read_text())
    gamma = reduction_gamma(max_bytes)
    model = fit(rows, gamma)
    print(f"alpha = {model['alpha_s'] * 1e6:.2f} µs, beta = "
          f"{model['beta_bytes_per_s'] / 1e9:.2f} GB/s, gamma = "
          f"{model['gamma_s_per_byte'] * 1e9:.3f} ns/B (reduction); median fit error "
          f"{100 * model['median_relative_error_fitted']:.0f}% ({model['fit']})")
    if args.json:
        sys.path.insert(0, str(ROOT))
        from shendu._bench_report import machine_info
        info = machine_info()
        doc = {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
               "command": "python benchmarks/allreduce_alpha_beta.py "
                          + " ".join(argv if argv is not None else sys.argv[1:]),
               "commit": info.get("git_commit"), "machine": info,
               "uptime": uptime, "ranks": 2, "transport": "MPICH (mpich wheel), one host",
               "model": model, "rows": rows}
        tmp_path = Path(args.json).with_suffix(".json.tmp")
        tmp_path.write_text(json.dumps(doc, indent=1) + "\n")
        os.replace(tmp_path, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
