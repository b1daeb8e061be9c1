"""DQN (Mnih et al. 2015): a Q-network trained on replayed transitions towards targets from a
slowly updated copy of itself; Double DQN, dueling heads, n-step returns and prioritised replay
as options."""
from __future__ import annotations

import time

import numpy as np

from ... import manual_seed, nn, no_grad, optim
from ...nn import functional as F
from ..buffers import PrioritizedReplayBuffer, ReplayBuffer
from ..env import Env, check_obs_shape, require_action_space
from ..policies import EpsilonGreedy, LinearSchedule
from ..returns import NStepAccumulator
from ..stats import EpisodeStats
from ..target import make_target, soft_update
from ._neural import evaluate_and_keep_best, mlp, tensor
from .base import Agent, register


class QNetwork(nn.Module):
    """An MLP from observations to one value per action; with ``dueling=True`` the last hidden
    layer feeds a state value V and advantages A, combined as ``V + A - mean(A)``."""

    def __init__(self, obs_dim: int, n_actions: int, hidden=(256, 256),
                 dueling: bool = False) -> None:
        super().__init__()
        self.dueling = dueling
        self.trunk = mlp([obs_dim, *hidden], out_activation=nn.ReLU)
        self.head = nn.Linear(hidden[-1], n_actions)
        self.value = nn.Linear(hidden[-1], 1) if dueling else None

    def forward(self, x):
        h = self.trunk(x)
        a = self.head(h)
        if not self.dueling:
            return a
        return self.value(h) + a - a.mean(1, keepdim=True)


