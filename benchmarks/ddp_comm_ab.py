"""What DDP's gradient exchange costs per step, A/B between checkouts of shendu, on a
machine that other work keeps busy.

    python benchmarks/ddp_comm_ab.py --trees /work/main,. --rounds 4 --json out.json

A 2-rank job (``shendu run --threads 1``) steps a model holding the MLP's parameters
(784-512-512-10: 2.68 MB of float32 gradients) whose loss is ``sum(p * c)``: backward
makes fresh gradients as a real one does, with almost no compute, so a step is about 1 ms
plus the exchange. Each checkout in ``--trees`` (put first on ``PYTHONPATH``) runs with
DDP, and the first one also without (``no DDP``: the step with nothing exchanged). On a
busy machine most steps are stretched by a rank that was descheduled, so the summary is
the 10th and 25th percentiles over the steps (the step time is the slower rank's) as well
as the median; the rounds alternate the checkouts so that a change of load reaches all.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SHAPES = [(512, 784), (512,), (512, 512), (512,), (10, 512), (10,)]   # the MLP's


def _job(args) -> None:
    import numpy as np

    import shendu as sd
    import shendu.distributed as dist
    from shendu.distributed.process_group import _world
    sd.set_num_threads(1)
    dist.init_process_group("mpi")
    rank = dist.get_rank()

    class Params(sd.nn.Module):
        def __init__(self):
            super().__init__()
            self.ps = sd.nn.ParameterList([sd.nn.Parameter(sd.zeros(*s)) for s in SHAPES])

        def forward(self, cs):
            total = None
            for p, c in zip(self.ps, cs):
                t = (p * c).sum()
                total = t if total is None else total + t
            return total
    rng = np.random.default_rng(rank)
    cs = [sd.tensor(rng.standard_normal(s, dtype=np.float32)) for s in SHAPES]
    model = Params()
    if not args.no_comm:
        model = sd.nn.parallel.DistributedDataParallel(model)
    opt = sd.optim.SGD(model.parameters(), lr=0.0, momentum=0.9)

    def step():
        opt.zero_grad()
        model(cs).backward()
        opt.step()
    for _ in range(300):
        step()
    times = np.empty(args.steps + 1)
    dist.barrier()
    for k in range(args.steps):
        times[k] = time.perf_counter()
        step()
    times[-1] = time.perf_counter()
    dist.barrier()
    everyone = _world().comm.gather(times, root=0)
    if rank == 0:
        slower = np.max([np.diff(t) for t in everyone], axis=0)
        Path(args.result).write_text(json.dumps({
            q: float(np.percentile(slower, p)) for q, p in (("p10", 10), ("p25", 25),
                                                           ("median", 50))}))
    dist.destroy_process_group()


def _run(tree, no_comm, args, tmp) -> dict:
    result = Path(tmp) / "result.json"
    result.unlink(missing_ok=True)
    env = dict(os.environ, PYTHONPATH=str(Path(tree).resolve()))
    cmd = [sys.executable, "-m", "shendu.cli", "run", "--nproc", "2", "--threads", "1",
           "--timeout", "300", str(Path(__file__).resolve()), "--job", "--steps",
           str(args.steps), "--result", str(result)] + (["--no-comm"] if no_comm else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{tree} failed ({proc.returncode}):\n" + proc.stdout[-2000:]
                           + proc.stderr[-2000:])
    return json.loads(result.read_text())


def _git_commit(tree) -> str | None:
    out = subprocess.run(["git", "-C", str(tree), "rev-parse", "HEAD"], capture_output=True,
                         text=True)
    return out.stdout.strip() or None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--trees", default=".", help="comma-separated shendu checkouts")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--json", help="write the results here")
    p.add_argument("--job", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--no-comm", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.job:
        _job(args)
        return 0
    trees = args.trees.split(",")
    variants = [(t, False) for t in trees] + [(trees[0], True)]
    names = [f"{t} {'no DDP' if nc else 'DDP'}" for t, nc in variants]
    load_before = os.getloadavg()
    runs: dict[str, list[dict]] = {n: [] for n in names}
    with tempfile.TemporaryDirectory(prefix="shendu-ddp-ab-") as tmp:
        for rnd in range(args.rounds):
            for name, (tree, no_comm) in zip(names, variants):
                r = _run(tree, no_comm, args, tmp)
                runs[name].append(r)
                print(f"round {rnd + 1} {name:40} step p10 {r['p10'] * 1e6:6.0f} µs, "
                      f"p25 {r['p25'] * 1e6:6.0f}, median {r['median'] * 1e6:6.0f}", flush=True)
    summary = {n: {q: statistics.median(r[q] for r in v) for q in ("p10", "p25", "median")}
               for n, v in runs.items()}
    base = summary[names[-1]]
    print("median over the rounds (exchange = step - the no-DDP step):")
    for n, s in summary.items():
        exchange = 1e6 * (s["p10"] - base["p10"])
        print(f"  {n:40} p10 {s['p10'] * 1e6:6.0f} µs (exchange {exchange:5.0f})"
              f"  p25 {s['p25'] * 1e6:6.0f}  median {s['median'] * 1e6:6.0f}")
    if args.json:
        sys.path.insert(0, str(ROOT))
        from shendu._bench_report import write_script_json
        write_script_json(
            args.json, "python benchmarks/ddp_comm_ab.py "
            + " ".join(argv if argv is not None else sys.argv[1:]), load_before,
            trees={t: _git_commit(t) for t in trees},
            settings={"steps": args.steps, "rounds": args.rounds, "ranks": 2,
                      "threads_per_rank": 1,
                      "gradient_bytes": 4 * sum(math.prod(s) for s in SHAPES)},
            summary=summary, runs=runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
