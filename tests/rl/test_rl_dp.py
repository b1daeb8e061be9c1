"""Value and policy iteration from the environments' own models, checked against oracles that
do not use them: breadth-first shortest paths and Monte Carlo rollouts in the real env."""
from collections import deque

import numpy as np
import pytest

from shendu.rl import Env, dp

pytest.importorskip("gymnasium", reason="shendu.rl needs gymnasium (the 'rl' extra)")

ENVS = ["FrozenLake-v1", "CliffWalking-v1", "Taxi-v4"]


def _shortest_steps_to_terminal(env_id):
    """Fewest actions from each state to a terminating transition, by BFS on the raw model
    (valid for the deterministic CliffWalking and Taxi)."""
    P = Env(env_id).env.unwrapped.P
    S = len(P)
    preds = [[] for _ in range(S)]
    dist = np.full(S, np.inf)
    for s in range(S):
        for outcomes in P[s].values():
            (_, s2, _, done), = outcomes
            if done:
                dist[s] = 1
            else:
                preds[s2].append(s)
    queue = deque(np.flatnonzero(dist == 1))
    while queue:
        s = queue.popleft()
        for p in preds[s]:
            if dist[p] == np.inf:
                dist[p] = dist[s] + 1
                queue.append(p)
    return dist


@pytest.mark.parametrize("env_id", ENVS)
@pytest.mark.parametrize("gamma", [0.9, 0.99])
def test_value_iteration_equals_policy_iteration(env_id, gamma):
    m = dp.tabular_model(env_id)
    V_vi, pi_vi, _ = dp.value_iteration(m, gamma, tol=1e-12)
    V_pi, pi_pi, _ = dp.policy_iteration(m, gamma)
    assert dp.bellman_residual(m, V_vi, gamma) < 1e-9
    assert dp.bellman_residual(m, V_pi, gamma) < 1e-9
    np.testing.assert_allclose(V_vi, V_pi, atol=1e-8)
    # Both greedy policies are optimal: evaluated exactly, they reach V*.
    np.testing.assert_allclose(dp.policy_evaluation(m, pi_vi, gamma), V_vi, atol=1e-7)
    np.testing.assert_allclose(dp.policy_evaluation(m, pi_pi, gamma), V_vi, atol=1e-7)


def test_cliffwalking_optimal_return_is_minus_13():
    m = dp.tabular_model("CliffWalking-v1")
    V, pi, _ = dp.value_iteration(m, gamma=1.0)
    assert V[36] == pytest.approx(-13.0)
    # Every state's optimal return is minus its shortest path to the goal.
    dist = _shortest_steps_to_terminal("CliffWalking-v1")
    reachable = np.isfinite(dist)
    np.testing.assert_allclose(V[reachable], -dist[reachable])
    # Following the greedy policy from the start walks right along the cliff edge.
    env = Env("CliffWalking-v1", seed=0)
    s, path = env.reset(), []
    while True:
        step = env.step(pi[s])
        path.append(step.obs)
        s = step.obs
        if step.done:
            break
    assert path == [24] + list(range(25, 36)) + [47]
    assert env.stats.returns == [-13.0]


def test_taxi_optimal_values_are_21_minus_shortest_path():
    m = dp.tabular_model("Taxi-v4")
    V, _, _ = dp.value_iteration(m, gamma=1.0)
    dist = _shortest_steps_to_terminal("Taxi-v4")
    ok = np.isfinite(dist)
    assert ok.sum() > 400
    # -1 per step and +20 for the successful drop-off: 20 - (L - 1).
    np.testing.assert_allclose(V[ok], 21 - dist[ok])
    start = Env("Taxi-v4").env.unwrapped.initial_state_distrib
    assert (start * V).sum() == pytest.approx((start * (21 - np.where(ok, dist, 0))).sum())


def test_frozenlake_optimal_success_probability_against_monte_carlo():
    m = dp.tabular_model("FrozenLake-v1")
    V, pi, _ = dp.value_iteration(m, gamma=1.0)
    assert V[0] == pytest.approx(14 / 17, abs=1e-6)  # ≈ 0.8235
    p100 = dp.policy_evaluation(m, pi, gamma=1.0, horizon=100)[0]
    # Roll the policy out in the real environment (its own 100-step limit).
    env = Env("FrozenLake-v1", seed=0)
    n = 3000
    for _ in range(n):
        s = env.reset()
        while True:
            step = env.step(pi[s])
            s = step.obs
            if step.done:
                break
    rate = np.mean(np.array(env.stats.returns) > 0)
    assert abs(rate - p100) < 4 * np.sqrt(p100 * (1 - p100) / n)


def test_policy_evaluation_accepts_stochastic_policies_and_checks_shapes():
    m = dp.tabular_model("FrozenLake-v1")
    uniform = np.full((16, 4), 0.25)
    V = dp.policy_evaluation(m, uniform, gamma=0.9)
    Q = dp.q_values(m, V, 0.9)
    np.testing.assert_allclose((uniform * Q).sum(1), V, atol=1e-12)
    with pytest.raises(ValueError, match=r"policy of shape \(15,\)"):
        dp.policy_evaluation(m, np.zeros(15, dtype=int))
    with pytest.raises(ValueError, match="gamma"):
        dp.policy_iteration(m, gamma=1.0)
    with pytest.raises(TypeError, match="exposes no model"):
        dp.tabular_model("CartPole-v1")
