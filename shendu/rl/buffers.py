"""Replay buffers in preallocated arrays: uniform, and prioritised with a sum-tree.

A transition is ``(obs, action, reward, next_obs, terminated, steps)``: ``terminated`` stops
bootstrapping (a truncated transition is stored with ``terminated=False``), ``steps`` is how
many rewards ``reward`` already sums (1, or up to n for n-step returns), so the target is
``reward + gamma**steps * (1 - terminated) * V(next_obs)``.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Batch(NamedTuple):
    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_obs: np.ndarray
    terminated: np.ndarray
    steps: np.ndarray
    indices: np.ndarray
    weights: np.ndarray  # importance-sampling weights (all ones for uniform sampling)

    def discounts(self, gamma: float) -> np.ndarray:
        """``gamma**steps * (1 - terminated)``: what multiplies the bootstrap value."""
        return (gamma ** self.steps * (1.0 - self.terminated)).astype(np.float32)


class ReplayBuffer:
    """A ring buffer of transitions in fixed NumPy arrays, sampled uniformly.

    Args:
        capacity: number of transitions kept; the oldest is overwritten first.
        obs_shape: shape of one observation (``()`` for an int state).
        action_shape: ``()`` for a discrete action, ``(k,)`` for a continuous one.
        obs_dtype / action_dtype: storage dtypes.
        seed: seeds the sampling generator.

    >>> buf = ReplayBuffer(3, obs_shape=(2,), seed=0)
    >>> for i in range(5):
    ...     _ = buf.add([i, i], i % 2, float(i), [i + 1, i + 1], False)
    >>> len(buf), sorted(buf.rewards[:len(buf)].tolist())  # 0 and 1 were overwritten
    (3, [2.0, 3.0, 4.0])
    >>> buf.sample(2).obs.shape
    (2, 2)
    """

    def __init__(self, capacity: int, obs_shape=(), action_shape=(), obs_dtype=np.float32,
                 action_dtype=np.int64, seed: int | None = None) -> None:
        if capacity <= 0:
            raise ValueError(f"ReplayBuffer: capacity must be positive, got {capacity}")
        self.capacity = int(capacity)
        self.obs_shape, self.action_shape = tuple(obs_shape), tuple(action_shape)
        self.obs = np.zeros((capacity, *self.obs_shape), dtype=obs_dtype)
        self.next_obs = np.zeros((capacity, *self.obs_shape), dtype=obs_dtype)
        self.actions = np.zeros((capacity, *self.action_shape), dtype=action_dtype)
        self.rewards = np.zeros(capacity, dtype=np.float32)
        self.terminated = np.zeros(capacity, dtype=np.float32)
        self.steps = np.ones(capacity, dtype=np.int32)
        self.pos = 0
        self.size = 0
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return self.size

    def add(self, obs, action, reward: float, next_obs, terminated: bool, steps: int = 1) -> int:
        """Store one transition; returns the slot it went to."""
        i = self.pos
        obs = np.asarray(obs)
        if obs.shape != self.obs_shape:
            raise ValueError(f"ReplayBuffer.add: observation of shape {obs.shape}, expected "
                             f"{self.obs_shape}")
        self.obs[i] = obs
        self.next_obs[i] = next_obs
        self.actions[i] = action
        self.rewards[i] = reward
        self.terminated[i] = float(terminated)
        self.steps[i] = steps
        self.pos = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)
        return i

    def _gather(self, idx: np.ndarray, weights: np.ndarray) -> Batch:
        return Batch(self.obs[idx], self.actions[idx], self.rewards[idx], self.next_obs[idx],
                     self.terminated[idx], self.steps[idx], idx, weights)

    def sample(self, batch_size: int) -> Batch:
        """``batch_size`` transitions drawn uniformly with replacement."""
        if self.size == 0:
            raise ValueError("ReplayBuffer.sample: the buffer is empty")
        idx = self.rng.integers(0, self.size, size=batch_size)
        return self._gather(idx, np.ones(batch_size, dtype=np.float32))

    # ---- checkpoints ------------------------------------------------------------------
    _FIELDS = ("obs", "next_obs", "actions", "rewards", "terminated", "steps")

    def state_dict(self) -> dict:
        """Arrays (only the filled part) and the write position; plain data, no pickle."""
        n = self.size
        d = {k: getattr(self, k)[:n].copy() for k in self._FIELDS}
        d.update(pos=self.pos, size=n, capacity=self.capacity,
                 rng=self.rng.bit_generator.state)
        return d

    def load_state_dict(self, state: dict) -> None:
        if int(state["capacity"]) != self.capacity:
            raise ValueError(f"ReplayBuffer.load_state_dict: capacity {state['capacity']} in "
                             f"the checkpoint, {self.capacity} here")
        n = int(state["size"])
        for k in self._FIELDS:
            getattr(self, k)[:n] = np.asarray(state[k])
        self.pos, self.size = int(state["pos"]), n
        self.rng.bit_generator.state = state["rng"]


class SumTree:
    """A binary tree whose leaves hold priorities and whose nodes hold sums of their
    children: sampling proportional to priority and updating one are both O(log n), and
    both are vectorised over a batch.

    >>> t = SumTree(4)
    >>> t.update(np.arange(4), np.array([1.0, 2.0, 3.0, 4.0]))
    >>> t.total
    10.0
    >>> t.find(np.array([0.5, 1.5, 9.9])).tolist()  # prefix sums 1, 3, 6, 10
    [0, 1, 3]
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = int(capacity)
        self.leaves = 1 << max(0, (self.capacity - 1).bit_length())
        self.tree = np.zeros(2 * self.leaves, dtype=np.float64)  # node 1 is the root

    @property
    def total(self) -> float:
        return float(self.tree[1])

    def __getitem__(self, idx):
        return self.tree[np.asarray(idx) + self.leaves]

    def update(self, idx: np.ndarray, priorities: np.ndarray) -> None:
        node = np.asarray(idx, dtype=np.int64) + self.leaves
        self.tree[node] = priorities  # duplicate indices: the last write wins, as in a loop
        node = np.unique(node // 2)
        while node[0] >= 1:
            self.tree[node] = self.tree[2 * node] + self.tree[2 * node + 1]
            if node[0] == 1:
                break
            node = np.unique(node // 2)

    def find(self, mass: np.ndarray) -> np.ndarray:
        """Leaf index whose prefix-sum interval contains each ``mass`` in ``[0, total)``."""
        mass = np.array(mass, dtype=np.float64)
        node = np.ones(mass.shape, dtype=np.int64)
        while node[0] < self.leaves:
            left = 2 * node
            go_right = mass >= self.tree[left]
            mass = np.where(go_right, mass - self.tree[left], mass)
            node = np.where(go_right, left + 1, left)
        return np.minimum(node - self.leaves, self.capacity - 1)


class PrioritizedReplayBuffer(ReplayBuffer):
    """Proportional prioritised replay (Schaul et al. 2016): transition ``i`` is sampled with
    probability ``p_i**alpha / sum p**alpha`` and weighted by ``(N P(i))**-beta / max w`` to
    correct the bias; new transitions get the largest priority seen so far.

    >>> buf = PrioritizedReplayBuffer(4, obs_shape=(), seed=0)
    >>> for i in range(4):
    ...     _ = buf.add(i, 0, 0.0, i, False)
    >>> buf.update_priorities(np.arange(4), np.array([0.0, 0.0, 0.0, 5.0]))
    >>> set(buf.sample(8).indices.tolist())  # priority 0 is floored by eps, so 3 dominates
    {3}
    """

    def __init__(self, capacity: int, obs_shape=(), action_shape=(), obs_dtype=np.float32,
                 action_dtype=np.int64, seed: int | None = None, alpha: float = 0.6,
                 beta=0.4, eps: float = 1e-6) -> None:
        super().__init__(capacity, obs_shape, action_shape, obs_dtype, action_dtype, seed)
        from .policies import as_schedule

        self.alpha, self.eps = float(alpha), float(eps)
        self.beta = as_schedule(beta)
        self.tree = SumTree(capacity)
        self.max_priority = 1.0
        self.sample_calls = 0

    def add(self, obs, action, reward, next_obs, terminated, steps: int = 1) -> int:
        i = super().add(obs, action, reward, next_obs, terminated, steps)
        self.tree.update(np.array([i]), np.array([self.max_priority ** self.alpha]))
        return i

    def sample(self, batch_size: int) -> Batch:
        """Stratified: one draw from each of ``batch_size`` equal slices of the total mass."""
        if self.size == 0:
            raise ValueError("PrioritizedReplayBuffer.sample: the buffer is empty")
        total = self.tree.total
        bounds = np.arange(batch_size) * (total / batch_size)
        mass = bounds + self.rng.random(batch_size) * (total / batch_size)
        idx = self.tree.find(np.minimum(mass, np.nextafter(total, 0)))
        idx = np.minimum(idx, self.size - 1)
        probs = self.tree[idx] / total
        beta = self.beta(self.sample_calls)
        self.sample_calls += 1
        w = (self.size * probs) ** -beta
        return self._gather(idx, (w / w.max()).astype(np.float32))

    def update_priorities(self, indices, td_errors) -> None:
        """Priority ``|td_error| + eps`` for the sampled transitions."""
        p = np.abs(np.asarray(td_errors, dtype=np.float64)) + self.eps
        self.max_priority = max(self.max_priority, float(p.max()))
        self.tree.update(np.asarray(indices), p ** self.alpha)

    def state_dict(self) -> dict:
        d = super().state_dict()
        d.update(tree=self.tree.tree.copy(), max_priority=self.max_priority,
                 sample_calls=self.sample_calls)
        return d

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.tree.tree[:] = np.asarray(state["tree"])
        self.max_priority = float(state["max_priority"])
        self.sample_calls = int(state["sample_calls"])
