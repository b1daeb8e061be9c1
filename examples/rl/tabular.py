"""Tabular RL measured exactly: Q-learning, SARSA and Expected SARSA on FrozenLake 4x4
(slippery) and CliffWalking, against value iteration on the environments' own models.

    PYTHONPATH=. python examples/rl/tabular.py            # writes examples/rl/results_tabular.md
                                                          # and examples/rl/cliffwalking.png

FrozenLake: the greedy policy's probability of reaching the goal, computed exactly from the
model (policy evaluation), within FrozenLake-v1's 100-step limit and with no limit, as a
fraction of the best possible. CliffWalking: the greedy path's return and whether it walks the
cliff edge, and the online (ε-greedy) returns while learning — Sutton & Barto's Example 6.6.
"""
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _results import provenance  # noqa: E402

from shendu.rl import SARSA, Env, ExpectedSARSA, QLearning, dp, plot_returns  # noqa: E402
from shendu.rl.cli import DEFAULTS  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ALGOS = [QLearning, SARSA, ExpectedSARSA]
SEEDS = [0, 1, 2]


def train(cls, env_id, seed):
    kw = dict(DEFAULTS["tabular"][env_id])
    length = kw.pop("length")
    env = Env(env_id, seed=seed, max_episode_steps=kw.pop("max_episode_steps", None))
    agent = cls.for_env(env, seed=seed, **kw)
    t0 = time.process_time()
    stats = agent.train(env, length)
    return agent, stats, time.process_time() - t0, length, kw


def frozenlake(lines):
    m = dp.tabular_model("FrozenLake-v1")
    V_inf = dp.value_iteration(m, 1.0)[0][0]
    V100 = np.zeros(m.n_states)
    for _ in range(100):
        V100 = dp.q_values(m, V100, 1.0).max(axis=1)
    lines += ["## FrozenLake-v1 (4x4, slippery)", "",
              f"Optimum from value iteration: success probability {V100[0]:.4f} within the "
              f"100-step limit (finite-horizon value iteration), {V_inf:.4f} with no limit "
              "(= 14/17).", ""]
    lines += ["| algorithm | seed | episodes | P(success), 100 steps | / optimum | "
              "P(success), no limit | / optimum | CPU s |", "|---|---|---|---|---|---|---|---|"]
    for cls in ALGOS:
        for seed in SEEDS:
            agent, _, cpu, length, kw = train(cls, "FrozenLake-v1", seed)
            pi = agent.greedy_policy()
            p100 = dp.policy_evaluation(m, pi, 1.0, horizon=100)[0]
            pinf = dp.policy_evaluation(m, pi, 1.0)[0]
            lines.append(f"| {cls.algo} | {seed} | {length} | {p100:.4f} | {p100 / V100[0]:.3f}"
                         f" | {pinf:.4f} | {pinf / V_inf:.3f} | {cpu:.1f} |")
    lines += ["", f"Settings: {kw}.", ""]


def cliffwalking(lines):
    m = dp.tabular_model("CliffWalking-v1")
    edge = set(range(25, 35))
    lines += ["## CliffWalking-v1", "",
              f"Optimum from value iteration: {dp.value_iteration(m, 1.0)[0][36]:.0f} (13 steps "
              "along the cliff edge).", "",
              "| algorithm | seed | greedy return (exact) | walks the cliff edge | mean online "
              "return, last 100 episodes | CPU s |", "|---|---|---|---|---|---|"]
    curves = {}
    for cls in ALGOS:
        runs = []
        for seed in SEEDS:
            agent, stats, cpu, length, kw = train(cls, "CliffWalking-v1", seed)
            ret = dp.policy_evaluation(m, agent.greedy_policy(), 1.0, horizon=200)[36]
            env = Env("CliffWalking-v1", max_episode_steps=200)
            s, path = env.reset(), {36}
            while True:
                step = env.step(agent.act(s))
                s = step.obs
                path.add(s)
                if step.done:
                    break
            lines.append(f"| {cls.algo} | {seed} | {ret:.0f} | {'yes' if edge <= path else 'no'}"
                         f" | {np.mean(stats.returns[-100:]):.1f} | {cpu:.1f} |")
            runs.append(stats.returns)
        curves[cls.algo] = np.mean(runs, axis=0)
    lines += ["", f"Settings: {kw}, {length} episodes capped at 500 steps (truncated, so "
              "bootstrapped). Exploration stays on (constant ε = 0.1): with ε annealed to 0 "
              "SARSA converges to Q-learning's path.", "",
              "![online returns](cliffwalking.png)", ""]
    plot_returns(curves, os.path.join(HERE, "cliffwalking.png"), window=10, ylim=(-100, 0),
                 title=f"CliffWalking: online ε-greedy returns, mean of seeds {SEEDS}")


def main():
    lines = ["# Tabular RL results", "",
             "Command: `PYTHONPATH=. python examples/rl/tabular.py`", ""]
    t0 = time.perf_counter()
    frozenlake(lines)
    cliffwalking(lines)
    lines += [f"Machine: {provenance()}. Wall time of the whole script: "
              f"{time.perf_counter() - t0:.0f} s (shared machine).", ""]
    with open(os.path.join(HERE, "results_tabular.md"), "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
