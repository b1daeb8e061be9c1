"""The user loop's step times for two checkouts of shendu, quiet and beside one busy
process per core, at the default threading and at 1 thread (PyTorch too, as reference).

Used to measure the OpenMP wait policy (``backend/runtime.py``): the *before* checkout
spins, this one waits passively. Every run is its own process (``shendu._bench_loop``).

    git archive <old commit> shendu | tar -x -C /tmp/before
    python benchmarks/threads_before_after.py --before /tmp/before --steps 60 \\
        --json benchmarks/results/threads-under-load.json
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shendu import _bench_loop as L  # noqa: E402
from shendu._bench_report import machine_info  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--before", required=True, help="folder holding the old shendu/")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--modes", default="contended,quiet")
    p.add_argument("--json", help="write the runs here")
    args = p.parse_args(argv)
    runs = []
    with tempfile.TemporaryDirectory(prefix="shendu-threads-") as tmp:
        data = L.prepare_data(tmp)
        for mode in args.modes.split(","):
            with L.busy_cores() if mode == "contended" else L._nothing():
                for threads in (0, 1):
                    for who, lib, source in (("before", "shendu", args.before),
                                             ("after", "shendu", str(ROOT)),
                                             ("torch", "torch", None)):
                        r = L.run_one(lib, tmp, args.steps, threads, source=source)
                        r.update(who=who, mode=mode, requested_threads=threads)
                        runs.append(r)
                        print(f"{mode:9} {who:6} {L._line(r)}", flush=True)
    if args.json:
        doc = {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": machine_info(),
               "data": data, "steps": args.steps, "before": args.before, "runs": runs}
        Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
