"""DDPG (Lillicrap et al. 2016): a deterministic actor trained through a learned critic, both
with Polyak-averaged target copies; TD3's fixes (Fujimoto et al. 2018: twin critics, target
policy smoothing, delayed actor updates) as an option."""
from __future__ import annotations

import time

import numpy as np

from ... import cat, manual_seed, minimum, nn, no_grad, optim
from ...nn import functional as F
from ..buffers import ReplayBuffer
from ..env import Env, check_obs_shape, require_action_space
from ..policies import GaussianNoise, OrnsteinUhlenbeckNoise
from ..stats import EpisodeStats
from ..target import make_target, soft_update
from ._neural import evaluate_and_keep_best, mlp, tensor
from .base import Agent, register


class Critic(nn.Module):
    """``Q(s, a)``: an MLP over the concatenated observation and action."""

    def __init__(self, obs_dim: int, act_dim: int, hidden=(256, 256)) -> None:
        super().__init__()
        self.net = mlp([obs_dim + act_dim, *hidden, 1])

    def forward(self, obs, action):
        return self.net(cat([obs, action], 1)).squeeze(1)


@register
class DDPG(Agent):
    """DDPG (or TD3 with ``td3=True``) for a Box observation and a Box action space.

    The actor outputs ``tanh`` values in [-1, 1]; they are mapped to the action space's bounds
    (``center + half_range * a``). Observations with finite bounds are scaled to [-1, 1] the
    same way. The buffer stores the actor-scale actions.

    Args:
        obs_low, obs_high, act_low, act_high: the spaces' bounds (``DDPG.for_env`` reads them).
        hidden: hidden widths of actor and critic.
        actor_lr, critic_lr, gamma, tau, batch_size, buffer_size: the usual.
        learning_starts: env steps of uniformly random actions before learning.
        noise: ``"gaussian"`` or ``"ou"`` (Ornstein-Uhlenbeck); ``noise_sigma`` in actor units.
        td3: twin critics (min of the two in the target), target smoothing noise
            (``target_noise`` clipped at ``target_noise_clip``) and an actor update every
            ``policy_delay`` critic updates.
        seed: seeds weights, noise and replay sampling.
    """

    algo = "ddpg"
    action_kind = "box"

    def __init__(self, obs_low, obs_high, act_low, act_high, hidden=(256, 256),
                 actor_lr: float = 1e-3, critic_lr: float = 1e-3, gamma: float = 0.99,
                 tau: float = 0.005, batch_size: int = 256, buffer_size: int = 200_000,
                 learning_starts: int = 5000, noise: str = "gaussian", noise_sigma: float = 0.1,
                 td3: bool = False, policy_delay: int = 2, target_noise: float = 0.2,
                 target_noise_clip: float = 0.5, seed: int | None = None,
                 env_id: str | None = None) -> None:
        if noise not in ("gaussian", "ou"):
            raise ValueError(f"ddpg: noise must be 'gaussian' or 'ou', got {noise!r}")
        to_list = lambda x: np.asarray(x, dtype=np.float64).ravel().tolist()  # noqa: E731
        self.config = dict(obs_low=to_list(obs_low), obs_high=to_list(obs_high),
                           act_low=to_list(act_low), act_high=to_list(act_high),
                           hidden=list(hidden), actor_lr=actor_lr, critic_lr=critic_lr,
                           gamma=gamma, tau=tau, batch_size=batch_size, buffer_size=buffer_size,
                           learning_starts=learning_starts, noise=noise,
                           noise_sigma=noise_sigma, td3=td3, policy_delay=policy_delay,
                           target_noise=target_noise, target_noise_clip=target_noise_clip,
                           seed=seed, env_id=env_id)
        for k, v in self.config.items():
            setattr(self, k, v)
        self.obs_dim, self.act_dim = len(self.obs_low), len(self.act_low)
        self.obs_center, self.obs_half = _scaling(self.obs_low, self.obs_high)
        self.act_center, self.act_half = _scaling(self.act_low, self.act_high)
        if seed is not None:
            manual_seed(seed)
        self.actor = mlp([self.obs_dim, *hidden, self.act_dim], out_activation=nn.Tanh)
        self.critic = Critic(self.obs_dim, self.act_dim, tuple(hidden))
        self.critic2 = Critic(self.obs_dim, self.act_dim, tuple(hidden)) if td3 else None
        self.actor_target = make_target(self.actor)
        self.critic_target = make_target(self.critic)
        self.critic2_target = make_target(self.critic2) if td3 else None
        self.actor_opt = optim.Adam(self.actor.parameters(), lr=actor_lr)
        critic_params = list(self.critic.parameters())
        if td3:
            critic_params += list(self.critic2.parameters())
        self.critic_opt = optim.Adam(critic_params, lr=critic_lr)
        self.rng = np.random.default_rng(seed)
        if noise == "ou":
            self.noise = OrnsteinUhlenbeckNoise((self.act_dim,), sigma=noise_sigma, rng=self.rng)
        else:
            self.noise = GaussianNoise((self.act_dim,), noise_sigma, self.rng)
        self.buffer = ReplayBuffer(buffer_size, obs_shape=(self.obs_dim,),
                                   action_shape=(self.act_dim,), action_dtype=np.float32,
                                   seed=None if seed is None else seed + 1)
        self.steps_done = 0
        self.updates_done = 0
        self.best_eval: float | None = None  # best greedy evaluation so far, and its weights
        self.best_state = None
        self.critic_losses: list[float] = []
        self.actor_losses: list[float] = []

    @classmethod
    def for_env(cls, env: Env, **kwargs) -> DDPG:
        require_action_space(cls.algo, env.action_space, "box")
        if env.obs_kind != "box" or len(env.obs_shape) != 1:
            raise TypeError(f"ddpg needs a flat Box observation space, got "
                            f"{env.observation_space}")
        o, a = env.observation_space, env.action_space
        return cls(o.low, o.high, a.low, a.high, env_id=env.env_id, **kwargs)

    # ---- scaling and acting -------------------------------------------------------------
    def scale_obs(self, obs) -> np.ndarray:
        obs = check_obs_shape(self.algo, obs, (self.obs_dim,)).reshape(-1, self.obs_dim)
        return (obs - self.obs_center) / self.obs_half

    def to_env_action(self, a: np.ndarray) -> np.ndarray:
        """Actor scale [-1, 1] -> the action space's bounds."""
        return (self.act_center + self.act_half * np.clip(a, -1.0, 1.0)).astype(np.float32)

    def actor_output(self, obs) -> np.ndarray:
        with no_grad():
            return self.actor(tensor(self.scale_obs(obs))).numpy()

    def act(self, observation) -> np.ndarray:
        return self.to_env_action(self.actor_output(observation)[0])

    def act_batch(self, observations) -> np.ndarray:
        return self.to_env_action(self.actor_output(observations))

    # ---- learning -----------------------------------------------------------------------
    def td_targets(self, b) -> np.ndarray:
        nxt = tensor(b.next_obs)
        with no_grad():
            a2 = self.actor_target(nxt).numpy()
            if self.td3:
                eps = np.clip(self.target_noise * self.rng.standard_normal(a2.shape),
                              -self.target_noise_clip, self.target_noise_clip)
                a2 = np.clip(a2 + eps, -1.0, 1.0).astype(np.float32)
            a2 = tensor(a2)
            q2 = self.critic_target(nxt, a2)
            if self.td3:
                q2 = minimum(q2, self.critic2_target(nxt, a2))
            q2 = q2.numpy()
        return (b.rewards + b.discounts(self.gamma) * q2).astype(np.float32)

    def update(self) -> float:
        """One critic step (and, every ``policy_delay`` steps for TD3, one actor step and the
        soft target updates); returns the critic loss."""
        b = self.buffer.sample(self.batch_size)
        y = tensor(self.td_targets(b))
        obs, act = tensor(b.obs), tensor(b.actions)
        critic_loss = F.mse_loss(self.critic(obs, act), y)
        if self.td3:
            critic_loss = critic_loss + F.mse_loss(self.critic2(obs, act), y)
        self.critic_opt.zero_grad()
        critic_loss.backward()
        self.critic_opt.step()
        self.updates_done += 1
        if not self.td3 or self.updates_done % self.policy_delay == 0:
            actor_loss = -self.critic(obs, self.actor(obs)).mean()
            self.actor_opt.zero_grad()
            actor_loss.backward()
            self.actor_opt.step()
            self.actor_losses.append(float(actor_loss.item()))
            soft_update(self.actor_target, self.actor, self.tau)
            soft_update(self.critic_target, self.critic, self.tau)
            if self.td3:
                soft_update(self.critic2_target, self.critic2, self.tau)
        return float(critic_loss.item())

    def train(self, env: Env, total_steps: int, eval_every: int | None = None,
              eval_episodes: int = 10, eval_seed: int = 10_000, keep_best: bool = True,
              stop_at: float | None = None, log=None, checkpoint=None) -> EpisodeStats:
        """Interact until ``steps_done == total_steps``; see :meth:`DQN.train` for the rest."""
        if env.action_kind != "box" or env.action_space.shape != (self.act_dim,):
            raise TypeError(f"ddpg: env {env.env_id} has action space {env.action_space}, the "
                            f"agent was built for a Box of shape ({self.act_dim},)")
        self.eval_history = getattr(self, "eval_history", [])
        start = time.perf_counter()
        obs = env.reset()
        self.noise.reset()
        while self.steps_done < total_steps:
            if self.steps_done < self.learning_starts:
                a = self.rng.uniform(-1.0, 1.0, self.act_dim)
            else:
                a = np.clip(self.actor_output(obs)[0] + self.noise(self.steps_done), -1.0, 1.0)
            step = env.step(self.to_env_action(a))
            self.buffer.add(self.scale_obs(obs)[0], a, step.reward, self.scale_obs(step.obs)[0],
                            step.terminated)
            if step.done:
                obs = env.reset()
                self.noise.reset()
            else:
                obs = step.obs
            self.steps_done += 1
            t = self.steps_done
            if t >= self.learning_starts:
                self.critic_losses.append(self.update())
            if eval_every and t % eval_every == 0 and t >= self.learning_starts:
                if evaluate_and_keep_best(self, env, t, eval_episodes, eval_seed,
                                          self._nets_state, log, 10, start,
                                          checkpoint, stop_at):
                    break
        if keep_best and self.best_state is not None:
            self._load_nets(self.best_state)
        return env.stats

    # ---- saving -------------------------------------------------------------------------
    def _nets(self) -> dict:
        nets = {"actor": self.actor, "critic": self.critic, "actor_target": self.actor_target,
                "critic_target": self.critic_target}
        if self.td3:
            nets.update(critic2=self.critic2, critic2_target=self.critic2_target)
        return nets

    def _nets_state(self) -> dict:
        return {k: m.state_dict() for k, m in self._nets().items()}

    def _load_nets(self, state: dict) -> None:
        for k, m in self._nets().items():
            m.load_state_dict(state[k])

    def get_config(self) -> dict:
        return dict(self.config)

    def state_dict(self, include_buffer: bool = False) -> dict:
        d = self._nets_state()
        if include_buffer:
            d.update(buffer=self.buffer.state_dict(), actor_opt=self.actor_opt.state_dict(),
                     critic_opt=self.critic_opt.state_dict(), steps_done=self.steps_done,
                     updates_done=self.updates_done, rng=self.rng.bit_generator.state,
                     best_eval=self.best_eval, best_state=self.best_state)
        return d

    def load_state_dict(self, state: dict) -> None:
        self._load_nets(state)
        if "buffer" in state:
            self.buffer.load_state_dict(state["buffer"])
            self.actor_opt.load_state_dict(state["actor_opt"])
            self.critic_opt.load_state_dict(state["critic_opt"])
            self.steps_done = int(state["steps_done"])
            self.updates_done = int(state["updates_done"])
            self.rng.bit_generator.state = state["rng"]
            self.best_eval, self.best_state = state["best_eval"], state["best_state"]


def _scaling(low, high) -> tuple[np.ndarray, np.ndarray]:
    low, high = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
    finite = np.isfinite(low) & np.isfinite(high) & (high > low)
    center = np.where(finite, (low + high) / 2, 0.0).astype(np.float32)
    half = np.where(finite, (high - low) / 2, 1.0).astype(np.float32)
    return center, half
