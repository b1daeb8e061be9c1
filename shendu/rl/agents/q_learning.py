"""Q-learning (Watkins 1989): off-policy TD control; the target takes the best next action
whatever the behaviour policy will do, so it learns the greedy policy's values."""
from __future__ import annotations

from ._tabular import TabularAgent
from .base import register


@register
class QLearning(TabularAgent):
    """Target ``r + gamma * max_a' Q(s', a')``.

    >>> from shendu.rl import Env
    >>> env = Env("FrozenLake-v1", seed=0, is_slippery=False)
    >>> agent = QLearning.for_env(env, alpha=0.5, epsilon=0.5, seed=0)
    >>> stats = agent.train(env, episodes=300)
    >>> agent.greedy_policy().shape
    (16,)
    """

    algo = "q-learning"

    def next_value(self, s2, a2, step):
        return self.Q[s2].max()
