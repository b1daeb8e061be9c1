"""How much 2 ranks x 1 thread can gain over 1 rank x 1 thread on a workload, taken apart:
what the cores give two independent processes, what stepping in lockstep costs, what the
least gradient exchange adds, and what DistributedDataParallel gets.

    python benchmarks/ddp_floor.py --workload mlp --json out.json

One job of 2 ranks (``shendu run --threads 1``), the same model, batch (per rank) and
SGD-momentum step as ``ddp_throughput.py``, runs five modes in turn, round after round:

- ``alone``: rank 0 steps while rank 1 sleeps (the 1-rank baseline);
- ``free``: both step with no contact at all (the ceiling of the cores and memory);
- ``lockstep``: both step, and meet after each backward at a barrier of two counters in
  shared memory, polled without sleeping (about a microsecond when both are there): the
  cost of waiting for the slower rank every step, with nothing exchanged;
- ``exchange``: lockstep, and at the barrier each rank has copied its gradients into its
  row of a shared window and then adds the other rank's row into its own gradients (the
  sum, unscaled): the least traffic any exact all-reduce of these gradients needs on
  each rank (its gradient out once, the other's in once), with no overlap and no flags
  per piece;
- ``ddp``: ``DistributedDataParallel`` as users run it.

Each mode's rate is samples per second over all ranks (for ``alone``, rank 0's); each
ratio is a mode's median block over ``alone``'s, with its range over the rounds (each
round's median block over that round's ``alone``). If ``lockstep`` is below a target, no
synchronous data parallelism (one exchange a step) reaches it here; if ``exchange`` is,
no exact exchange of these gradients through this machine's memory does.
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
MODES = ("alone", "free", "lockstep", "exchange", "ddp")
WORKLOADS = {"mlp": (784,), "lenet5": (1, 28, 28)}


def _job(args) -> None:
    sys.path.insert(0, str(HERE))
    import _bench_util as u
    import numpy as np
    from mpi4py import MPI

    import shendu as sd
    import shendu.distributed as dist
    sd.set_num_threads(1)
    dist.init_process_group("mpi")
    comm = MPI.COMM_WORLD
    me = comm.Get_rank()
    fw = u.shendu_fw()
    rng = np.random.default_rng(me)
    x = fw.tensor(rng.standard_normal((args.batch, *WORKLOADS[args.workload]),
                                      dtype=np.float32))
    y = fw.tensor(rng.integers(0, 10, args.batch, dtype=np.int64))

    def build(ddp=False):
        fw.seed(0)
        model = fw.fuse(getattr(u, args.workload)(fw.nn))
        model = sd.nn.parallel.DistributedDataParallel(model) if ddp else model
        return model, fw.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    plain, plain_opt = build()
    ddp, ddp_opt = build(ddp=True)
    params = list(plain.parameters())
    sizes = [p._data.size for p in params]
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
    n = int(offsets[-1])
    win = MPI.Win.Allocate_shared(2 * 2 * n * 4 if me == 0 else 0, 4, comm=comm)
    rows = np.ndarray((2, 2, n), np.float32, buffer=win.Shared_query(0)[0])
    flag_win = MPI.Win.Allocate_shared(2 * 8 if me == 0 else 0, 8, comm=comm)
    flags = np.ndarray((2,), np.int64, buffer=flag_win.Shared_query(0)[0])
    flags[me] = 0
    win.Lock_all(MPI.MODE_NOCHECK)
    flag_win.Lock_all(MPI.MODE_NOCHECK)
    comm.Barrier()
    count = [0]

    def meet():   # both ranks have reached this point of the same step
        count[0] += 1
        win.Sync()
        flags[me] = count[0]
        flag_win.Sync()
        while flags[1 - me] < count[0]:
            flag_win.Sync()
        win.Sync()

    def exchange():
        q = count[0] % 2   # alternate rows: a fast rank never writes what the other reads
        for p, lo, hi in zip(params, offsets[:-1], offsets[1:]):
            rows[q, me, lo:hi] = p.grad._data.reshape(-1)
        meet()
        for p, lo, hi in zip(params, offsets[:-1], offsets[1:]):
            g = p.grad._data.reshape(-1)
            np.add(g, rows[q, 1 - me, lo:hi], out=g)

    def step(model, opt, after_backward=None):
        opt.zero_grad()
        fw.F.cross_entropy(model(x), y).backward()
        if after_backward is not None:
            after_backward()
        opt.step()

    runs = {"alone": lambda: step(plain, plain_opt), "free": lambda: step(plain, plain_opt),
            "lockstep": lambda: step(plain, plain_opt, meet),
            "exchange": lambda: step(plain, plain_opt, exchange),
            "ddp": lambda: step(ddp, ddp_opt)}

    def share(value):
        return comm.bcast(value, root=0)

    def rest():   # rank 1 during 'alone': off the core, polling now and then
        req = comm.Ibarrier()
        while not req.Test():
            time.sleep(0.002)

    def block(mode, steps):
        if mode == "alone" and me == 1:
            rest()
            return None
        if mode != "alone":
            comm.Barrier()
        t0 = time.perf_counter()
        for _ in range(steps):
            runs[mode]()
        seconds = time.perf_counter() - t0
        if mode == "alone":
            rest()
            return args.batch * steps / seconds
        seconds = comm.allreduce(seconds, op=MPI.MAX)
        return 2 * args.batch * steps / seconds

    for mode in MODES:   # warm up every path (compilation, first allocations)
        block(mode, 20)
    t0 = time.perf_counter()
    block("alone", 20)
    steps = share(max(5, round(args.block_s / ((time.perf_counter() - t0) / 20))))
    rates = {mode: [] for mode in MODES}
    for r in range(args.rounds):
        order = MODES if r % 2 == 0 else MODES[::-1]
        for mode in order:
            for _ in range(args.blocks):
                rate = block(mode, steps)
                if me == 0:
                    rates[mode].append(rate)
    if me == 0:
        Path(args.result).write_text(json.dumps({"steps_per_block": steps, "rates": rates,
                                                 "gradient_floats": n}))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workload", choices=sorted(WORKLOADS), default="mlp")
    p.add_argument("--batch", type=int, default=64, help="samples per rank per step")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--blocks", type=int, default=3)
    p.add_argument("--block-s", type=float, default=0.5)
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
    out = run_ranks(__file__, ["--workload", args.workload, "--batch", str(args.batch),
                               "--rounds", str(args.rounds), "--blocks", str(args.blocks),
                               "--block-s", str(args.block_s)])
    def per_round(rates):   # each round's median block
        return [statistics.median(rates[i:i + args.blocks])
                for i in range(0, len(rates), args.blocks)]
    base, base_rounds = statistics.median(out["rates"]["alone"]), per_round(out["rates"]["alone"])
    summary = {}
    print(f"{args.workload}, batch {args.batch} per rank, {out['steps_per_block']} steps a "
          f"block; samples/s (quartiles), the ratio to 'alone' [its range over the rounds]:")
    for mode, rates in out["rates"].items():
        q1, med, q3 = statistics.quantiles(rates, n=4, method="inclusive")
        each = [a / b for a, b in zip(per_round(rates), base_rounds)]
        summary[mode] = {"median": med, "q1": q1, "q3": q3, "ratio": med / base,
                         "round_ratios": each}
        print(f"  {mode:9} {med:9.0f} ({q1:.0f}-{q3:.0f})  {med / base:.2f}x "
              f"[{min(each):.2f}-{max(each):.2f}]")
    if args.json:
        sys.path.insert(0, str(ROOT))
        from shendu._bench_report import write_script_json
        write_script_json(
            args.json, "python benchmarks/ddp_floor.py "
            + " ".join(argv if argv is not None else sys.argv[1:]), load_before,
            settings={"workload": args.workload, "batch_per_rank": args.batch,
                      "rounds": args.rounds, "blocks": args.blocks,
                      "steps_per_block": out["steps_per_block"],
                      "gradient_floats": out["gradient_floats"], "threads_per_rank": 1},
            summary=summary, rates=out["rates"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
