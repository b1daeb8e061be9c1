"""The user loop's step times for two checkouts of shendu, at the default threading and at
1 thread, with no extra load and beside K busy processes per core (PyTorch optionally, as
reference). Every run is its own process (``shendu._bench_loop``); the order of the
checkouts alternates between rounds, and each run records the load average it started at.

Used to measure the OpenMP wait policy and the thread count that follows the load
(``backend/runtime.py``, ``backend/thread_tuner.py``):

    git archive <old commit> shendu | tar -x -C /tmp/before
    git archive <new commit> shendu | tar -x -C /tmp/after    # or leave --after out
    python benchmarks/threads_before_after.py --before /tmp/before --before-commit <old> \\
        --after /tmp/after --after-commit <new> \\
        --modes quiet,busy1,busy2 --rounds 3 --steps 300 \\
        --json benchmarks/results/threads-follow-load.json

``busyK``: K busy processes per core beside the loop (``busy1`` is ``shendu bench
--contend``); ``contended`` is ``busy1`` (older name); ``torchK``: K PyTorch processes
multiplying 512x512 matrices on all cores with PyTorch's default (spinning) OpenMP
threads, the kind of load other people's training runs put on a shared machine.
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
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shendu import _bench_loop as L  # noqa: E402
from shendu._bench_report import machine_info  # noqa: E402

TORCH_LOAD = ("import torch\ntorch.set_num_threads({n})\na = torch.randn(512, 512)\n"
              "while True:\n    a @ a")


def _load(mode: str):
    """The load beside the loop for ``mode``: busy Python processes or PyTorch ones."""
    if mode.startswith("torch"):
        n = int(mode.removeprefix("torch"))
        return _torch_load(n)
    return L.busy_cores(_busy(mode))


@contextmanager
def _torch_load(n: int):
    with L.busy_cores(n, TORCH_LOAD.format(n=os.cpu_count() or 1)) as procs:
        time.sleep(3)  # torch imports
        yield procs


def _busy(mode: str) -> int:
    """Busy processes for a mode: quiet 0, contended / busy1 one per core, busyK K."""
    if mode.startswith("torch"):
        return 0
    per_core = {"quiet": 0, "contended": 1}.get(mode)
    if per_core is None:
        per_core = int(mode.removeprefix("busy"))
    return per_core * (os.cpu_count() or 1)


def _summary(runs: list[dict]) -> list[dict]:
    """Per mode, checkout and thread setting: the median of the runs' medians and spreads."""
    out = []
    keys = dict.fromkeys((r["mode"], r["who"], r["requested_threads"]) for r in runs)
    for mode, who, threads in keys:
        ok = [r for r in runs if (r["mode"], r["who"], r["requested_threads"])
              == (mode, who, threads) and "error" not in r]
        if ok:
            out.append({"mode": mode, "who": who, "requested_threads": threads,
                        "runs": len(ok),
                        "median_ms": statistics.median(r["median_ms"] for r in ok),
                        "medians_ms": [round(r["median_ms"], 1) for r in ok],
                        "spreads": [round(r["spread"], 2) for r in ok]})
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--before", required=True, help="folder holding the old shendu/")
    p.add_argument("--before-commit", help="the commit the old shendu/ came from")
    p.add_argument("--after", default=str(ROOT),
                   help="folder holding the new shendu/ (default: this checkout)")
    p.add_argument("--after-commit", help="the commit the new shendu/ came from (default: "
                   "this checkout's HEAD)")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--modes", default="contended,quiet",
                   help="comma-separated: quiet, busy1 (= contended), busy2, ...")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--torch", action="store_true", help="PyTorch runs too, as reference")
    p.add_argument("--json", help="write the runs here")
    args = p.parse_args(argv)
    sides = [("before", "shendu", args.before), ("after", "shendu", args.after)]
    runs = []
    with tempfile.TemporaryDirectory(prefix="shendu-threads-") as tmp:
        data = L.prepare_data(tmp)
        for r in range(args.rounds):
            for mode in args.modes.split(","):
                with _load(mode):
                    time.sleep(0.5)  # the busy processes start
                    for threads in (0, 1):
                        order = sides if r % 2 == 0 else sides[::-1]
                        if args.torch:
                            order = order + [("torch", "torch", None)]
                        for who, lib, source in order:
                            load = os.getloadavg()
                            res = L.run_one(lib, tmp, args.steps, threads, source=source)
                            res.update(who=who, mode=mode, round=r, requested_threads=threads,
                                       busy_processes=_busy(mode), load_at_start=load)
                            runs.append(res)
                            print(f"r{r} {mode:9} {who:6} load {load[0]:4.1f} {L._line(res)}"
                                  + (f"  [{res['threads_follow_load']}]"
                                     if res.get("threads_follow_load") else ""), flush=True)
    summary = _summary(runs)
    for s in summary:
        print(f"{s['mode']:9} {s['who']:6} threads {s['requested_threads'] or 'default':7} "
              f"median of {s['runs']} run medians {s['median_ms']:6.1f} ms  "
              f"{s['medians_ms']}  spreads {s['spreads']}")
    if args.json:
        commit = args.after_commit or subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
            text=True).stdout.strip()
        doc = {"command": "python " + " ".join([sys.argv[0]] + sys.argv[1:]),
               "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "commit": commit,
               "before_commit": args.before_commit, "machine": machine_info(),
               "data": data, "steps": args.steps, "before": args.before, "after": args.after,
               "summary": summary, "runs": runs}
        Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
