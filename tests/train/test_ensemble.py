"""Ensembles: averaging is the mean of softmax probabilities, voting counts argmaxes,
weights are normalised; the bootstrap sampler draws with replacement and keeps its
replicate; snapshot ensembles follow the cyclic cosine and keep one model per cycle."""
import math

import numpy as np
import pytest

import shendu as sd
import shendu.nn.functional as F
from shendu.data import DataLoader, TensorDataset
from shendu.train import BootstrapSampler, Ensemble, SnapshotEnsemble, fit


def softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def members(n=3):
    sd.manual_seed(0)
    return [sd.nn.Linear(4, 5) for _ in range(n)]


def test_average_vote_logits_and_weights():
    nets = members()
    x = sd.randn(7, 4)
    with sd.no_grad():
        logits = [m(x).numpy() for m in nets]
        avg = Ensemble(nets)(x).numpy()
        np.testing.assert_allclose(avg, np.mean([softmax(z) for z in logits], 0), rtol=1e-5)
        votes = Ensemble(nets, mode="vote")(x).numpy()
        expect = np.zeros_like(votes)
        for z in logits:
            expect[np.arange(7), z.argmax(1)] += 1 / 3
        np.testing.assert_allclose(votes, expect, rtol=1e-6)
        np.testing.assert_allclose(Ensemble(nets, mode="logits")(x).numpy(),
                                   np.mean(logits, 0), rtol=1e-5, atol=1e-6)
        w = Ensemble(nets, weights=[2, 1, 1])(x).numpy()
        np.testing.assert_allclose(w, 0.5 * softmax(logits[0]) + 0.25 * softmax(logits[1])
                                   + 0.25 * softmax(logits[2]), rtol=1e-5)
    assert len(Ensemble(nets)) == 3
    assert len(list(Ensemble(nets).parameters())) == 6
    with pytest.raises(ValueError, match="mode"):
        Ensemble(nets, mode="median")
    with pytest.raises(ValueError, match="weights"):
        Ensemble(nets, weights=[1, -1, 1])
    with pytest.raises(ValueError, match="at least one"):
        Ensemble([])


def test_bootstrap_sampler_draws_with_replacement_and_keeps_replicate():
    s = BootstrapSampler(1000, seed=3)
    first, second = list(s), list(s)
    assert sorted(first) == sorted(second) == sorted(s.indices.tolist())
    assert first != second                       # reshuffled each epoch
    assert len(first) == 1000 and len(set(first)) < 1000
    # about 1/e of the samples are out of bag
    assert abs(len(s.out_of_bag) / 1000 - math.exp(-1)) < 0.05
    assert not set(s.out_of_bag) & set(first)
    assert list(BootstrapSampler(1000, seed=3)) != list(BootstrapSampler(1000, seed=4))
    with pytest.raises(ValueError, match="non-empty"):
        BootstrapSampler(0)


def test_snapshot_ensemble_schedule_and_snapshots():
    sd.manual_seed(0)
    net = sd.nn.Linear(3, 2)
    x, y = sd.randn(32, 3), sd.randint(0, 2, (32,))
    loader = DataLoader(TensorDataset(x, y), batch_size=8)   # 4 batches per epoch
    opt = sd.optim.SGD(net.parameters(), lr=0.4)
    seen = []

    class Spy(SnapshotEnsemble):
        def on_batch_begin(self, trainer, batch):
            super().on_batch_begin(trainer, batch)
            seen.append(trainer.optimizer.param_groups[0]["lr"])

    snap = Spy(cycles=3, epochs=6)
    fit(net, F.cross_entropy, opt, loader, 6, callbacks=[snap], progress=False)
    per_cycle = 8
    expect = [0.2 * (math.cos(math.pi * (t % per_cycle) / per_cycle) + 1) for t in range(24)]
    assert seen == pytest.approx(expect)
    assert len(snap.snapshots) == 3
    assert all(s is not net and not s.training for s in snap.snapshots)
    np.testing.assert_array_equal(snap.snapshots[-1].weight.detach().numpy(),
                                  net.weight.detach().numpy())
    assert len(snap.ensemble(keep=2)) == 2 and len(snap.ensemble()) == 3
    with pytest.raises(ValueError, match="multiple"):
        SnapshotEnsemble(cycles=4, epochs=6)
    with pytest.raises(ValueError, match="no snapshot"):
        SnapshotEnsemble(2, 2).ensemble()
