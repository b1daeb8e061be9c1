"""Pieces the neural agents share: MLPs and NumPy -> tensor at the boundary."""
from __future__ import annotations

import copy
import time

import numpy as np

from ... import from_numpy, nn
from ..evaluate import evaluate


def mlp(sizes, activation=nn.ReLU, out_activation=None) -> nn.Sequential:
    """``Linear -> act -> ... -> Linear`` through ``sizes`` (first is input, last is output)."""
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(activation())
    if out_activation is not None:
        layers.append(out_activation())
    return nn.Sequential(*layers)


def tensor(x, dtype=np.float32):
    return from_numpy(np.ascontiguousarray(x, dtype=dtype))


def evaluate_and_keep_best(agent, env, t, eval_episodes, eval_seed, nets_state, log,
                           log_window, start, checkpoint, stop_at) -> bool:
    """A periodic greedy evaluation during training: records it, keeps a copy of the best
    networks (DQN often collapses late, so the best beats the last), logs, checkpoints;
    True when ``stop_at`` is reached."""
    score = float(evaluate(agent, env.env_id, eval_episodes, seed=eval_seed).mean())
    agent.eval_history.append((t, score))
    if agent.best_eval is None or score >= agent.best_eval:
        agent.best_eval, agent.best_state = score, copy.deepcopy(nets_state())
    if log is not None:
        log(f"step {t}: greedy mean return {score:.1f} (best {agent.best_eval:.1f}), "
            f"last {log_window} training episodes {env.stats.mean_return(log_window):.1f}, "
            f"{agent.updates_done} updates, {time.perf_counter() - start:.0f} s")
    if checkpoint is not None:
        checkpoint(agent)
    return stop_at is not None and score >= stop_at
