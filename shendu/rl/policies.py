"""Exploration: schedules, ε-greedy, Boltzmann, Gaussian and Ornstein-Uhlenbeck noise.

Each explorer takes its own ``numpy.random.Generator`` so a seeded run repeats exactly.
"""
from __future__ import annotations

import math

import numpy as np


# ---- schedules ----------------------------------------------------------------------------
class ConstantSchedule:
    """``value`` at every step.

    >>> ConstantSchedule(0.1)(1000)
    0.1
    """

    def __init__(self, value: float) -> None:
        self.value = float(value)

    def __call__(self, step: int) -> float:
        return self.value


class LinearSchedule:
    """From ``start`` to ``end`` linearly over ``duration`` steps, then ``end``.

    >>> s = LinearSchedule(1.0, 0.1, 10)
    >>> s(0), s(5), s(10), s(99)
    (1.0, 0.55, 0.1, 0.1)
    """

    def __init__(self, start: float, end: float, duration: int) -> None:
        if duration <= 0:
            raise ValueError(f"LinearSchedule: duration must be positive, got {duration}")
        self.start, self.end, self.duration = float(start), float(end), int(duration)

    def __call__(self, step: int) -> float:
        if step >= self.duration:
            return self.end
        return self.start + max(step, 0) / self.duration * (self.end - self.start)


class ExponentialSchedule:
    """``end + (start - end) * decay**step``.

    >>> s = ExponentialSchedule(1.0, 0.0, 0.5)
    >>> s(0), s(2)
    (1.0, 0.25)
    """

    def __init__(self, start: float, end: float, decay: float) -> None:
        if not 0 < decay <= 1:
            raise ValueError(f"ExponentialSchedule: decay must be in (0, 1], got {decay}")
        self.start, self.end, self.decay = float(start), float(end), float(decay)

    def __call__(self, step: int) -> float:
        return self.end + (self.start - self.end) * self.decay ** max(step, 0)


def as_schedule(value) -> ConstantSchedule | LinearSchedule | ExponentialSchedule:
    return value if callable(value) else ConstantSchedule(value)


def greedy(q, rng: np.random.Generator | None = None) -> int:
    """Index of the largest value; ties broken at random when ``rng`` is given (an untrained
    all-zero table then explores instead of always taking action 0).

    >>> greedy([0.0, 2.0, 1.0])
    1
    """
    q = np.asarray(q)
    if rng is None:
        return int(np.argmax(q))
    best = np.flatnonzero(q == q.max())
    return int(best[0] if len(best) == 1 else rng.choice(best))


# ---- discrete actions ----------------------------------------------------------------------
class EpsilonGreedy:
    """With probability ε a uniformly random action, otherwise the greedy one.

    Args:
        epsilon: a float or a schedule ``step -> ε``.
        rng: the generator for the coin flips and the random actions.

    >>> pol = EpsilonGreedy(0.0, np.random.default_rng(0))
    >>> pol([1.0, 3.0, 2.0], step=0)
    1
    >>> pol.probs([1.0, 3.0, 2.0], step=0).tolist()
    [0.0, 1.0, 0.0]
    """

    def __init__(self, epsilon, rng: np.random.Generator | None = None) -> None:
        self.epsilon = as_schedule(epsilon)
        self.rng = rng if rng is not None else np.random.default_rng()

    def __call__(self, q, step: int = 0) -> int:
        q = np.asarray(q)
        if self.rng.random() < self.epsilon(step):
            return int(self.rng.integers(q.shape[-1]))
        return greedy(q, self.rng)

    def probs(self, q, step: int = 0) -> np.ndarray:
        """Action probabilities (ties among the greedy actions share the greedy mass), the
        expectation Expected SARSA needs. Works on one row or a batch of rows."""
        q = np.asarray(q, dtype=np.float64)
        eps = self.epsilon(step)
        best = q == q.max(axis=-1, keepdims=True)
        n = q.shape[-1]
        return eps / n + (1.0 - eps) * best / best.sum(axis=-1, keepdims=True)


class Boltzmann:
    """Sample an action with probability ``softmax(q / temperature)``.

    >>> pol = Boltzmann(1.0, np.random.default_rng(0))
    >>> np.round(pol.probs([0.0, math.log(3.0)]), 3).tolist()
    [0.25, 0.75]
    """

    def __init__(self, temperature, rng: np.random.Generator | None = None) -> None:
        self.temperature = as_schedule(temperature)
        self.rng = rng if rng is not None else np.random.default_rng()

    def probs(self, q, step: int = 0) -> np.ndarray:
        t = self.temperature(step)
        if t <= 0:
            raise ValueError(f"Boltzmann: temperature must be positive, got {t}")
        z = np.asarray(q, dtype=np.float64) / t
        z = np.exp(z - z.max(axis=-1, keepdims=True))
        return z / z.sum(axis=-1, keepdims=True)

    def __call__(self, q, step: int = 0) -> int:
        p = self.probs(q, step)
        return int(self.rng.choice(len(p), p=p))


# ---- continuous actions --------------------------------------------------------------------
class GaussianNoise:
    """Independent ``N(0, sigma²)`` noise each step (TD3's exploration).

    >>> noise = GaussianNoise((2,), 0.5, np.random.default_rng(0))
    >>> noise().shape
    (2,)
    """

    def __init__(self, shape, sigma, rng: np.random.Generator | None = None) -> None:
        self.shape = tuple(np.atleast_1d(shape)) if not isinstance(shape, tuple) else shape
        self.sigma = as_schedule(sigma)
        self.rng = rng if rng is not None else np.random.default_rng()

    def reset(self) -> None:
        pass

    def __call__(self, step: int = 0) -> np.ndarray:
        return self.sigma(step) * self.rng.standard_normal(self.shape)


class OrnsteinUhlenbeckNoise:
    """Temporally correlated noise ``dx = theta (mu - x) dt + sigma sqrt(dt) dW`` (DDPG's
    original exploration); ``reset()`` at each episode start returns it to ``mu``.

    Its stationary standard deviation is ``sigma / sqrt(2 theta)``.

    >>> noise = OrnsteinUhlenbeckNoise((1,), sigma=0.0, rng=np.random.default_rng(0), x0=1.0)
    >>> round(float(noise()[0]), 4)  # decays towards mu = 0 at rate theta * dt
    0.9985
    """

    def __init__(self, shape, theta: float = 0.15, sigma: float = 0.2, dt: float = 1e-2,
                 mu: float = 0.0, rng: np.random.Generator | None = None,
                 x0: float | None = None) -> None:
        self.shape = tuple(np.atleast_1d(shape)) if not isinstance(shape, tuple) else shape
        self.theta, self.sigma, self.dt, self.mu = theta, sigma, dt, mu
        self.rng = rng if rng is not None else np.random.default_rng()
        self.x0 = x0
        self.reset()

    def reset(self) -> None:
        self.x = np.full(self.shape, self.mu if self.x0 is None else self.x0, dtype=np.float64)

    def __call__(self, step: int = 0) -> np.ndarray:
        self.x = (self.x + self.theta * (self.mu - self.x) * self.dt
                  + self.sigma * math.sqrt(self.dt) * self.rng.standard_normal(self.shape))
        return self.x.copy()
