"""What every agent shares: greedy ``act``, a registry by name, and saving without pickle."""
from __future__ import annotations

import os

import numpy as np

AGENTS: dict[str, type] = {}
FORMAT = "shendu.rl.agent/1"


def register(cls):
    """Class decorator: make ``cls`` loadable by its ``algo`` name."""
    AGENTS[cls.algo] = cls
    return cls


class Agent:
    """Base class. Subclasses set ``algo`` and ``action_kind`` and implement ``act``,
    ``act_batch``, ``get_config``, ``state_dict`` and ``load_state_dict``."""

    algo = "agent"
    action_kind = "discrete"

    def act(self, observation):
        """The greedy action for one observation: deterministic, explores nothing."""
        raise NotImplementedError

    def act_batch(self, observations) -> np.ndarray:
        """Greedy actions for a batch of observations (vectorised evaluation)."""
        return np.stack([np.asarray(self.act(o)) for o in observations])

    def get_config(self) -> dict:
        raise NotImplementedError

    def state_dict(self, include_buffer: bool = False) -> dict:
        raise NotImplementedError

    def load_state_dict(self, state: dict) -> None:
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def save(self, path: str | os.PathLike, include_buffer: bool = False,
             extra: dict | None = None) -> None:
        """Write the agent (and optionally its replay buffer and optimiser state, so a killed
        run resumes) to ``path``: a zip of ``.npy`` arrays plus JSON, atomically replaced."""
        from ...serialization import save

        save({"format": FORMAT, "algo": self.algo, "config": self.get_config(),
              "state": self.state_dict(include_buffer=include_buffer),
              "extra": extra or {}}, path)


def load_checkpoint(path: str | os.PathLike) -> dict:
    from ...serialization import load

    ckpt = load(path)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"load_agent: {os.fspath(path)!r} is not a shendu.rl agent file "
                         f"(expected format {FORMAT!r})")
    if ckpt["algo"] not in AGENTS:
        raise ValueError(f"load_agent: unknown algorithm {ckpt['algo']!r} in {os.fspath(path)!r}; "
                         f"known: {sorted(AGENTS)}")
    return ckpt


def load_agent(path: str | os.PathLike) -> Agent:
    """Load an agent saved by ``agent.save`` / ``shendu rl train``; ``agent.act(obs)`` then
    gives the greedy action (an int for discrete spaces, a NumPy array for continuous ones).

    A directory is read as ``DIR/agent.sd``.
    """
    from . import _load_all

    _load_all()
    if os.path.isdir(path):
        path = os.path.join(path, "agent.sd")
    ckpt = load_checkpoint(path)
    agent = AGENTS[ckpt["algo"]].from_config(ckpt["config"])
    agent.load_state_dict(ckpt["state"])
    return agent
