"""One file per algorithm; every agent registers under its CLI name (``q-learning``, ...)."""
from .base import AGENTS, Agent, load_agent
from .expected_sarsa import ExpectedSARSA
from .q_learning import QLearning
from .sarsa import SARSA


def _load_all() -> None:
    """Import the neural agents too (they pull in shendu.nn and shendu.optim)."""
    from . import ddpg, dqn  # noqa: F401
