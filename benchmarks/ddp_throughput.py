"""Data-parallel training throughput: shendu's DistributedDataParallel on 2 ranks x 1
thread against 1 rank x 1 thread, and PyTorch's (gloo, the same launcher) on the same
workloads in the same run.

    python benchmarks/ddp_throughput.py --json benchmarks/results/ddp-throughput.json

Every job goes through ``shendu run --threads 1`` (mpiexec; one BLAS/OpenMP thread per
rank); PyTorch joins with ``init_process_group("gloo", init_method="env://")``. A job warms
up, sizes a block to about ``--block-s`` seconds on rank 0 (the count is broadcast, so every
rank steps alike), then times ``--blocks`` blocks between barriers. A step is forward,
cross-entropy, backward (DDP's gradient all-reduce inside it on 2 ranks) and SGD-momentum
on a fixed random batch of ``--batch`` samples *per rank* (weak scaling: 2 ranks process
twice the samples per step). One process without DDP is the 1-rank baseline of each
framework. The ceiling is shendu on 2 ranks without DDP (no communication at all): what
two processes computing side by side get from this machine's cores and memory. Jobs run
in rounds, each round every (workload, framework, ranks) once, so a change in the
machine's load reaches all of them alike; the summary is the median over all blocks with
the quartiles, and each ratio's spread over the rounds.

The shendu bench registry times one step function in its own process beside its twin, which
a multi-process job does not fit; hence this script.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORKLOADS = {   # name: (model builder in _bench_util, input shape per sample)
    "mlp": ("mlp", (784,)),             # the main job's MLP, 784-512-512-10, flat
    "lenet5": ("lenet5", (1, 28, 28)),
}


# ------------------------------------------------------------------------ one rank's job
def _job(args) -> None:
    """Runs on every rank of a job started by ``shendu run``."""
    sys.path.insert(0, str(HERE))
    import _bench_util as u
    import numpy as np
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    builder, shape = WORKLOADS[args.workload]
    rng = np.random.default_rng(rank)
    x_np = rng.standard_normal((args.batch, *shape), dtype=np.float32)
    y_np = rng.integers(0, 10, args.batch, dtype=np.int64)
    if args.framework == "torch":
        import torch
        import torch.distributed as dist
        torch.set_num_threads(1)
        fw = u.torch_fw()
        if world > 1:
            dist.init_process_group("gloo", init_method="env://")
        fw.seed(0)
        model = getattr(u, builder)(fw.nn)
        if world > 1:
            model = torch.nn.parallel.DistributedDataParallel(model)

        def barrier():
            if world > 1:
                dist.barrier()

        def share(n):   # rank 0's block size for every rank
            t = torch.tensor([n])
            if world > 1:
                dist.broadcast(t, 0)
            return int(t.item())
    else:
        import shendu as sd
        import shendu.distributed as dist
        sd.set_num_threads(1)
        fw = u.shendu_fw()
        dist.init_process_group("mpi")
        fw.seed(0)
        model = fw.fuse(getattr(u, builder)(fw.nn))
        if world > 1 and not args.no_comm:
            model = sd.nn.parallel.DistributedDataParallel(model)

        def barrier():
            dist.barrier()

        def share(n):
            t = sd.tensor([n])
            dist.broadcast(t, 0)
            return int(t.item())
    x, y = fw.tensor(x_np), fw.tensor(y_np)
    opt = fw.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()

    def step():
        opt.zero_grad()
        fw.F.cross_entropy(model(x), y).backward()
        opt.step()

    # every count of steps is rank 0's, so that all ranks run the same collectives
    barrier()
    t0 = time.perf_counter()
    for _ in range(3):
        step()
    per_step = (time.perf_counter() - t0) / 3
    for _ in range(share(max(0, round(args.warmup_s / per_step) - 3))):
        step()
    t0 = time.perf_counter()
    for _ in range(3):
        step()
    per_step = (time.perf_counter() - t0) / 3
    steps = share(max(2, round(args.block_s / per_step)))
    rates = []
    for _ in range(args.blocks):
        barrier()
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        barrier()
        rates.append(world * args.batch * steps / (time.perf_counter() - t0))
    if rank == 0:
        Path(args.result).write_text(json.dumps({"steps_per_block": steps,
                                                 "samples_per_s": rates}))


# ------------------------------------------------------------------------ the driver
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(framework, workload, nproc, args, tmp, no_comm=False) -> dict:
    result = Path(tmp) / f"{framework}-{workload}-{nproc}{'-nocomm' if no_comm else ''}.json"
    result.unlink(missing_ok=True)
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()),
               PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH"))
                                          if p))
    cmd = [sys.executable, "-m", "shendu.cli", "run", "--nproc", str(nproc), "--threads", "1",
           "--timeout", "600", str(Path(__file__).resolve()), "--job",
           "--framework", framework, "--workload", workload, "--batch", str(args.batch),
           "--blocks", str(args.blocks), "--block-s", str(args.block_s),
           "--warmup-s", str(args.warmup_s), "--result", str(result)]
    if no_comm:
        cmd.append("--no-comm")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{framework} {workload} x{nproc} failed ({proc.returncode}):\n"
                           + proc.stdout[-2000:] + proc.stderr[-2000:])
    return json.loads(result.read_text())


def _stats(values):
    v = sorted(values)
    q1, med, q3 = statistics.quantiles(v, n=4, method="inclusive") if len(v) > 1 else v * 3
    return {"median": med, "q1": q1, "q3": q3, "min": v[0], "max": v[-1],
            "spread": (q3 - q1) / med if med else None}


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workloads", default="mlp,lenet5")
    p.add_argument("--frameworks", default="shendu,torch")
    p.add_argument("--batch", type=int, default=64, help="samples per rank per step")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--blocks", type=int, default=5)
    p.add_argument("--block-s", type=float, default=0.5)
    p.add_argument("--warmup-s", type=float, default=1.0)
    p.add_argument("--json", help="write the results here")
    p.add_argument("--no-ceiling", action="store_true", help="skip the compute ceiling: "
                   "shendu on 2 ranks with no DDP (no communication), the most 2 ranks can "
                   "give on this machine")
    p.add_argument("--no-comm", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--job", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--framework", help=argparse.SUPPRESS)
    p.add_argument("--workload", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.job:
        _job(args)
        return 0
    workloads, frameworks = args.workloads.split(","), args.frameworks.split(",")
    load_before = _uptime()
    blocks: dict[str, list[float]] = {}
    per_round: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="shendu-ddp-bench-") as tmp:
        for rnd in range(args.rounds):
            medians = {}
            for w in workloads:
                for fw in frameworks:
                    for n in (1, 2):
                        key = f"{fw}/{w}/{n}"
                        rates = _run(fw, w, n, args, tmp)["samples_per_s"]
                        blocks.setdefault(key, []).extend(rates)
                        medians[key] = statistics.median(rates)
                        print(f"round {rnd + 1} {key:18} {medians[key]:9.0f} samples/s "
                              f"(blocks {', '.join(f'{r:.0f}' for r in rates)})", flush=True)
                if not args.no_ceiling and "shendu" in frameworks:
                    key = f"shendu/{w}/2-nocomm"
                    rates = _run("shendu", w, 2, args, tmp, no_comm=True)["samples_per_s"]
                    blocks.setdefault(key, []).extend(rates)
                    medians[key] = statistics.median(rates)
                    print(f"round {rnd + 1} {key:18} {medians[key]:9.0f} samples/s "
                          f"(no communication: the ceiling)", flush=True)
            per_round.append(medians)
    summary = {key: _stats(v) for key, v in blocks.items()}
    ratios = {}
    for w in workloads:
        for fw in frameworks:
            a, b = f"{fw}/{w}/2", f"{fw}/{w}/1"
            ratios[f"{fw} {w} 2 ranks / 1 rank"] = _ratio(summary, per_round, a, b)
        if f"shendu/{w}/2-nocomm" in summary:
            ratios[f"ceiling {w}: 2 ranks without communication / 1 rank"] = _ratio(
                summary, per_round, f"shendu/{w}/2-nocomm", f"shendu/{w}/1")
        if {"shendu", "torch"} <= set(frameworks):
            for n in (1, 2):
                ratios[f"{w} shendu / torch, {n} rank(s)"] = _ratio(
                    summary, per_round, f"shendu/{w}/{n}", f"torch/{w}/{n}")
    print("\nmedian samples/s over all blocks (IQR / median):")
    for key, s in summary.items():
        print(f"  {key:20} {s['median']:9.0f}  ±{100 * s['spread']:.0f}%")
    print("ratios of the all-block medians [range of the per-round ratios]:")
    for name, r in ratios.items():
        print(f"  {name:52} {r['ratio']:.2f}x  [{r['round_min']:.2f}-{r['round_max']:.2f}]")
    load_after = _uptime()
    print(f"load: before {load_before!r}; after {load_after!r}")
    if args.json:
        sys.path.insert(0, str(ROOT))
        from shendu._bench_report import machine_info
        doc = {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
               "command": "python benchmarks/ddp_throughput.py "
                          + " ".join(a for a in (argv if argv is not None else sys.argv[1:])),
               "commit": machine_info().get("git_commit"), "machine": machine_info(),
               "uptime_before": load_before, "uptime_after": load_after,
               "settings": {"batch_per_rank": args.batch, "rounds": args.rounds,
                            "blocks": args.blocks, "block_s": args.block_s,
                            "threads_per_rank": 1, "optimizer": "SGD momentum 0.9",
                            "launcher": "shendu run (mpiexec, MPICH)",
                            "torch_backend": "gloo, init_method env://"},
               "summary": summary, "ratios": ratios, "rounds": per_round, "blocks": blocks}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        tmp_path = Path(args.json).with_suffix(".json.tmp")
        tmp_path.write_text(json.dumps(doc, indent=1) + "\n")
        os.replace(tmp_path, args.json)
    return 0


def _ratio(summary, per_round, a, b) -> dict:
    each = [r[a] / r[b] for r in per_round if a in r and b in r]
    return {"ratio": summary[a]["median"] / summary[b]["median"],
            "round_min": min(each), "round_max": max(each), "per_round": each}


if __name__ == "__main__":
    sys.exit(main())
