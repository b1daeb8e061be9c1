"""The environment wrapper: terminated vs truncated, checks, seeding, vectorised evaluation."""
import numpy as np
import pytest

import shendu as sd
from shendu.rl import Env, QLearning, gym_make, require_action_space, seed_everything
from shendu.rl.evaluate import evaluate

gym = pytest.importorskip("gymnasium", reason="shendu.rl needs gymnasium (the 'rl' extra)")


def test_time_limit_truncates_and_keeps_bootstrapping():
    env = Env("CartPole-v1", seed=0, max_episode_steps=3)
    env.reset()
    steps = [env.step(0) for _ in range(3)]
    assert [s.truncated for s in steps] == [False, False, True]
    assert not any(s.terminated for s in steps)
    assert steps[-1].done and steps[-1].bootstrap == 1.0
    assert env.stats.returns == [3.0] and env.stats.terminated == [False]


def test_terminal_state_stops_bootstrapping():
    # FrozenLake without slip: moving down from the start twice... state 5 is a hole.
    env = Env("FrozenLake-v1", seed=0, is_slippery=False)
    assert env.reset() == 0
    s1 = env.step(2)  # right -> 1
    s2 = env.step(1)  # down -> 5, a hole
    assert (s1.obs, s1.terminated, s1.bootstrap) == (1, False, 1.0)
    assert (s2.obs, s2.terminated, s2.truncated, s2.bootstrap) == (5, True, False, 0.0)
    assert isinstance(s2.obs, int)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)


def test_pendulum_never_terminates_truncates_at_200_and_takes_shape_1_actions():
    env = Env("Pendulum-v1", seed=0)
    env.reset()
    for t in range(200):  # noqa: B007
        step = env.step(0.5)  # a scalar is reshaped to the space's (1,)
        assert not step.terminated
    assert step.truncated and step.bootstrap == 1.0 and t == 199
    env.reset()
    with pytest.raises(ValueError, match=r"expected shape \(1,\)"):
        env.step([0.1, 0.2])


def test_q_learning_update_bootstraps_through_truncation_only():
    # One-step episodes: the first is cut by the time limit, the second ends in a hole.
    env = Env("FrozenLake-v1", seed=0, is_slippery=False, max_episode_steps=1)
    agent = QLearning.for_env(env, alpha=0.5, gamma=0.9, epsilon=0.0, seed=0)
    agent.Q[1] = 2.0
    agent.Q[0] = [-1.0, -1.0, 0.0, -1.0]  # greedy: right, to state 1 (truncated there)
    agent.train(env, 1)
    assert agent.Q[0, 2] == pytest.approx(0.5 * (0.0 + 0.9 * 2.0))
    env = Env("FrozenLake-v1", seed=0, is_slippery=False)
    agent.Q[:] = 0.0
    agent.Q[5] = 7.0  # a hole's row must never be used: the episode terminated there
    agent.Q[0] = [-1.0, 0.0, -1.0, -1.0]  # down -> 4
    agent.Q[4] = [-1.0, 0.0, -1.0, -1.0]  # down -> 8
    agent.Q[8] = [-1.0, -1.0, 0.0, -1.0]  # right -> 9
    agent.Q[9] = [-1.0, -1.0, -1.0, 0.0]  # up -> 5 (hole)
    agent.train(env, 1)
    assert agent.Q[9, 3] == 0.0


def test_errors_name_what_was_expected():
    with pytest.raises(ValueError, match="unknown environment id 'NoSuchEnv-v0'"):
        Env("NoSuchEnv-v0")
    with pytest.raises(TypeError, match=r"dqn needs a discrete \(Discrete\) action space"):
        require_action_space("dqn", gym.spaces.Box(-1, 1, (1,)), "discrete")
    with pytest.raises(TypeError, match=r"ddpg needs a continuous \(Box\) action space"):
        require_action_space("ddpg", gym.spaces.Discrete(2), "box")
    with pytest.raises(ValueError, match="outside"):
        env = Env("CartPole-v1", seed=0)
        env.reset()
        env.step(2)
    with pytest.raises(TypeError, match="Discrete observation space"):
        QLearning.for_env(Env("CartPole-v1"))
    with pytest.raises(TypeError, match="id must be a str"):
        gym_make(3)


def test_same_seed_same_episodes_different_seed_different():
    def run(seed):
        env = Env("CartPole-v1", seed=seed)
        for _ in range(5):
            env.reset()
            while not env.step(env.action_space.sample()).done:
                pass
        return env.stats.returns

    assert run(3) == run(3)
    assert run(3) != run(4)
    g1, g2 = seed_everything(5), seed_everything(5)
    assert g1.random() == g2.random()
    sd.manual_seed(5)
    a = sd.randn(3).numpy()
    seed_everything(5)
    np.testing.assert_array_equal(a, sd.randn(3).numpy())


class _Constant:
    action_kind = "discrete"

    def act_batch(self, obs):
        return np.zeros(len(obs), dtype=np.int64)


def test_vectorised_evaluation_matches_single_env_episodes():
    returns = evaluate(_Constant(), "CartPole-v1", episodes=7, seed=0, num_envs=3)
    assert returns.shape == (7,)
    # Always pushing left ends a CartPole episode in about ten steps.
    assert 7 <= returns.min() and returns.max() <= 12
    # Each copy runs its quota: copy 0 runs 3 episodes, reset with seed 0 then continuing.
    env = Env("CartPole-v1", seed=0)
    ref = []
    for _ in range(3):
        env.reset()
        while not env.step(0).done:
            pass
    ref = env.stats.returns
    np.testing.assert_array_equal(returns[:3], ref)
