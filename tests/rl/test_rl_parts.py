"""Exploration, schedules, buffers, n-step returns, target updates, statistics."""
import numpy as np
import pytest

import shendu as sd
from shendu.rl import (
    Boltzmann,
    EpisodeStats,
    EpsilonGreedy,
    ExponentialSchedule,
    GaussianNoise,
    LinearSchedule,
    NStepAccumulator,
    OrnsteinUhlenbeckNoise,
    PrioritizedReplayBuffer,
    ReplayBuffer,
    SumTree,
    hard_update,
    make_target,
    nstep_returns,
    plot_returns,
    soft_update,
)


def test_epsilon_greedy_frequencies_follow_the_schedule():
    rng = np.random.default_rng(0)
    pol = EpsilonGreedy(LinearSchedule(1.0, 0.2, 100), rng)
    q = np.array([0.0, 1.0, 0.0, 0.0])
    n = 20_000
    late = np.bincount([pol(q, step=500) for _ in range(n)], minlength=4) / n
    expect = pol.probs(q, 500)
    np.testing.assert_allclose(expect, [0.05, 0.85, 0.05, 0.05])
    assert np.abs(late - expect).max() < 4 * np.sqrt(0.25 / n)
    early = np.bincount([pol(q, step=0) for _ in range(n)], minlength=4) / n
    assert np.abs(early - 0.25).max() < 4 * np.sqrt(0.25 / n)


def test_epsilon_greedy_probs_share_ties_and_batch():
    p = EpsilonGreedy(0.1).probs(np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 3.0]]))
    np.testing.assert_allclose(p, [[0.1 / 3 + 0.45, 0.1 / 3 + 0.45, 0.1 / 3],
                                   [0.1 / 3, 0.1 / 3, 0.1 / 3 + 0.9]])


def test_schedules():
    s = LinearSchedule(0.5, 0.1, 4)
    assert [s(t) for t in (-1, 0, 2, 4, 10)] == pytest.approx([0.5, 0.5, 0.3, 0.1, 0.1])
    e = ExponentialSchedule(1.0, 0.1, 0.9)
    assert e(10) == pytest.approx(0.1 + 0.9 * 0.9 ** 10)
    with pytest.raises(ValueError, match="duration"):
        LinearSchedule(1, 0, 0)


def test_boltzmann_matches_softmax_and_samples_it():
    q = np.array([1.0, 2.0, 0.5])
    pol = Boltzmann(0.5, np.random.default_rng(1))
    ref = np.exp(q / 0.5) / np.exp(q / 0.5).sum()
    np.testing.assert_allclose(pol.probs(q), ref)
    n = 20_000
    freq = np.bincount([pol(q) for _ in range(n)], minlength=3) / n
    assert np.abs(freq - ref).max() < 4 * np.sqrt(0.25 / n)
    np.testing.assert_allclose(pol.probs(np.array([1000.0, 0.0])), [1.0, 0.0])  # no overflow
    with pytest.raises(ValueError, match="temperature"):
        Boltzmann(0.0).probs(q)


def test_gaussian_and_ou_noise_statistics():
    g = GaussianNoise((2,), 0.3, np.random.default_rng(0))
    x = np.stack([g() for _ in range(20_000)])
    assert np.abs(x.std(0) - 0.3).max() < 0.01 and np.abs(x.mean(0)).max() < 0.01
    theta, sigma, dt = 0.5, 0.4, 0.1
    ou = OrnsteinUhlenbeckNoise((1,), theta=theta, sigma=sigma, dt=dt,
                                rng=np.random.default_rng(0))
    y = np.array([ou()[0] for _ in range(60_000)])[1000:]
    # Euler-Maruyama's stationary variance: sigma^2 dt / (1 - (1 - theta dt)^2).
    var = sigma ** 2 * dt / (1 - (1 - theta * dt) ** 2)
    assert abs(y.var() / var - 1) < 0.1
    lag1 = np.corrcoef(y[:-1], y[1:])[0, 1]
    assert abs(lag1 - (1 - theta * dt)) < 0.01  # correlated in time, unlike Gaussian noise
    ou.reset()
    assert ou.x.tolist() == [0.0]


def test_replay_buffer_ring_sampling_and_state_roundtrip():
    buf = ReplayBuffer(5, obs_shape=(2,), seed=0)
    for i in range(8):
        buf.add([i, -i], i % 3, float(i), [i + 1, -i - 1], i == 7, steps=1)
    assert len(buf) == 5 and buf.pos == 3
    assert sorted(buf.rewards.tolist()) == [3.0, 4.0, 5.0, 6.0, 7.0]
    b = buf.sample(4000)
    np.testing.assert_array_equal(b.obs[:, 0], b.rewards)  # fields stay aligned
    np.testing.assert_array_equal(b.next_obs[:, 0], b.rewards + 1)
    np.testing.assert_array_equal(b.terminated, (b.rewards == 7).astype(np.float32))
    counts = np.bincount(b.indices, minlength=5) / 4000
    assert np.abs(counts - 0.2).max() < 0.04
    np.testing.assert_allclose(b.discounts(0.5), 0.5 * (1 - b.terminated))
    other = ReplayBuffer(5, obs_shape=(2,))
    other.load_state_dict(buf.state_dict())
    np.testing.assert_array_equal(other.sample(3).indices, buf.sample(3).indices)
    with pytest.raises(ValueError, match=r"observation of shape \(3,\), expected \(2,\)"):
        buf.add([1, 2, 3], 0, 0.0, [1, 2, 3], False)
    with pytest.raises(ValueError, match="empty"):
        ReplayBuffer(3).sample(1)


