"""Dynamic programming from an environment's model: the exact reference for tabular methods.

Gymnasium's toy-text environments (FrozenLake, CliffWalking, Taxi) expose their model as
``env.unwrapped.P[s][a] = [(prob, next_state, reward, terminated), ...]``. :func:`tabular_model`
turns it into arrays, so a Bellman backup is one matrix product:
``Q = R + gamma * C @ V`` where ``R[s, a]`` is the expected reward and ``C[s, a, s']`` the
probability of moving to ``s'`` *and continuing* (transitions into a terminal state
contribute their reward but no future value).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np


class TabularModel(NamedTuple):
    R: np.ndarray  # (S, A) expected reward
    C: np.ndarray  # (S, A, S) probability of reaching s' without terminating
    terminal_prob: np.ndarray  # (S, A) probability that the step terminates

    @property
    def n_states(self) -> int:
        return self.R.shape[0]

    @property
    def n_actions(self) -> int:
        return self.R.shape[1]


def tabular_model(env) -> TabularModel:
    """Arrays ``R``, ``C`` from a toy-text env (a Gymnasium env, a :class:`shendu.rl.Env`, or
    an id); raises a clear error for an env without a model.

    >>> m = tabular_model("FrozenLake-v1")
    >>> m.R.shape, m.C.shape
    ((16, 4), (16, 4, 16))
    >>> bool(np.allclose(m.C.sum(-1) + m.terminal_prob, 1.0))
    True
    """
    if isinstance(env, str):
        from .env import gym_make

        env = gym_make(env)
    inner = getattr(env, "env", env)  # shendu.rl.Env wraps a Gymnasium env
    P = getattr(inner.unwrapped, "P", None)
    if P is None:
        raise TypeError(f"tabular_model: {inner.unwrapped} exposes no model (env.unwrapped.P); "
                        "dynamic programming needs FrozenLake, CliffWalking, Taxi or similar")
    S = len(P)
    A = len(P[0])
    R = np.zeros((S, A))
    C = np.zeros((S, A, S))
    T = np.zeros((S, A))
    for s in range(S):
        for a in range(A):
            for prob, s2, r, done in P[s][a]:
                R[s, a] += prob * r
                if done:
                    T[s, a] += prob
                else:
                    C[s, a, s2] += prob
    return TabularModel(R, C, T)


def start_distribution(env) -> np.ndarray:
    """The distribution of the first state (``initial_state_distrib`` of the toy-text envs).

    >>> int(start_distribution("CliffWalking-v1").argmax())
    36
    """
    if isinstance(env, str):
        from .env import gym_make

        env = gym_make(env)
    inner = getattr(env, "env", env)
    d = getattr(inner.unwrapped, "initial_state_distrib", None)
    if d is None:
        raise TypeError(f"start_distribution: {inner.unwrapped} has no initial_state_distrib")
    return np.asarray(d, dtype=np.float64)


def q_values(model: TabularModel, V: np.ndarray, gamma: float) -> np.ndarray:
    """One Bellman backup: ``Q[s, a] = R[s, a] + gamma * sum_s' C[s, a, s'] V[s']``."""
    return model.R + gamma * model.C @ V


def bellman_residual(model: TabularModel, V: np.ndarray, gamma: float) -> float:
    """``max_s |max_a Q(s, a) - V(s)|``: zero exactly at the optimal values."""
    return float(np.abs(q_values(model, V, gamma).max(axis=1) - V).max())


def value_iteration(model: TabularModel, gamma: float = 0.99, tol: float = 1e-10,
                    max_iter: int = 1_000_000) -> tuple[np.ndarray, np.ndarray, int]:
    """Iterate ``V <- max_a Q(V)`` until the largest change is below ``tol``.

    ``gamma = 1`` is allowed for episodic tasks where every policy worth following ends
    (shortest paths on CliffWalking and Taxi; reach probabilities on FrozenLake): starting
    from zero, the iterates then converge to the optimal undiscounted values.

    Returns:
        ``(V, policy, iterations)`` with ``policy[s]`` the greedy action.

    >>> V, pi, _ = value_iteration(tabular_model("CliffWalking-v1"), gamma=1.0)
    >>> round(float(V[36]), 6)  # start state: 13 steps along the cliff
    -13.0
    """
    if not 0.0 < gamma <= 1.0:
        raise ValueError(f"value_iteration: gamma must be in (0, 1], got {gamma}")
    V = np.zeros(model.n_states)
    iterations = 0
    while iterations < max_iter:
        iterations += 1
        V_new = q_values(model, V, gamma).max(axis=1)
        delta = np.abs(V_new - V).max()
        V = V_new
        if delta < tol:
            break
    return V, q_values(model, V, gamma).argmax(axis=1), iterations


def _policy_matrices(model: TabularModel, policy) -> tuple[np.ndarray, np.ndarray]:
    policy = np.asarray(policy)
    S = model.n_states
    if policy.ndim == 1:  # deterministic: an action per state
        if policy.shape != (S,):
            raise ValueError(f"policy_evaluation: policy of shape {policy.shape}, expected "
                             f"({S},) actions or ({S}, {model.n_actions}) probabilities")
        idx = np.arange(S)
        return model.R[idx, policy], model.C[idx, policy]
    if policy.shape != (S, model.n_actions):
        raise ValueError(f"policy_evaluation: policy of shape {policy.shape}, expected ({S},) "
                         f"or ({S}, {model.n_actions})")
    return (policy * model.R).sum(1), np.einsum("sa,sat->st", policy, model.C)


def policy_evaluation(model: TabularModel, policy, gamma: float = 0.99,
                      horizon: int | None = None, tol: float = 1e-12,
                      max_iter: int = 1_000_000) -> np.ndarray:
    """The value of a policy (actions per state, or a ``(S, A)`` probability table), exactly.

    With ``gamma < 1`` and no horizon it solves ``(I - gamma C_pi) V = R_pi``. With
    ``gamma = 1`` it iterates from zero, which converges to the expected total reward (for
    FrozenLake: the probability of ever reaching the goal). With ``horizon=H`` it returns the
    expected return of the first ``H`` steps (FrozenLake's 100-step time limit).

    >>> m = tabular_model("FrozenLake-v1")
    >>> V, pi, _ = value_iteration(m, gamma=1.0)
    >>> round(float(policy_evaluation(m, pi, gamma=1.0)[0]), 4)  # P(reach the goal)
    0.8235
    """
    R_pi, C_pi = _policy_matrices(model, policy)
    if horizon is not None:
        V = np.zeros(model.n_states)
        for _ in range(horizon):
            V = R_pi + gamma * C_pi @ V
        return V
    if gamma < 1.0:
        return np.linalg.solve(np.eye(model.n_states) - gamma * C_pi, R_pi)
    V = np.zeros(model.n_states)
    for _ in range(max_iter):
        V_new = R_pi + C_pi @ V
        if np.abs(V_new - V).max() < tol:
            return V_new
        V = V_new
    return V


def policy_iteration(model: TabularModel, gamma: float = 0.99,
                     max_iter: int = 10_000) -> tuple[np.ndarray, np.ndarray, int]:
    """Alternate exact evaluation and greedy improvement until the policy is stable.

    The current action is kept unless another is better by more than rounding, so ties
    cannot make it cycle. Needs ``gamma < 1`` (an arbitrary first policy may never end).

    >>> m = tabular_model("FrozenLake-v1")
    >>> V_pi, _, _ = policy_iteration(m, gamma=0.9)
    >>> V_vi, _, _ = value_iteration(m, gamma=0.9)
    >>> bool(np.allclose(V_pi, V_vi, atol=1e-8))
    True
    """
    if not 0.0 < gamma < 1.0:
        raise ValueError(f"policy_iteration: gamma must be in (0, 1), got {gamma}")
    S = model.n_states
    policy = np.zeros(S, dtype=np.int64)
    for it in range(1, max_iter + 1):
        V = policy_evaluation(model, policy, gamma)
        Q = q_values(model, V, gamma)
        best = Q.argmax(axis=1)
        keep = Q[np.arange(S), policy] >= Q[np.arange(S), best] - 1e-12 * (1 + np.abs(V))
        new = np.where(keep, policy, best)
        if np.array_equal(new, policy):
            return V, policy, it
        policy = new
    return V, policy, max_iter
