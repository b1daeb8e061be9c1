"""``shendu rl train ALGO --env ENV --seed S --out DIR`` and ``shendu rl eval DIR``."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

ALGOS = ("q-learning", "sarsa", "expected-sarsa", "dqn", "ddpg")
TABULAR = ("q-learning", "sarsa", "expected-sarsa")

# Per-environment defaults: what docs/rl.md's results were trained with. ``length`` is
# episodes for the tabular methods and env steps for DQN/DDPG; ``max_episode_steps`` caps
# environments without a time limit (CliffWalking).
DEFAULTS: dict[str, dict[str, dict]] = {
    "tabular": {
        "FrozenLake-v1": dict(length=3_000, alpha=0.1, gamma=0.99, epsilon=1.0,
                              epsilon_end=0.01, epsilon_decay_episodes=2_700),
        "CliffWalking-v1": dict(length=500, alpha=0.5, gamma=1.0, epsilon=0.1,
                                max_episode_steps=500),
        "Taxi-v4": dict(length=3_000, alpha=0.5, gamma=0.99, epsilon=0.1),
        "*": dict(length=2_000, alpha=0.1, gamma=0.99, epsilon=0.1),
    },
    "dqn": {
        "CartPole-v1": dict(length=50_000, hidden=[256, 256], lr=2.3e-3, batch_size=64,
                            buffer_size=100_000, learning_starts=1000, train_freq=256,
                            gradient_steps=128, target_update_interval=10,
                            exploration_steps=8000, epsilon_end=0.04, eval_every=2500,
                            stop_at=500.0),
        "*": dict(length=100_000, eval_every=5000),
    },
    "ddpg": {
        "Pendulum-v1": dict(length=20_000, hidden=[128, 128], batch_size=128,
                            learning_starts=1000, eval_every=2000, stop_at=-170.0),
        "*": dict(length=100_000, eval_every=5000),
    },
}

# Flags: name -> (type, help). Each is only passed on when given.
_FLAGS = {
    "length": (int, "episodes (tabular) or environment steps (dqn, ddpg) to train for"),
    "max_episode_steps": (int, "time limit per episode (truncation, not termination)"),
    "alpha": (float, "tabular step size"),
    "gamma": (float, "discount"),
    "epsilon": (float, "exploration rate (tabular: start of the schedule)"),
    "epsilon_end": (float, "final exploration rate"),
    "epsilon_decay_episodes": (int, "tabular: episodes to anneal epsilon over"),
    "lr": (float, "dqn learning rate"),
    "hidden": (lambda s: [int(x) for x in s.split(",")], "hidden widths, e.g. 256,256"),
    "batch_size": (int, "minibatch size"),
    "buffer_size": (int, "replay buffer capacity"),
    "learning_starts": (int, "random steps before learning"),
    "train_freq": (int, "dqn: env steps between training phases"),
    "gradient_steps": (int, "dqn: updates per training phase"),
    "target_update_interval": (int, "dqn: env steps between target updates"),
    "tau": (float, "target update rate (1.0: hard copy)"),
    "exploration_steps": (int, "dqn: steps to anneal epsilon over"),
    "n_step": (int, "dqn: n-step returns"),
    "actor_lr": (float, "ddpg actor learning rate"),
    "critic_lr": (float, "ddpg critic learning rate"),
    "noise": (str, "ddpg exploration noise: gaussian or ou"),
    "noise_sigma": (float, "ddpg noise scale (actor units)"),
    "eval_every": (int, "dqn/ddpg: steps between greedy evaluations (best one is kept)"),
    "stop_at": (float, "dqn/ddpg: stop once a greedy evaluation's mean return reaches this"),
}
_BOOL_FLAGS = {"double": "dqn: Double DQN targets", "dueling": "dqn: dueling head",
               "prioritized": "dqn: prioritised replay", "td3": "ddpg: TD3's three fixes"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shendu rl", description="Reinforcement learning on "
                                     "Gymnasium environments.")
    sub = parser.add_subparsers(dest="command", metavar="command")
    p = sub.add_parser("train", help="train an agent; writes agent.sd, returns.csv, "
                       "returns.png and summary.json to --out")
    p.add_argument("algo", choices=ALGOS)
    p.add_argument("--env", required=True, help="Gymnasium id, e.g. CartPole-v1")
    p.add_argument("--seed", type=int, default=0,
                   help="seeds env.reset, the action space and shendu's generator")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--eval-episodes", type=int, default=None,
                   help="greedy episodes for the final evaluation (default 100; 20 for ddpg)")
    p.add_argument("--save-buffer", action="store_true",
                   help="dqn/ddpg: checkpoint.sd with the replay buffer after each evaluation")
    p.add_argument("--resume", action="store_true",
                   help="dqn/ddpg: continue from --out/checkpoint.sd")
    p.add_argument("--threads", type=int, default=None, help="shendu's BLAS threads")
    for name, (typ, help_) in _FLAGS.items():
        p.add_argument("--" + name.replace("_", "-"), dest=name, type=typ, help=help_)
    for name, help_ in _BOOL_FLAGS.items():
        p.add_argument("--" + name, dest=name, action=argparse.BooleanOptionalAction,
                       help=help_)
    p = sub.add_parser("eval", help="greedy evaluation of a trained agent")
    p.add_argument("dir", help="folder (or agent.sd) written by 'shendu rl train'")
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--seed", type=int, default=12345)
    p.add_argument("--render", action="store_true", help="show episodes (needs pygame)")
    return parser


def _settings(args) -> tuple[dict, int, int | None, dict]:
    group = "tabular" if args.algo in TABULAR else args.algo
    table = DEFAULTS[group]
    kw = dict(table.get(args.env, table["*"]))
    for name in list(_FLAGS) + list(_BOOL_FLAGS):
        value = getattr(args, name, None)
        if value is not None:
            kw[name] = value
    length = kw.pop("length")
    max_steps = kw.pop("max_episode_steps", None)
    run = dict(eval_every=kw.pop("eval_every", None), stop_at=kw.pop("stop_at", None))
    return kw, length, max_steps, run


def train(args) -> dict:
    from .. import set_num_threads
    from .agents import AGENTS, _load_all
    from .agents.base import load_checkpoint
    from .env import Env
    from .evaluate import evaluate
    from .stats import plot_returns

    _load_all()
    if args.threads is not None:
        set_num_threads(args.threads)
    kw, length, max_steps, run = _settings(args)
    os.makedirs(args.out, exist_ok=True)
    env = Env(args.env, seed=args.seed, max_episode_steps=max_steps)
    cls = AGENTS[args.algo]
    try:
        agent = cls.for_env(env, seed=args.seed, **kw)
    except TypeError as err:
        if "unexpected keyword" in str(err):
            raise ValueError(f"{args.algo}: {err}") from None
        raise
    ckpt_path = os.path.join(args.out, "checkpoint.sd")
    if args.resume:
        ckpt = load_checkpoint(ckpt_path)
        agent.load_state_dict(ckpt["state"])
        for key, values in ckpt["extra"].get("stats", {}).items():  # the episodes so far
            setattr(env.stats, key, list(values))
        print(f"resumed from {ckpt_path} at step {agent.steps_done}")
    start = time.perf_counter()
    cpu0 = time.process_time()
    if args.algo in TABULAR:
        stats = agent.train(env, length)
    else:
        def save(a):
            st = env.stats
            stats = dict(returns=st.returns, lengths=st.lengths, terminated=st.terminated,
                         times=st.times)
            a.save(ckpt_path, include_buffer=True, extra={"stats": stats})
        stats = agent.train(env, length, checkpoint=save if args.save_buffer else None,
                            log=lambda m: print(m, flush=True), **run)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu0
    agent.save(os.path.join(args.out, "agent.sd"))
    stats.to_csv(os.path.join(args.out, "returns.csv"))
    try:
        plot_returns({args.algo: stats}, os.path.join(args.out, "returns.png"),
                     title=f"{args.algo} on {args.env} (seed {args.seed})")
    except ImportError:
        print("matplotlib is not installed: no returns.png", file=sys.stderr)
    n_eval = args.eval_episodes or (20 if args.algo == "ddpg" else 100)
    returns = evaluate(agent, args.env, n_eval, seed=10_000 + args.seed,
                       env_kwargs={"max_episode_steps": max_steps} if max_steps else None)
    summary = dict(algo=args.algo, env=args.env, seed=args.seed, settings=kw, length=length,
                   train_seconds=round(seconds, 1), train_cpu_seconds=round(cpu, 1),
                   episodes=len(stats), steps=stats.total_steps,
                   best_eval=getattr(agent, "best_eval", None), eval_episodes=n_eval,
                   eval_mean_return=float(returns.mean()), eval_std_return=float(returns.std()))
    if args.algo in TABULAR:
        summary.update(_tabular_exact(agent, args.env, kw.get("gamma", 0.99)))
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(json.dumps(summary))
    return summary


def _tabular_exact(agent, env_id: str, gamma: float) -> dict:
    """For envs with a model: the greedy policy's exact value against the optimum."""
    from . import dp

    try:
        m = dp.tabular_model(env_id)
    except TypeError:
        return {}
    d = dp.start_distribution(env_id)
    pi = agent.greedy_policy()
    # Undiscounted expected return from the start (FrozenLake: the probability of reaching
    # the goal); a policy that never ends is cut at 10,000 steps.
    V_opt = dp.value_iteration(m, 1.0, max_iter=100_000)[0]
    V_pi = dp.policy_evaluation(m, pi, 1.0, horizon=10_000)
    return dict(exact_greedy_return=float(d @ V_pi), exact_optimal_return=float(d @ V_opt))


def evaluate_dir(args) -> dict:
    from .agents import load_agent
    from .agents.base import load_checkpoint
    from .env import Env
    from .evaluate import evaluate

    path = os.path.join(args.dir, "agent.sd") if os.path.isdir(args.dir) else args.dir
    agent = load_agent(path)
    env_id = load_checkpoint(path)["config"]["env_id"]
    if args.render:
        env = Env(env_id, seed=args.seed, render_mode="human")
        for _ in range(args.episodes):
            obs = env.reset()
            while True:
                step = env.step(agent.act(obs))
                obs = step.obs
                if step.done:
                    break
        env.close()
        returns = np.array(env.stats.returns)
    else:
        returns = evaluate(agent, env_id, args.episodes, seed=args.seed)
    out = dict(env=env_id, algo=agent.algo, episodes=args.episodes,
               mean_return=float(returns.mean()), std_return=float(returns.std()),
               min_return=float(returns.min()), max_return=float(returns.max()))
    print(json.dumps(out))
    return out


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        if args.command == "train":
            train(args)
        else:
            evaluate_dir(args)
    except (ValueError, TypeError, FileNotFoundError, ImportError) as exc:
        print(f"shendu rl {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 0