def test_sum_tree_matches_a_prefix_sum_search():
    rng = np.random.default_rng(0)
    for cap in (1, 5, 8, 13):
        t = SumTree(cap)
        p = rng.random(cap)
        t.update(np.arange(cap), p)
        assert t.total == pytest.approx(p.sum())
        idx = rng.integers(0, cap, 7)
        new = rng.random(7)
        t.update(idx, new)
        for i, v in zip(idx, new):
            p[i] = v  # last write wins, as the loop would
        assert t.total == pytest.approx(p.sum())
        mass = rng.random(200) * p.sum()
        ref = np.searchsorted(np.cumsum(p), mass, side="right")
        np.testing.assert_array_equal(t.find(mass), np.minimum(ref, cap - 1))


def test_prioritized_sampling_frequencies_and_weights():
    buf = PrioritizedReplayBuffer(4, obs_shape=(), seed=0, alpha=0.5, beta=1.0, eps=0.0)
    for i in range(4):
        buf.add(i, 0, 0.0, i, False)
    prio = np.array([1.0, 4.0, 9.0, 16.0])
    buf.update_priorities(np.arange(4), prio)
    p = np.sqrt(prio) / np.sqrt(prio).sum()  # alpha = 0.5
    idx = np.concatenate([buf.sample(32).indices for _ in range(500)])
    freq = np.bincount(idx, minlength=4) / len(idx)
    assert np.abs(freq - p).max() < 0.02
    b = buf.sample(32)
    w = (4 * p[b.indices]) ** -1.0
    np.testing.assert_allclose(b.weights, w / w.max(), rtol=1e-6)
    # A new transition enters with the largest priority seen.
    buf.add(9, 0, 0.0, 9, False)
    assert buf.tree[0] == pytest.approx(4.0)


def test_nstep_accumulator_agrees_with_nstep_returns():
    rng = np.random.default_rng(0)
    gamma, n = 0.9, 3
    for terminated in (True, False):
        T = 7
        r = rng.normal(size=T)
        acc = NStepAccumulator(n, gamma)
        out = []
        for t in range(T):
            out += acc.push(t, 0, r[t], t + 1, terminated and t == T - 1,
                            (not terminated) and t == T - 1)
        assert [o[0] for o in out] == list(range(T))
        V = rng.normal(size=T + 1)  # V(s_1..s_T) for states 1..T
        values = V[1:]
        ref = nstep_returns(r, terminated, values, gamma, n)
        got = [g + (0.0 if term else gamma ** k * V[nxt]) for (_, _, g, nxt, term, k) in out]
        np.testing.assert_allclose(got, ref)
        assert [o[5] for o in out] == [min(n, T - t) for t in range(T)]
        assert [o[4] for o in out] == [terminated and t + n >= T for t in range(T)]


def test_target_network_hard_and_soft_updates():
    net = sd.nn.Sequential(sd.nn.Linear(3, 4), sd.nn.ReLU(), sd.nn.Linear(4, 2))
    tgt = make_target(net)
    assert all(not p.requires_grad for p in tgt.parameters())
    with sd.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    before = [p.numpy().copy() for p in tgt.parameters()]
    src = [p.detach().numpy().copy() for p in net.parameters()]
    soft_update(tgt, net, 0.1)
    for t, b, s in zip(tgt.parameters(), before, src):
        np.testing.assert_allclose(t.numpy(), 0.9 * b + 0.1 * s, rtol=1e-6)
    hard_update(tgt, net)
    for t, s in zip(tgt.parameters(), src):
        np.testing.assert_array_equal(t.numpy(), s)
    with pytest.raises(ValueError, match="tau"):
        soft_update(tgt, net, 1.5)


def test_stats_csv_roundtrip_and_plot(tmp_path):
    s = EpisodeStats()
    for i in range(30):
        s.record(float(i), 10 + i, i % 2 == 0)
    s.to_csv(tmp_path / "returns.csv")
    back = EpisodeStats.read_csv(tmp_path / "returns.csv")
    assert back.returns == s.returns and back.lengths == s.lengths
    assert back.terminated == s.terminated
    assert s.mean_return(10) == pytest.approx(np.mean(range(20, 30)))
    pytest.importorskip("matplotlib", reason="plots need matplotlib")
    plot_returns({"a": s, "b": [1.0, 2.0]}, tmp_path / "curve.png", window=5, title="t")
    assert (tmp_path / "curve.png").read_bytes()[:4] == b"\x89PNG"
