"""DQN's mechanism on small data: TD targets, the loss falling, the target net, options,
seeding, saving; and a short CartPole run that beats random play."""
import numpy as np
import pytest

import shendu as sd
from shendu.rl import Env, load_agent
from shendu.rl.agents.dqn import DQN
from shendu.rl.evaluate import evaluate

pytest.importorskip("gymnasium", reason="shendu.rl needs gymnasium (the 'rl' extra)")


def _numpy_forward(net, x):
    with sd.no_grad():
        return net(sd.tensor(x)).numpy()


def _filled(agent, n=64, seed=0, terminated_every=3):
    rng = np.random.default_rng(seed)
    for i in range(n):
        agent.buffer.add(rng.normal(size=4).astype(np.float32), int(rng.integers(2)),
                         float(rng.normal()), rng.normal(size=4).astype(np.float32),
                         i % terminated_every == 0, steps=1 + i % 2)
    return agent


@pytest.mark.parametrize("double", [False, True])
def test_td_targets_stop_at_terminal_states_and_discount_n_steps(double):
    agent = _filled(DQN(4, 2, hidden=(8,), double=double, gamma=0.9, seed=0))
    with sd.no_grad():  # make the online and target nets disagree
        for p in agent.q_net.parameters():
            p.add_(0.3)
    b = agent.buffer.sample(32)
    q_t = _numpy_forward(agent.target_net, b.next_obs)
    pick = _numpy_forward(agent.q_net, b.next_obs) if double else q_t
    v = q_t[np.arange(32), pick.argmax(1)]
    expect = b.rewards + np.where(b.terminated > 0, 0.0, 0.9 ** b.steps * v)
    np.testing.assert_allclose(agent.td_targets(b), expect, rtol=1e-5, atol=1e-6)
    assert (b.terminated > 0).any() and (b.terminated == 0).any() and (b.steps == 2).any()


def test_loss_falls_and_only_the_online_net_learns():
    agent = _filled(DQN(4, 2, hidden=(32, 32), lr=3e-3, batch_size=32, seed=0),
                    terminated_every=1)  # fixed targets: a plain regression
    target_before = [p.numpy().copy() for p in agent.target_net.parameters()]
    losses = [agent.update() for _ in range(300)]
    assert np.mean(losses[-20:]) < 0.2 * np.mean(losses[:20])
    for p, before in zip(agent.target_net.parameters(), target_before):
        np.testing.assert_array_equal(p.numpy(), before)


def test_options_dueling_prioritized_nstep_mse_run():
    env = Env("CartPole-v1", seed=0)
    agent = DQN.for_env(env, hidden=(16,), dueling=True, prioritized=True, n_step=3, loss="mse",
                        learning_starts=50, batch_size=16, target_update_interval=20, seed=0)
    agent.train(env, 150)
    assert agent.updates_done == 101 and np.isfinite(agent.losses).all()
    assert agent.buffer.max_priority > 1.0  # priorities came from TD errors
    assert set(agent.buffer.steps[:len(agent.buffer)]) <= {1, 2, 3}
    q = agent.q_values(np.zeros((5, 4)))
    assert q.shape == (5, 2)


def _short_run(seed, steps=300):
    env = Env("CartPole-v1", seed=seed)
    agent = DQN.for_env(env, hidden=(16,), learning_starts=100, batch_size=16,
                        exploration_steps=100, seed=seed)
    agent.train(env, steps)
    return agent, env.stats.returns


def test_same_seed_same_run():
    a, ra = _short_run(1)
    b, rb = _short_run(1)
    _, rc = _short_run(2)
    assert ra == rb and a.losses == b.losses
    assert ra != rc


def test_short_cartpole_run_beats_random_play():
    env = Env("CartPole-v1", seed=0)
    agent = DQN.for_env(env, hidden=(64, 64), lr=1e-3, batch_size=32, learning_starts=300,
                        train_freq=1, target_update_interval=100, exploration_steps=1500,
                        seed=0)
    agent.train(env, 2500, eval_every=500, eval_episodes=5)
    # Random play lasts about 22 steps on CartPole; the best greedy network kept lasts longer.
    assert evaluate(agent, "CartPole-v1", 10, seed=99).mean() > 60


def test_save_load_resume_state_and_errors(tmp_path):
    agent, _ = _short_run(0, steps=200)
    agent.save(tmp_path / "agent.sd", include_buffer=True)
    back = load_agent(tmp_path / "agent.sd")
    obs = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    np.testing.assert_array_equal(back.act_batch(obs), agent.act_batch(obs))
    assert isinstance(back.act(obs[0]), int)
    assert back.steps_done == 200 and len(back.buffer) == len(agent.buffer)
    np.testing.assert_array_equal(back.buffer.obs[:len(agent.buffer)],
                                  agent.buffer.obs[:len(agent.buffer)])
    with pytest.raises(ValueError, match=r"observation of shape \(3,\) does not match"):
        back.act(np.zeros(3))
    with pytest.raises(TypeError, match="dqn needs a discrete"):
        DQN.for_env(Env("Pendulum-v1"))
    with pytest.raises(ValueError, match="loss must be"):
        DQN(4, 2, loss="l1")
