"""The pipeline bubble of ``shendu.distributed.pipeline.Pipe``: the idle fraction of each
stage against the theory (p - 1) / (m + p - 1), for p stages and m micro-batches, GPipe and
1F1B, and the peak number of micro-batches whose activations a stage holds.

    python benchmarks/pipeline_bubble.py --json benchmarks/results/pipeline-bubble.json

Each stage is the same block (``--layers`` Linear(width, width) + Tanh), every micro-batch
has ``--micro`` rows whatever m is, so each forward and each backward costs the same on
every stage, as the theory assumes. Three measurements per (p, m, schedule):

- ``wall``: from the stages' compute timestamps (``time.perf_counter``, one clock for all
  processes): 1 - (this stage's compute time) / (first compute start to last compute end on
  any stage), averaged over stages and steps. Honest only with a free core per rank: with
  more ranks than cores the stages share cores and the numbers mean little (``oversubscribed``
  in the results).
- ``replay``: the schedule exactly as it ran (each stage's order of forwards and backwards,
  recorded) replayed with each op's measured *CPU* time (``time.thread_time``, which does not
  grow while the process waits for a core) and free messages: what the run would have shown
  with one dedicated core per stage. This is the number that stays meaningful when ranks
  outnumber cores.
- ``uniform``: the same replay with every forward 1 and every backward 2 compute units
  (checks the schedule alone; it must equal the theory).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def theory(p: int, m: int) -> float:
    return (p - 1) / (m + p - 1)


def replay(timelines: list[list[tuple]], cost) -> list[float]:
    """Idle fraction of each stage when every op starts as soon as its stage is free and its
    input is there (forward i after the previous stage's forward i, backward i after the
    next stage's backward i), ops costing ``cost(event)``, messages free."""
    p = len(timelines)
    end: dict[tuple[str, int, int], float] = {}
    clock, pos = [0.0] * p, [0] * p
    busy = [sum(cost(e) for e in tl) for tl in timelines]
    while any(pos[s] < len(timelines[s]) for s in range(p)):
        moved = False
        for s in range(p):
            while pos[s] < len(timelines[s]):
                e = timelines[s][pos[s]]
                kind, i = e[0], e[1]
                dep = ("F", s - 1, i) if kind == "F" and s > 0 else \
                    ("B", s + 1, i) if kind == "B" and s < p - 1 else None
                if dep is not None and dep not in end:
                    break
                start = max(clock[s], end[dep] if dep else 0.0)
                clock[s] = end[(kind, s, i)] = start + cost(e)
                pos[s] += 1
                moved = True
        if not moved:
            raise RuntimeError("replay: the recorded schedules deadlock")
    span = max(clock)
    return [1 - b / span for b in busy]


def wall(timelines: list[list[tuple]]) -> list[float]:
    start = min(e[2] for tl in timelines for e in tl)
    span = max(e[3] for tl in timelines for e in tl) - start
    return [1 - sum(e[3] - e[2] for e in tl) / span for tl in timelines]


def job(args) -> None:
    """One rank of the measuring job (run under ``shendu run``)."""
    import numpy as np

    import shendu as sd
    import shendu.distributed as dist
    from shendu import nn
    from shendu.distributed.pipeline import Pipe

    dist.init_process_group("mpi")
    rank, p = dist.get_rank(), dist.get_world_size()
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    rows = []
    for m in args.chunks:
        for schedule in ("gpipe", "1f1b"):
            sd.manual_seed(0)
            blocks = [layer for _ in range(p * args.layers)
                      for layer in (nn.Linear(args.width, args.width), nn.Tanh())]
            pipe = Pipe(nn.Sequential(*blocks), chunks=m, schedule=schedule,
                        balance=[2 * args.layers] * p, loss_fn=nn.MSELoss())
            opt = sd.optim.SGD(pipe.parameters(), lr=1e-4)
            rng = np.random.default_rng(rank)
            x = sd.tensor(rng.standard_normal((m * args.micro, args.width), dtype=np.float32))
            y = sd.zeros(m * args.micro, args.width)
            steps = []
            for step in range(args.warmup + args.steps):
                comm.Barrier()
                opt.zero_grad()
                pipe.step(x if rank == 0 else None, target=y if rank == p - 1 else None)
                opt.step()
                if step >= args.warmup:
                    steps.append({"timeline": pipe.timeline, "peak": pipe.peak_in_flight})
            everyone = comm.gather(steps, root=0)
            if rank == 0:
                rows.append({"p": p, "m": m, "schedule": schedule, "ranks": everyone})
                print(f"p={p} m={m} {schedule} done", flush=True)
    if rank == 0:
        Path(args.job).write_text(json.dumps(rows))
    dist.destroy_process_group()


def summarise(raw: list[dict], cpus: int) -> list[dict]:
    out = []
    for row in raw:
        p, m = row["p"], row["m"]
        nsteps = len(row["ranks"][0])
        per_step = [[row["ranks"][s][k]["timeline"] for s in range(p)] for k in range(nsteps)]
        walls = [wall(tl) for tl in per_step]
        cpu = [replay(tl, lambda e: e[4]) for tl in per_step]
        units = [replay(tl, lambda e: 1.0 if e[0] == "F" else 2.0) for tl in per_step]

        def mean(xs):
            return round(sum(sum(x) / len(x) for x in xs) / len(xs), 4)
        def op_ms(kind, s, per_step=per_step):
            xs = [e[4] for tl in per_step for e in tl[s] if e[0] == kind]
            return round(1e3 * sum(xs) / len(xs), 2)
        out.append({
            "p": p, "m": m, "schedule": row["schedule"], "theory": round(theory(p, m), 4),
            "uniform": mean(units), "replay": mean(cpu), "wall": mean(walls),
            "wall_per_stage": [round(sum(w[s] for w in walls) / nsteps, 4) for s in range(p)],
            "oversubscribed": p > cpus,
            "peak_in_flight": [row["ranks"][s][0]["peak"] for s in range(p)],
            "forward_cpu_ms": [op_ms("F", s) for s in range(p)],
            "backward_cpu_ms": [op_ms("B", s) for s in range(p)]})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stages", default="2,3,4", help="pipeline depths p to run")
    ap.add_argument("--chunks", default="1,2,4,8", help="micro-batch counts m")
    ap.add_argument("--width", type=int, default=1024)
    ap.add_argument("--layers", type=int, default=4, help="Linear+Tanh blocks per stage")
    ap.add_argument("--micro", type=int, default=64, help="rows per micro-batch")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--job", help=argparse.SUPPRESS)   # set when running as a rank
    args = ap.parse_args(argv)
    args.chunks = [int(c) for c in str(args.chunks).split(",")]
    if args.job:
        job(args)
        return 0
    from shendu._bench_report import machine_info, measured_at
    load_before = os.getloadavg()
    cpus = len(os.sched_getaffinity(0))
    raw = []
    with tempfile.TemporaryDirectory(prefix="shendu-bubble-") as tmp:
        for p in [int(s) for s in args.stages.split(",")]:
            out = Path(tmp) / f"p{p}.json"
            cmd = [sys.executable, "-m", "shendu.cli", "run", "--nproc", str(p), "--timeout",
                   "900", __file__, "--job", str(out), "--chunks",
                   ",".join(map(str, args.chunks)), "--width", str(args.width), "--layers",
                   str(args.layers), "--micro", str(args.micro), "--steps", str(args.steps),
                   "--warmup", str(args.warmup)]
            env = dict(os.environ, PYTHONPATH=os.pathsep.join(
                x for x in (str(ROOT), os.environ.get("PYTHONPATH")) if x))
            subprocess.run(cmd, check=True, env=env)
            raw += json.loads(out.read_text())
    rows = summarise(raw, cpus)
    print(f"{'p':>2} {'m':>2} {'schedule':8} {'theory':>7} {'uniform':>7} {'replay':>7} "
          f"{'wall':>7}  peak in flight")
    for r in rows:
        flag = " (ranks > cores)" if r["oversubscribed"] else ""
        print(f"{r['p']:>2} {r['m']:>2} {r['schedule']:8} {r['theory']:7.3f} {r['uniform']:7.3f}"
              f" {r['replay']:7.3f} {r['wall']:7.3f}  {r['peak_in_flight']}{flag}  "
              f"F ms {r['forward_cpu_ms']} B ms {r['backward_cpu_ms']}")
    if args.json:
        doc = {"command": "python benchmarks/pipeline_bubble.py " + " ".join(argv or sys.argv[1:]),
               "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "commit": measured_at(),
               "machine": machine_info(), "load_average_before": load_before,
               "load_average_after": os.getloadavg(),
               "config": {k: v for k, v in vars(args).items() if k not in ("json", "job")},
               "rows": rows}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
