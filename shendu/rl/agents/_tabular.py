"""The tabular TD loop shared by Q-learning, SARSA and Expected SARSA; each subclass only says
what value the next state contributes to the target."""
from __future__ import annotations

import numpy as np

from ..env import Env
from ..policies import EpsilonGreedy, LinearSchedule
from ..stats import EpisodeStats
from .base import Agent


class TabularAgent(Agent):
    """A Q-table over int states, learned online with an ε-greedy behaviour policy.

    Args:
        n_states, n_actions: table size (from the env's Discrete spaces).
        alpha: step size.
        gamma: discount.
        epsilon: exploration rate at the start; ``epsilon_end`` and ``epsilon_decay_episodes``
            anneal it linearly per episode (leave them out for a constant ε).
        seed: seeds exploration and tie-breaking.
        env_id: remembered for evaluation and the CLI.
    """

    on_policy = False  # SARSA picks a' before its update, the others after

    def __init__(self, n_states: int, n_actions: int, alpha: float = 0.1, gamma: float = 0.99,
                 epsilon: float = 0.1, epsilon_end: float | None = None,
                 epsilon_decay_episodes: int | None = None, seed: int | None = None,
                 env_id: str | None = None) -> None:
        if not 0 < alpha <= 1:
            raise ValueError(f"{self.algo}: alpha must be in (0, 1], got {alpha}")
        if not 0 <= gamma <= 1:
            raise ValueError(f"{self.algo}: gamma must be in [0, 1], got {gamma}")
        self.n_states, self.n_actions = int(n_states), int(n_actions)
        self.alpha, self.gamma = float(alpha), float(gamma)
        self.epsilon, self.epsilon_end = float(epsilon), epsilon_end
        self.epsilon_decay_episodes = epsilon_decay_episodes
        self.seed, self.env_id = seed, env_id
        self.Q = np.zeros((self.n_states, self.n_actions))
        self.rng = np.random.default_rng(seed)
        if epsilon_end is not None and epsilon_decay_episodes:
            sched = LinearSchedule(epsilon, epsilon_end, epsilon_decay_episodes)
        else:
            sched = self.epsilon
        self.behaviour = EpsilonGreedy(sched, self.rng)
        self.episodes_done = 0

    @classmethod
    def for_env(cls, env: Env, **kwargs):
        """An agent sized for ``env``, whose spaces must both be Discrete."""
        from ..env import require_action_space

        require_action_space(cls.algo, env.action_space, "discrete")
        if env.obs_kind != "discrete":
            raise TypeError(f"{cls.algo} needs a Discrete observation space (a table of "
                            f"states), got {env.observation_space}")
        return cls(env.n_states, env.n_actions, env_id=env.env_id, **kwargs)

    # ---- acting -------------------------------------------------------------------------
    def _state(self, observation) -> int:
        s = int(np.asarray(observation).reshape(()))
        if not 0 <= s < self.n_states:
            raise ValueError(f"{self.algo}: state {s} outside 0..{self.n_states - 1}")
        return s

    def act(self, observation) -> int:
        return int(np.argmax(self.Q[self._state(observation)]))

    def act_batch(self, observations) -> np.ndarray:
        return self.Q[np.asarray(observations, dtype=np.int64)].argmax(axis=1)

    def greedy_policy(self) -> np.ndarray:
        """The greedy action in every state (for exact evaluation with :mod:`shendu.rl.dp`)."""
        return self.Q.argmax(axis=1)

    # ---- learning -----------------------------------------------------------------------
    def next_value(self, s2: int, a2: int | None, step: int) -> float:
        raise NotImplementedError

    def train(self, env: Env, episodes: int, callback=None) -> EpisodeStats:
        """Run ``episodes`` episodes of online TD learning on ``env``; returns their stats
        (the returns the ε-greedy behaviour policy actually got).

        A truncated episode (time limit) still bootstraps from its last state; a terminal one
        does not.
        """
        Q, alpha, gamma = self.Q, self.alpha, self.gamma
        stats = EpisodeStats()
        for _ in range(episodes):
            ep = self.episodes_done
            s = self._state(env.reset())
            a = self.behaviour(Q[s], ep)
            ret, length = 0.0, 0
            while True:
                step = env.step(a)
                s2 = self._state(step.obs)
                ret += step.reward
                length += 1
                a2 = self.behaviour(Q[s2], ep) if self.on_policy else None
                target = step.reward
                if not step.terminated:
                    target += gamma * self.next_value(s2, a2, ep)
                Q[s, a] += alpha * (target - Q[s, a])
                if step.done:
                    break
                s, a = s2, (a2 if self.on_policy else self.behaviour(Q[s2], ep))
            stats.record(ret, length, step.terminated)
            self.episodes_done += 1
            if callback is not None:
                callback(self, stats)
        return stats

    # ---- saving -------------------------------------------------------------------------
    def get_config(self) -> dict:
        return dict(n_states=self.n_states, n_actions=self.n_actions, alpha=self.alpha,
                    gamma=self.gamma, epsilon=self.epsilon, epsilon_end=self.epsilon_end,
                    epsilon_decay_episodes=self.epsilon_decay_episodes, seed=self.seed,
                    env_id=self.env_id)

    def state_dict(self, include_buffer: bool = False) -> dict:
        return {"Q": self.Q.copy(), "episodes_done": self.episodes_done,
                "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        Q = np.asarray(state["Q"], dtype=np.float64)
        if Q.shape != self.Q.shape:
            raise ValueError(f"{self.algo}: Q-table of shape {Q.shape} in the state, expected "
                             f"{self.Q.shape}")
        self.Q[...] = Q
        self.episodes_done = int(state["episodes_done"])
        self.rng.bit_generator.state = state["rng"]
