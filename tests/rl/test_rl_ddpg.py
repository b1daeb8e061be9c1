"""DDPG's mechanism: the critic fits its targets, the actor climbs the critic, soft target
updates, TD3's targets, scaling to the action space, saving."""
import numpy as np
import pytest

import shendu as sd
from shendu.rl import Env, load_agent
from shendu.rl.agents.ddpg import DDPG

pytest.importorskip("gymnasium", reason="shendu.rl needs gymnasium (the 'rl' extra)")


def _agent(**kw):
    env = Env("Pendulum-v1", seed=0)
    return env, DDPG.for_env(env, hidden=(32, 32), batch_size=32, learning_starts=100, seed=0,
                             **kw)


def _q(critic, obs, act):
    with sd.no_grad():
        return critic(sd.tensor(obs), sd.tensor(act)).numpy()


def test_scaling_from_the_spaces():
    env, agent = _agent()
    np.testing.assert_allclose(agent.obs_half, [1.0, 1.0, 8.0])
    np.testing.assert_allclose(agent.act_half, [2.0])
    np.testing.assert_allclose(agent.to_env_action(np.array([1.0, -0.5, 3.0])), [2, -1, 2])
    a = agent.act(env.reset())
    assert isinstance(a, np.ndarray) and a.shape == (1,) and a.dtype == np.float32
    assert -2.0 <= a[0] <= 2.0
    with pytest.raises(ValueError, match=r"observation of shape \(2,\) does not match"):
        agent.act(np.zeros(2))
    with pytest.raises(TypeError, match="ddpg needs a continuous"):
        DDPG.for_env(Env("CartPole-v1"))


def test_critic_fits_targets_actor_climbs_and_targets_follow_softly():
    env, agent = _agent(critic_lr=3e-3, actor_lr=1e-3, tau=0.1)
    agent.train(env, 99)  # random actions fill the buffer; no update yet
    assert agent.updates_done == 0
    critic_before = [p.detach().numpy().copy() for p in agent.critic.parameters()]
    target_before = [p.numpy().copy() for p in agent.critic_target.parameters()]
    loss0 = agent.update()
    for t, t0, c0, c1 in zip(agent.critic_target.parameters(), target_before, critic_before,
                             agent.critic.parameters()):
        # Polyak after the step: 0.9 * old target + 0.1 * the updated critic
        np.testing.assert_allclose(t.numpy(), 0.9 * t0 + 0.1 * c1.detach().numpy(), rtol=1e-5,
                                   atol=1e-7)
        assert not np.array_equal(c0, c1.detach().numpy())
    losses = [agent.update() for _ in range(150)]
    assert np.mean(losses[-10:]) < loss0
    # One actor step on a batch raises the critic's value of the actor's actions.
    obs = sd.tensor(agent.buffer.obs[:64])
    with sd.no_grad():
        q_before = agent.critic(obs, agent.actor(obs)).numpy().mean()
    loss = -agent.critic(obs, agent.actor(obs)).mean()
    agent.actor_opt.zero_grad()
    loss.backward()
    agent.actor_opt.step()
    with sd.no_grad():
        q_after = agent.critic(obs, agent.actor(obs)).numpy().mean()
    assert q_after > q_before


def test_td3_targets_take_the_smaller_critic_and_smooth_clipped():
    env, agent = _agent(td3=True, target_noise=0.0)
    agent.train(env, 99)
    b = agent.buffer.sample(16)
    with sd.no_grad():
        a2 = agent.actor_target(sd.tensor(b.next_obs)).numpy()
    q1 = _q(agent.critic_target, b.next_obs, a2)
    q2 = _q(agent.critic2_target, b.next_obs, a2)
    expect = b.rewards + agent.gamma * np.minimum(q1, q2)  # Pendulum never terminates
    np.testing.assert_allclose(agent.td_targets(b), expect, rtol=1e-5, atol=1e-5)
    agent.update()
    agent.update()
    assert agent.updates_done == 2 and len(agent.actor_losses) == 1  # delayed actor


def test_same_seed_same_run_and_save_load(tmp_path):
    def run():
        env, agent = _agent(noise="ou")
        agent.train(env, 160)
        return agent, env.stats.returns, agent.critic_losses

    a, ra, la = run()
    _, rb, lb = run()
    assert ra == rb and la == lb and len(la) == 61
    agent_file = tmp_path / "agent.sd"
    a.save(agent_file)
    back = load_agent(agent_file)
    obs = np.random.default_rng(0).uniform(-1, 1, size=(5, 3)).astype(np.float32)
    np.testing.assert_array_equal(back.act_batch(obs), a.act_batch(obs))
