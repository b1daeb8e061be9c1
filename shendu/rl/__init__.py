"""Reinforcement learning on Gymnasium environments."""
from . import dp
from .agents import SARSA, Agent, ExpectedSARSA, QLearning, load_agent
from .buffers import Batch, PrioritizedReplayBuffer, ReplayBuffer, SumTree
from .env import Env, Step, check_obs_shape, gym_make, require_action_space, seed_everything
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
