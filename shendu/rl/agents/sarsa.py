"""SARSA (Rummery & Niranjan 1994): on-policy TD control; the target uses the action the
ε-greedy policy actually takes next, so it learns the values of exploring — on CliffWalking
that is the path kept away from the cliff."""
from __future__ import annotations

from ._tabular import TabularAgent
from .base import register


@register
class SARSA(TabularAgent):
    """Target ``r + gamma * Q(s', a')`` with ``a'`` drawn from the behaviour policy.

    >>> from shendu.rl import Env
    >>> env = Env("CliffWalking-v1", seed=0, max_episode_steps=100)
    >>> agent = SARSA.for_env(env, alpha=0.5, epsilon=0.1, seed=0)
    >>> len(agent.train(env, episodes=5))
    5
    """

    algo = "sarsa"
    on_policy = True

    def next_value(self, s2, a2, step):
        return self.Q[s2, a2]
