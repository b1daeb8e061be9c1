"""Greedy evaluation over Gymnasium's vector API: many episodes run side by side, so a neural
agent computes all their actions in one batched forward pass."""
from __future__ import annotations

import numpy as np


def evaluate(agent, env_id: str, episodes: int = 10, seed: int = 0, num_envs: int | None = None,
             env_kwargs: dict | None = None) -> np.ndarray:
    """Returns of ``episodes`` greedy episodes (``agent.act_batch``), in a fixed order.

    Each of the ``num_envs`` copies runs the same number of episodes (give or take one), so
    short episodes are not over-counted the way "the first N to finish" would count them.

    >>> from shendu.rl import QLearning
    >>> agent = QLearning(16, 4)  # an all-zero table always moves left
    >>> evaluate(agent, "FrozenLake-v1", episodes=4, seed=0).tolist()
    [0.0, 0.0, 0.0, 0.0]
    """
    import gymnasium as gym

    from .env import gym_make

    gym_make(env_id, **(env_kwargs or {})).close()  # a clear error for a bad id
    n = max(1, min(num_envs or min(episodes, 16), episodes))
    quota = np.full(n, episodes // n)
    quota[: episodes % n] += 1
    venv = gym.make_vec(env_id, num_envs=n, vectorization_mode="sync",
                        vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP},
                        **(env_kwargs or {}))
    try:
        obs, _ = venv.reset(seed=seed)
        running = np.zeros(n)
        done_counts = np.zeros(n, dtype=np.int64)
        results: list[list[float]] = [[] for _ in range(n)]
        while (done_counts < quota).any():
            actions = np.asarray(agent.act_batch(obs))
            if agent.action_kind == "box":
                actions = actions.reshape(n, *venv.single_action_space.shape)
            obs, rewards, term, trunc, _ = venv.step(actions)
            running += rewards
            for i in np.flatnonzero(term | trunc):
                if done_counts[i] < quota[i]:
                    results[i].append(float(running[i]))
                    done_counts[i] += 1
                running[i] = 0.0
    finally:
        venv.close()
    return np.array([r for env_results in results for r in env_results])
