"""The user loop under each GNU OpenMP wait policy shendu can set (``SHENDU_OMP_WAIT``):
short spin (the default), passive, and libgomp's own long spin; with no extra load and
beside one busy process per core, at the default threading and at 1 thread.

    python benchmarks/wait_policy.py --json benchmarks/results/wait-policy.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shendu import _bench_loop as L  # noqa: E402
from shendu._bench_report import machine_info  # noqa: E402

POLICIES = ("short", "passive", "spin")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=80)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--json", help="write the runs here")
    args = p.parse_args(argv)
    runs = []
    with tempfile.TemporaryDirectory(prefix="shendu-wait-") as tmp:
        data = L.prepare_data(tmp)
        for mode in ("quiet", "contended"):
            with L.busy_cores() if mode == "contended" else L._nothing():
                for rnd in range(args.rounds):
                    for policy in POLICIES:
                        os.environ["SHENDU_OMP_WAIT"] = policy  # read by the child
                        for threads in (0, 1):
                            r = L.run_one("shendu", tmp, args.steps, threads)
                            r.update(policy=policy, mode=mode, round=rnd,
                                     requested_threads=threads)
                            runs.append(r)
                            print(f"{mode:9} {policy:7} {L._line(r)}", flush=True)
    os.environ.pop("SHENDU_OMP_WAIT", None)
    if args.json:
        doc = {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": machine_info(),
               "data": data, "steps": args.steps, "runs": runs}
        Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
