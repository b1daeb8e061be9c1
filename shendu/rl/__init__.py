"""Reinforcement learning on Gymnasium environments (``sd.rl``; needs ``gymnasium``).

The loop and its parts (:class:`Env`, exploration policies, replay buffers, n-step returns,
target updates, episode statistics), dynamic programming as the exact reference (:mod:`dp`),
and agents: Q-learning, SARSA, Expected SARSA, DQN, DDPG/TD3 (``shendu rl train ALGO``).

>>> import shendu as sd
>>> env = sd.rl.Env("CliffWalking-v1", seed=0, max_episode_steps=500)
>>> agent = sd.rl.QLearning.for_env(env, alpha=0.5, gamma=1.0, epsilon=0.1, seed=0)
>>> stats = agent.train(env, episodes=500)
>>> V = sd.rl.dp.policy_evaluation(sd.rl.dp.tabular_model(env), agent.greedy_policy(), 1.0,
...                                horizon=100)
>>> V[36], agent.act(36)  # the greedy path's return from the start: along the cliff
(np.float64(-13.0), 0)
"""
from . import dp
from .agents import SARSA, Agent, ExpectedSARSA, QLearning, load_agent
from .buffers import Batch, PrioritizedReplayBuffer, ReplayBuffer, SumTree
from .env import Env, Step, check_obs_shape, gym_make, require_action_space, seed_everything
from .evaluate import evaluate
from .policies import (
    Boltzmann,
    ConstantSchedule,
    EpsilonGreedy,
    ExponentialSchedule,
    GaussianNoise,
    LinearSchedule,
    OrnsteinUhlenbeckNoise,
    greedy,
)
from .returns import NStepAccumulator, nstep_returns
from .stats import EpisodeStats, moving_average, plot_returns
from .target import hard_update, make_target, soft_update


def __getattr__(name):
    # The neural agents import shendu.nn and shendu.optim: load them on first use.
    if name in ("DQN", "DDPG"):
        from .agents import ddpg, dqn

        return {"DQN": dqn.DQN, "DDPG": ddpg.DDPG}[name]
    raise AttributeError(f"module 'shendu.rl' has no attribute {name!r}")