@register
class DQN(Agent):
    """Deep Q-learning for a Box observation and a Discrete action space.

    Args:
        obs_dim, n_actions: sizes (``DQN.for_env(env)`` reads them from the env).
        hidden: hidden layer widths.
        double: Double DQN targets (online net picks, target net scores).
        dueling: dueling value/advantage head.
        lr, gamma, batch_size, buffer_size: the usual.
        learning_starts: env steps of random-ish play before the first update.
        train_freq, gradient_steps: every ``train_freq`` env steps do ``gradient_steps``
            updates.
        target_update_interval, tau: every ``target_update_interval`` env steps move the
            target towards the online net by ``tau`` (1.0 = hard copy).
        epsilon_start, epsilon_end, exploration_steps: linear ε schedule over env steps.
        max_grad_norm: gradient clipping (None: off).
        loss: ``"huber"`` (smooth L1) or ``"mse"``.
        n_step: n-step returns.
        prioritized: proportional prioritised replay.
        seed: seeds weights (shendu's generator), exploration and replay sampling.
    """

    algo = "dqn"
    action_kind = "discrete"

    def __init__(self, obs_dim: int, n_actions: int, hidden=(256, 256), double: bool = True,
                 dueling: bool = False, lr: float = 1e-3, gamma: float = 0.99,
                 batch_size: int = 64, buffer_size: int = 100_000, learning_starts: int = 1000,
                 train_freq: int = 1, gradient_steps: int = 1,
                 target_update_interval: int = 500, tau: float = 1.0,
                 epsilon_start: float = 1.0, epsilon_end: float = 0.05,
                 exploration_steps: int = 10_000, max_grad_norm: float | None = 10.0,
                 loss: str = "huber", n_step: int = 1, prioritized: bool = False,
                 seed: int | None = None, env_id: str | None = None) -> None:
        if loss not in ("huber", "mse"):
            raise ValueError(f"dqn: loss must be 'huber' or 'mse', got {loss!r}")
        self.config = dict(obs_dim=int(obs_dim), n_actions=int(n_actions), hidden=list(hidden),
                           double=double, dueling=dueling, lr=lr, gamma=gamma,
                           batch_size=batch_size, buffer_size=buffer_size,
                           learning_starts=learning_starts, train_freq=train_freq,
                           gradient_steps=gradient_steps,
                           target_update_interval=target_update_interval, tau=tau,
                           epsilon_start=epsilon_start, epsilon_end=epsilon_end,
                           exploration_steps=exploration_steps, max_grad_norm=max_grad_norm,
                           loss=loss, n_step=n_step, prioritized=prioritized, seed=seed,
                           env_id=env_id)
        for k, v in self.config.items():
            setattr(self, k, v)
        if seed is not None:
            manual_seed(seed)
        self.q_net = QNetwork(obs_dim, n_actions, tuple(hidden), dueling)
        self.target_net = make_target(self.q_net)
        self.optimizer = optim.Adam(self.q_net.parameters(), lr=lr)
        self.rng = np.random.default_rng(seed)
        self.explore = EpsilonGreedy(LinearSchedule(epsilon_start, epsilon_end,
                                                    max(1, exploration_steps)), self.rng)
        buf_seed = None if seed is None else seed + 1
        buf_cls = PrioritizedReplayBuffer if prioritized else ReplayBuffer
        self.buffer = buf_cls(buffer_size, obs_shape=(obs_dim,), seed=buf_seed)
        self.nstep = NStepAccumulator(n_step, gamma)
        self.steps_done = 0
        self.updates_done = 0
        self.best_eval: float | None = None  # best greedy evaluation so far, and its weights
        self.best_state = None
        self.losses: list[float] = []

    @classmethod
    def for_env(cls, env: Env, **kwargs) -> DQN:
        require_action_space(cls.algo, env.action_space, "discrete")
        if env.obs_kind != "box" or len(env.obs_shape) != 1:
            raise TypeError(f"dqn needs a flat Box observation space, got {env.observation_space}"
                            " (for int states use q-learning)")
        return cls(env.obs_shape[0], env.n_actions, env_id=env.env_id, **kwargs)

    # ---- acting -------------------------------------------------------------------------
    def q_values(self, obs) -> np.ndarray:
        obs = check_obs_shape(self.algo, obs, (self.obs_dim,))
        with no_grad():
            return self.q_net(tensor(obs.reshape(-1, self.obs_dim))).numpy()

    def act(self, observation) -> int:
        return int(self.q_values(observation)[0].argmax())

    def act_batch(self, observations) -> np.ndarray:
        return self.q_values(observations).argmax(axis=1)

    # ---- learning -----------------------------------------------------------------------
    def td_targets(self, batch) -> np.ndarray:
        """``r + gamma^k (1 - terminated) Q_target(s', a*)`` with ``a*`` from the online net
        (Double DQN) or the target net (plain DQN)."""
        nxt = tensor(batch.next_obs)
        with no_grad():
            q_next = self.target_net(nxt).numpy()
            if self.double:
                a_star = self.q_net(nxt).numpy().argmax(axis=1)
            else:
                a_star = q_next.argmax(axis=1)
        v = q_next[np.arange(len(a_star)), a_star]
        return (batch.rewards + batch.discounts(self.gamma) * v).astype(np.float32)

    def update(self) -> float:
        """One gradient step on a sampled batch; returns the loss."""
        b = self.buffer.sample(self.batch_size)
        y = tensor(self.td_targets(b))
        q_all = self.q_net(tensor(b.obs))
        q = q_all.gather(1, tensor(b.actions.reshape(-1, 1), np.int64)).squeeze(1)
        per = (F.smooth_l1_loss(q, y, reduction="none") if self.loss == "huber"
               else F.mse_loss(q, y, reduction="none"))
        loss = (per * tensor(b.weights)).mean()
        self.optimizer.zero_grad()
        loss.backward()
        if self.max_grad_norm is not None:
            nn.utils.clip_grad_norm_(self.q_net.parameters(), self.max_grad_norm)
        self.optimizer.step()
        if self.prioritized:
            self.buffer.update_priorities(b.indices, q.detach().numpy() - y.numpy())
        self.updates_done += 1
        return float(loss.item())

    def train(self, env: Env, total_steps: int, eval_every: int | None = None,
              eval_episodes: int = 20, eval_seed: int = 10_000, keep_best: bool = True,
              stop_at: float | None = None, log=None, checkpoint=None) -> EpisodeStats:
        """Interact with ``env`` until ``steps_done == total_steps`` (continues a resumed run).

        Every ``eval_every`` steps the greedy policy plays ``eval_episodes`` episodes; with
        ``keep_best`` the network ends as the best one evaluated (DQN on CartPole often
        collapses late); with ``stop_at`` training stops once an evaluation reaches it.
        ``log(message)`` and ``checkpoint(agent)`` are called after each evaluation.
        """
        if env.action_kind != "discrete" or env.n_actions != self.n_actions:
            raise TypeError(f"dqn: env {env.env_id} has action space {env.action_space}, the "
                            f"agent was built for Discrete({self.n_actions})")
        self.eval_history = getattr(self, "eval_history", [])
        start = time.perf_counter()
        obs = env.reset()
        self.nstep.reset()
        while self.steps_done < total_steps:
            if self.steps_done < self.learning_starts:
                action = int(self.rng.integers(self.n_actions))
            else:
                action = self.explore(self.q_values(obs)[0], self.steps_done)
            step = env.step(action)
            for tr in self.nstep.push(obs, action, step.reward, step.obs, step.terminated,
                                      step.truncated):
                self.buffer.add(*tr)
            obs = env.reset() if step.done else step.obs
            self.steps_done += 1
            t = self.steps_done
            if t >= self.learning_starts:
                if t % self.train_freq == 0:
                    for _ in range(self.gradient_steps):
                        self.losses.append(self.update())
                if t % self.target_update_interval == 0:
                    soft_update(self.target_net, self.q_net, self.tau)
            if eval_every and t % eval_every == 0 and t >= self.learning_starts:
                if evaluate_and_keep_best(self, env, t, eval_episodes, eval_seed,
                                          self.q_net.state_dict, log, 20, start,
                                          checkpoint, stop_at):
                    break
        if keep_best and self.best_state is not None:
            self.q_net.load_state_dict(self.best_state)
            soft_update(self.target_net, self.q_net, 1.0)
        return env.stats

    # ---- saving -------------------------------------------------------------------------
    def get_config(self) -> dict:
        return dict(self.config)

    def state_dict(self, include_buffer: bool = False) -> dict:
        d = {"q_net": self.q_net.state_dict(), "target_net": self.target_net.state_dict()}
        if include_buffer:  # everything a killed run needs to resume
            d.update(buffer=self.buffer.state_dict(), optimizer=self.optimizer.state_dict(),
                     steps_done=self.steps_done, updates_done=self.updates_done,
                     rng=self.rng.bit_generator.state, best_eval=self.best_eval,
                     best_state=self.best_state)
        return d

    def load_state_dict(self, state: dict) -> None:
        self.q_net.load_state_dict(state["q_net"])
        self.target_net.load_state_dict(state["target_net"])
        if "buffer" in state:
            self.buffer.load_state_dict(state["buffer"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.steps_done = int(state["steps_done"])
            self.updates_done = int(state["updates_done"])
            self.rng.bit_generator.state = state["rng"]
            self.best_eval, self.best_state = state["best_eval"], state["best_state"]
