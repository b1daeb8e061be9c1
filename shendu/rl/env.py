"""A thin wrapper over a Gymnasium 1.x environment that keeps the loop honest.

The one subtle rule of the agent-environment loop is which transitions bootstrap: an
episode that ends because the agent reached a terminal state has no future (the target is
just the reward), but one cut off by a time limit (``truncated``) does, so the target still
adds ``gamma * V(next_obs)``. :class:`Step` carries both flags and the ``bootstrap`` mask the
agents use.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from .stats import EpisodeStats


def _gym():
    try:
        import gymnasium
    except ImportError as err:  # pragma: no cover - the extra is missing
        raise ImportError("shendu.rl needs Gymnasium: pip install 'shendu[rl]' "
                          "(gymnasium>=1.0)") from err
    return gymnasium


class Step(NamedTuple):
    """What one ``env.step`` returned, with the bootstrap mask spelled out."""

    obs: Any
    reward: float
    terminated: bool
    truncated: bool
    info: dict

    @property
    def done(self) -> bool:
        """The episode is over (either way): the next step needs a ``reset``."""
        return self.terminated or self.truncated

    @property
    def bootstrap(self) -> float:
        """1.0 when the target should add ``gamma * V(next_obs)``: always except at a terminal
        state. A time-limit truncation keeps bootstrapping."""
        return 0.0 if self.terminated else 1.0


def gym_make(env_id: str, **kwargs):
    """``gymnasium.make`` with an error that names the id and what exists.

    >>> gym_make("NoSuchEnv-v0")
    Traceback (most recent call last):
    ...
    ValueError: unknown environment id 'NoSuchEnv-v0' ...
    """
    gym = _gym()
    if not isinstance(env_id, str):
        raise TypeError(f"environment id must be a str like 'CartPole-v1', got {env_id!r}")
    try:
        return gym.make(env_id, **kwargs)
    except gym.error.Error as err:
        if env_id in gym.registry or "version" in str(err).lower():
            raise ValueError(f"cannot make environment {env_id!r}: {err}") from None
        known = sorted(k for k in gym.registry if "/" not in k)
        raise ValueError(f"unknown environment id {env_id!r} ({err}); registered ids include "
                         f"{', '.join(known[:12])}, ...") from None


def space_kind(space) -> str:
    """``'discrete'`` or ``'box'``; anything else is refused with the space named."""
    gym = _gym()
    if isinstance(space, gym.spaces.Discrete):
        return "discrete"
    if isinstance(space, gym.spaces.Box):
        return "box"
    raise TypeError(f"shendu.rl supports Discrete and Box spaces, got {space}")


def require_action_space(algo: str, space, kind: str) -> None:
    """Raise a clear error when ``algo`` cannot act in ``space`` (DQN on Box, DDPG on Discrete).

    >>> import gymnasium as gym
    >>> require_action_space("dqn", gym.spaces.Box(-1, 1, (1,)), "discrete")
    Traceback (most recent call last):
    ...
    TypeError: dqn needs a discrete (Discrete) action space, got Box(-1.0, 1.0, (1,), float32)
    """
    have = space_kind(space)
    if have != kind:
        want = "discrete (Discrete)" if kind == "discrete" else "continuous (Box)"
        raise TypeError(f"{algo} needs a {want} action space, got {space}")


class Env:
    """A Gymnasium environment with seeding, action/observation checks and episode statistics.

    Args:
        env: an environment id (``"CartPole-v1"``) or an already made Gymnasium env.
        seed: seeds the first ``reset`` and the action space, so a run repeats exactly.
        max_episode_steps: add (or replace) the time limit; episodes cut by it are
            *truncated*, not terminated.
        **kwargs: passed to ``gymnasium.make`` (``is_slippery=False``, ``render_mode=...``).

    >>> env = Env("CartPole-v1", seed=0)
    >>> obs = env.reset()
    >>> obs.shape, obs.dtype
    ((4,), dtype('float32'))
    >>> step = env.step(1)
    >>> step.reward, step.terminated, step.truncated, step.bootstrap
    (1.0, False, False, 1.0)
    """

    def __init__(self, env, seed: int | None = None, max_episode_steps: int | None = None,
                 **kwargs) -> None:
        if isinstance(env, str):
            if max_episode_steps is not None:
                kwargs["max_episode_steps"] = max_episode_steps
            env = gym_make(env, **kwargs)
        elif max_episode_steps is not None:
            env = _gym().wrappers.TimeLimit(env, max_episode_steps)
        self.env = env
        self.env_id = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
        self.observation_space = env.observation_space
        self.action_space = env.action_space
        self.obs_kind = space_kind(self.observation_space)
        self.action_kind = space_kind(self.action_space)
        self.seed = seed
        self._seeded = False
        self._obs = None
        self._ep_return = 0.0
        self._ep_length = 0
        self.stats = EpisodeStats()
        if seed is not None:
            self.action_space.seed(seed)
            self.observation_space.seed(seed)

    # ---- shapes -----------------------------------------------------------------------
    @property
    def obs_shape(self) -> tuple:
        """() for a Discrete observation (an int state), else the Box shape."""
        return () if self.obs_kind == "discrete" else tuple(self.observation_space.shape)

    @property
    def n_states(self) -> int:
        if self.obs_kind != "discrete":
            raise TypeError(f"{self.env_id}: n_states needs a Discrete observation space, "
                            f"got {self.observation_space}")
        return int(self.observation_space.n)

    @property
    def n_actions(self) -> int:
        if self.action_kind != "discrete":
            raise TypeError(f"{self.env_id}: n_actions needs a Discrete action space, "
                            f"got {self.action_space}")
        return int(self.action_space.n)

    # ---- the loop ---------------------------------------------------------------------
    def reset(self, seed: int | None = None):
        """Start an episode. The first reset uses the constructor's seed; later ones continue
        the environment's own generator (re-seeding every episode would replay one episode)."""
        if seed is None and not self._seeded:
            seed = self.seed
        self._seeded = True
        obs, _ = self.env.reset(seed=seed)
        self._obs = self._check_obs(obs)
        self._ep_return, self._ep_length = 0.0, 0
        return self._obs

    def step(self, action) -> Step:
        """Act once; the episode's return and length are recorded when it ends."""
        if self._obs is None:
            raise RuntimeError(f"{self.env_id}: call reset() before step()")
        obs, reward, terminated, truncated, info = self.env.step(self._check_action(action))
        obs = self._check_obs(obs)
        reward = float(reward)
        self._ep_return += reward
        self._ep_length += 1
        if terminated or truncated:
            self.stats.record(self._ep_return, self._ep_length, bool(terminated))
            self._obs = None
        else:
            self._obs = obs
        return Step(obs, reward, bool(terminated), bool(truncated), info)

    def close(self) -> None:
        self.env.close()

    def render(self):
        return self.env.render()

    # ---- checks -----------------------------------------------------------------------
    def _check_obs(self, obs):
        if self.obs_kind == "discrete":
            return int(obs)
        return np.asarray(obs, dtype=np.float32)

    def _check_action(self, action):
        space = self.action_space
        if self.action_kind == "discrete":
            a = int(action)
            if not 0 <= a - int(space.start) < space.n:
                raise ValueError(f"{self.env_id}: action {a} outside {space}")
            return a
        a = np.asarray(action, dtype=space.dtype)
        if a.size != int(np.prod(space.shape)):
            raise ValueError(f"{self.env_id}: action of shape {a.shape} does not fit the action "
                             f"space {space} (expected shape {space.shape})")
        return np.clip(a.reshape(space.shape), space.low, space.high)

    def __repr__(self) -> str:
        return (f"Env({self.env_id!r}, obs={self.observation_space}, "
                f"actions={self.action_space})")


def check_obs_shape(name: str, obs, expected: tuple) -> np.ndarray:
    """Return ``obs`` as float32, raising a clear error when its shape is not ``expected``
    (one observation) or ``(batch, *expected)``."""
    arr = np.asarray(obs, dtype=np.float32)
    if arr.shape != tuple(expected) and arr.shape[1:] != tuple(expected):
        raise ValueError(f"{name}: observation of shape {arr.shape} does not match the "
                         f"environment's observation shape {tuple(expected)} (or a batch of them)")
    return arr


def seed_everything(seed: int) -> np.random.Generator:
    """Seed shendu's generator (weight init) and return a NumPy generator for exploration.

    >>> a = seed_everything(3).random(); b = seed_everything(3).random(); a == b
    True
    """
    from .. import manual_seed

    manual_seed(seed)
    return np.random.default_rng(seed)
