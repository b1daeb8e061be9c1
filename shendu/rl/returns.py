"""n-step returns: as a function over a reward sequence and as an online accumulator that
turns 1-step transitions into n-step ones for a replay buffer."""
from __future__ import annotations

from collections import deque

import numpy as np


def nstep_returns(rewards, terminated, values, gamma: float, n: int) -> np.ndarray:
    """``G_t = r_t + ... + gamma^(k-1) r_{t+k-1} + gamma^k V(s_{t+k})`` for each t, with
    ``k = min(n, steps left)``; the bootstrap term is dropped when the episode terminated
    inside the window.

    Args:
        rewards: ``r_0 .. r_{T-1}`` of one episode (or of a truncated piece of one).
        terminated: whether step ``T-1`` ended in a terminal state (else it was truncated,
            and the last ``values`` entry is bootstrapped from).
        values: ``V(s_1) .. V(s_T)``: the value of each step's next state.
        gamma: discount.
        n: horizon.

    >>> nstep_returns([1.0, 1.0, 1.0], True, [9.0, 9.0, 9.0], 0.5, n=2).tolist()
    [3.75, 1.5, 1.0]
    >>> nstep_returns([1.0, 1.0, 1.0], False, [9.0, 9.0, 9.0], 0.5, n=2).tolist()
    [3.75, 3.75, 5.5]
    """
    r = np.asarray(rewards, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    T = len(r)
    out = np.empty(T)
    for t in range(T):
        end = min(t + n, T)
        g = sum(gamma ** (i - t) * r[i] for i in range(t, end))
        if not (terminated and end == T):
            g += gamma ** (end - t) * v[end - 1]
        out[t] = g
    return out


class NStepAccumulator:
    """Collects 1-step transitions and emits n-step ones ``(obs, action, G, next_obs_k,
    terminated, k)``; at an episode's end it flushes the shorter tails.

    >>> acc = NStepAccumulator(n=2, gamma=0.5)
    >>> acc.push(0, 0, 1.0, 1, False, False)
    []
    >>> acc.push(1, 0, 1.0, 2, False, False)  # (obs 0: 1 + 0.5 * 1, next 2, 2 steps)
    [(0, 0, 1.5, 2, False, 2)]
    >>> acc.push(2, 0, 1.0, 3, True, False)
    [(1, 0, 1.5, 3, True, 2), (2, 0, 1.0, 3, True, 1)]
    """

    def __init__(self, n: int, gamma: float) -> None:
        if n < 1:
            raise ValueError(f"NStepAccumulator: n must be >= 1, got {n}")
        self.n, self.gamma = int(n), float(gamma)
        self.window: deque = deque()

    def _emit(self, last_next_obs, terminated: bool) -> tuple:
        g = 0.0
        for k, (_, _, r) in enumerate(self.window):
            g += self.gamma ** k * r
        obs, action, _ = self.window.popleft()
        return (obs, action, g, last_next_obs, terminated, len(self.window) + 1)

    def push(self, obs, action, reward: float, next_obs, terminated: bool,
             truncated: bool) -> list:
        self.window.append((obs, action, float(reward)))
        out = []
        if terminated or truncated:
            while self.window:
                out.append(self._emit(next_obs, bool(terminated)))
        elif len(self.window) == self.n:
            out.append(self._emit(next_obs, False))
        return out

    def reset(self) -> None:
        self.window.clear()
