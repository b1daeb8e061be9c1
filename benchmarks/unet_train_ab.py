"""``shendu bench unet_train`` for several shendu checkouts, alternated round by round, so
that a change to the U-Net's step (``bench_unet.py``) is judged against the noise of a
shared machine:

    git worktree add /tmp/before <commit>
    python benchmarks/unet_train_ab.py --trees /tmp/before,. --rounds 4 --json out.json

Each run is its own process, started outside the repository (so the checkout on
``PYTHONPATH`` is the one imported) with this file's ``benchmarks/`` as the bench
directory, so every checkout times the same workload against PyTorch in the same run.
Prints and writes, per round and checkout, shendu's and PyTorch's samples/s and their
ratio, and the median ratio per checkout.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run_bench(tree: str, blocks: int, threads: int) -> dict:
    """One ``shendu bench unet_train`` run of the checkout ``tree``: its result row."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run.json"
        code = ("import sys; from shendu.cli import main; sys.argv = ['shendu'] + "
                "sys.argv[1:]; main()")
        cmd = [sys.executable, "-c", code, "bench", "--dir", str(HERE), "--blocks",
               str(blocks), "--threads", str(threads), "--no-memory", "--no-loop",
               "--json", str(out), "unet_train"]
        env = dict(os.environ, PYTHONPATH=str(Path(tree).resolve()))
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp)
        if proc.returncode:
            raise SystemExit(f"unet_train_ab: {tree}: {proc.stderr[-2000:]}")
        doc = json.loads(out.read_text())
    row = next(r for r in doc["results"] if r["name"] == "unet_train")
    return {"commit": doc["machine"].get("git_commit"), "shendu": row["shendu"]["median"],
            "torch": row["reference"]["median"], "ratio": row["ratio"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trees", default=".", help="comma-separated shendu checkouts")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--blocks", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", help="also write the runs here")
    args = p.parse_args()
    trees = args.trees.split(",")
    runs = {t: [] for t in trees}
    for r in range(args.rounds):
        for t in trees:
            runs[t].append(run_bench(t, args.blocks, args.threads))
            last = runs[t][-1]
            print(f"round {r + 1} {t}: shendu {last['shendu']:.1f}, torch {last['torch']:.1f} "
                  f"samples/s, ratio {last['ratio']:.2f}", flush=True)
    summary = {t: {"commit": runs[t][0]["commit"],
                   "median_ratio": statistics.median(x["ratio"] for x in runs[t]),
                   "median_samples_per_s": statistics.median(x["shendu"] for x in runs[t])}
               for t in trees}
    for t, s in summary.items():
        print(f"{t} ({s['commit']}): median ratio {s['median_ratio']:.2f}, "
              f"{s['median_samples_per_s']:.1f} samples/s")
    if args.json:
        Path(args.json).write_text(json.dumps({"threads": args.threads, "blocks": args.blocks,
                                               "runs": runs, "summary": summary}, indent=1))


if __name__ == "__main__":
    main()
