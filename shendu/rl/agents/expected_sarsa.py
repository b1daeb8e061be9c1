"""Expected SARSA (van Seijen et al. 2009): the target averages the next action's value over
the ε-greedy policy instead of sampling it, removing SARSA's sampling variance."""
from __future__ import annotations

from ._tabular import TabularAgent
from .base import register


@register
class ExpectedSARSA(TabularAgent):
    """Target ``r + gamma * sum_a' pi(a'|s') Q(s', a')`` for the ε-greedy ``pi``.

    >>> from shendu.rl import Env
    >>> env = Env("CliffWalking-v1", seed=0, max_episode_steps=100)
    >>> agent = ExpectedSARSA.for_env(env, alpha=0.5, epsilon=0.1, seed=0)
    >>> len(agent.train(env, episodes=5))
    5
    """

    algo = "expected-sarsa"

    def next_value(self, s2, a2, step):
        # Ties among greedy actions share (1 - eps) but all hold the max, so the expectation
        # is (1 - eps) * max + eps * mean (what behaviour.probs(q) @ q gives, without arrays).
        q = self.Q[s2]
        eps = self.behaviour.epsilon(step)
        return (1.0 - eps) * q.max() + eps * q.mean()
