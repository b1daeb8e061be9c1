"""Train DQN on CartPole-v1 or DDPG on Pendulum-v1 for several seeds with ``shendu rl train``
and write a results file (per seed: steps, times, greedy evaluation; median; seeds solved).

    PYTHONPATH=. python examples/rl/neural.py dqn  --seeds 0 1 2 --runs runs/rl
    PYTHONPATH=. python examples/rl/neural.py ddpg --seeds 0 1 2 --runs runs/rl
    PYTHONPATH=. python examples/rl/neural.py dqn --collect-only --runs runs/rl  # summarise

Seeds run as separate processes side by side (``--parallel 1`` for one at a time); each
writes ``RUNS/ALGO-ENV-SEED/`` (agent.sd, checkpoint.sd, returns.csv, returns.png,
summary.json). ``train_cpu_seconds`` is the process's CPU time: on a shared machine it is the
fair measure of cost; ``train_seconds`` is wall time.
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _results import provenance  # noqa: E402

from shendu.rl import EpisodeStats, plot_returns  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TASKS = {"dqn": ("CartPole-v1", 475.0, 100), "ddpg": ("Pendulum-v1", -250.0, 20)}


def run_dir(runs, algo, seed):
    return os.path.join(runs, f"{algo}-{TASKS[algo][0]}-{seed}")


def train(algo, seeds, runs, parallel, extra):
    env_id = TASKS[algo][0]
    procs = []
    for seed in seeds:
        out = run_dir(runs, algo, seed)
        os.makedirs(out, exist_ok=True)
        cmd = [sys.executable, "-m", "shendu.cli", "rl", "train", algo, "--env", env_id,
               "--seed", str(seed), "--out", out, "--threads", "1", "--save-buffer", *extra]
        log = open(os.path.join(out, "train.log"), "w")
        procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT))
        if len(procs) >= parallel:
            procs.pop(0).wait()
    for p in procs:
        p.wait()


def collect(algo, seeds, runs, command):
    env_id, target, episodes = TASKS[algo]
    rows, scores = [], []
    for seed in seeds:
        path = os.path.join(run_dir(runs, algo, seed), "summary.json")
        if not os.path.exists(path):
            rows.append(f"| {seed} | (no summary.json: run missing or killed) | | | | | |")
            continue
        with open(path) as f:
            s = json.load(f)
        scores.append(s["eval_mean_return"])
        rows.append(f"| {seed} | {s['steps']} | {s['train_cpu_seconds']:.0f} | "
                    f"{s['train_seconds']:.0f} | {s['best_eval']:.1f} | "
                    f"{s['eval_mean_return']:.1f} ± {s['eval_std_return']:.1f} | "
                    f"{'yes' if s['eval_mean_return'] >= target else 'no'} |")
    solved = sum(x >= target for x in scores)
    lines = [f"# {algo.upper()} on {env_id}", "",
             f"Command: `{command}`", "",
             f"Target: mean return ≥ {target:g} over {episodes} greedy episodes (fresh seeds, "
             "after training; the network kept is the best of the evaluations during "
             "training).", "",
             "| seed | env steps | train CPU s | train wall s | best eval during training | "
             f"final {episodes}-episode eval (mean ± std) | solved |",
             "|---|---|---|---|---|---|---|", *rows, ""]
    if scores:
        lines.append(f"Median final return over {len(scores)} seeds: {np.median(scores):.1f}; "
                     f"{solved} of {len(scores)} seeds reach the target.")
    if scores:
        lines += ["", f"Settings: {s['settings']}, at most {s['length']} env steps."]
    lines += ["", f"Machine: {provenance()}. The machine was shared with other jobs (load "
              "average well above its 2 cores), so wall times are inflated; CPU seconds are "
              "the process's own (one BLAS thread).", ""]
    curves = {}
    for seed in seeds:
        csv = os.path.join(run_dir(runs, algo, seed), "returns.csv")
        if os.path.exists(csv):
            curves[f"seed {seed}"] = EpisodeStats.read_csv(csv)
    if curves:
        plot_returns(curves, os.path.join(HERE, f"{algo}_returns.png"), window=10,
                     title=f"{algo.upper()} on {env_id}: training-episode returns (exploring)")
        lines += [f"![training returns]({algo}_returns.png)", ""]
    out = os.path.join(HERE, f"results_{algo}.md")
    with open(out, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("algo", choices=sorted(TASKS))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--runs", default="runs/rl")
    p.add_argument("--parallel", type=int, default=3)
    p.add_argument("--collect-only", action="store_true")
    p.add_argument("--command", default=None, help="the command to cite in the results file")
    args, extra = p.parse_known_args()
    if not args.collect_only:
        train(args.algo, args.seeds, args.runs, args.parallel, extra)
    cmd = args.command or ("PYTHONPATH=. python examples/rl/neural.py " + " ".join(sys.argv[1:]))
    collect(args.algo, args.seeds, args.runs, cmd)


if __name__ == "__main__":
    main()
