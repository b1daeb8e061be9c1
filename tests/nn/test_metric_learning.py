"""Metric learning: the contrastive loss against its formula in NumPy and finite
differences; the miners against brute-force searches; TripletMarginLoss on mined triplets
against PyTorch (when importable); the balanced batch sampler's composition."""
import itertools

import numpy as np
import pytest

import shendu as sd
from shendu.nn.metric_learning import (
    BalancedBatchSampler,
    BatchHardMiner,
    ContrastiveLoss,
    SemiHardMiner,
    contrastive_loss,
    pairwise_distances,
)


def contrastive_ref(a, b, t, margin):
    d = np.sqrt(((a - b) ** 2).sum(1))
    return 0.5 * (t * d ** 2 + (1 - t) * np.maximum(margin - d, 0) ** 2)


def test_contrastive_loss_matches_formula_and_reductions():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(6, 3)), rng.normal(size=(6, 3)) * 0.3
    t = np.array([1, 0, 1, 0, 0, 1])
    ref = contrastive_ref(a, b, t, 2.0)
    got = contrastive_loss(sd.tensor(a, dtype=sd.float64), sd.tensor(b, dtype=sd.float64),
                           sd.tensor(t), margin=2.0, reduction="none").numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-9)
    mod = ContrastiveLoss(margin=2.0, reduction="sum")
    assert mod(sd.tensor(a), sd.tensor(b), sd.tensor(t)).item() == pytest.approx(ref.sum(),
                                                                                 rel=1e-5)
    with pytest.raises(ValueError, match="reduction"):
        contrastive_loss(sd.tensor(a), sd.tensor(b), sd.tensor(t), reduction="avg")
    with pytest.raises(ValueError, match="target must have shape"):
        contrastive_loss(sd.tensor(a), sd.tensor(b), sd.tensor(t[:3]))
    with pytest.raises(ValueError, match="margin"):
        ContrastiveLoss(margin=0)


def test_contrastive_loss_gradcheck():
    rng = np.random.default_rng(1)
    a = sd.tensor(rng.normal(size=(5, 3)), dtype=sd.float64, requires_grad=True)
    b = sd.tensor(rng.normal(size=(5, 3)) * 0.4, dtype=sd.float64, requires_grad=True)
    t = sd.tensor([1, 0, 0, 1, 0])
    assert sd.autograd.gradcheck(lambda a, b: contrastive_loss(a, b, t, margin=1.5), (a, b))


def test_contrastive_loss_against_torch_formula():
    torch = pytest.importorskip("torch", reason="PyTorch is the optional oracle")
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    t = np.array([1, 0, 1, 0])
    ta = torch.tensor(a, requires_grad=True)
    d = torch.nn.functional.pairwise_distance(ta, torch.tensor(b), eps=0)
    tt = torch.tensor(t, dtype=torch.float64)
    (0.5 * (tt * d ** 2 + (1 - tt) * torch.relu(1.0 - d) ** 2)).mean().backward()
    sa = sd.tensor(a, dtype=sd.float64, requires_grad=True)
    contrastive_loss(sa, sd.tensor(b, dtype=sd.float64), sd.tensor(t)).backward()
    np.testing.assert_allclose(sa.grad.numpy(), ta.grad.numpy(), rtol=1e-6, atol=1e-9)


def batch(seed=0, n=12, classes=3, dim=4):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, dim)), rng.integers(0, classes, n)


def test_pairwise_distances_matches_scipy():
    from scipy.spatial.distance import cdist
    e, _ = batch()
    np.testing.assert_allclose(pairwise_distances(e), cdist(e, e), atol=1e-7)
    with pytest.raises(ValueError, match="expected"):
        pairwise_distances(np.zeros(3))


def test_batch_hard_miner_is_the_brute_force_choice():
    e, y = batch()
    a, p, n = BatchHardMiner()(sd.tensor(e), sd.tensor(y))
    d = np.sqrt(((e[:, None] - e[None]) ** 2).sum(-1))
    expect = []
    for i in range(len(y)):
        pos = [j for j in range(len(y)) if y[j] == y[i] and j != i]
        neg = [j for j in range(len(y)) if y[j] != y[i]]
        if pos and neg:
            expect.append((i, max(pos, key=lambda j: d[i, j]), min(neg, key=lambda j: d[i, j])))
    assert list(zip(a, p, n)) == expect


def test_semi_hard_miner_is_the_brute_force_choice():
    e, y = batch(seed=3, n=10)
    d = np.sqrt(((e[:, None] - e[None]) ** 2).sum(-1))
    for margin in (None, 0.5):
        got = list(zip(*SemiHardMiner(margin)(e, y)))
        expect = []
        for i, j in itertools.permutations(range(len(y)), 2):
            neg = [k for k in range(len(y)) if y[k] != y[i]]
            if y[i] != y[j] or not neg:
                continue
            farther = [k for k in neg if d[i, k] > d[i, j]]
            k = min(farther, key=lambda k: d[i, k]) if farther else max(neg,
                                                                      key=lambda k: d[i, k])
            if margin is None or d[i, k] < d[i, j] + margin:
                expect.append((i, j, k))
        assert sorted(got) == sorted(expect)


def test_miner_errors_and_single_member_classes():
    with pytest.raises(ValueError, match="3 embeddings but 2 labels"):
        BatchHardMiner()(np.zeros((3, 2)), [0, 1])
    a, p, n = BatchHardMiner()(np.eye(3), [0, 1, 2])  # nobody has a positive
    assert len(a) == len(p) == len(n) == 0


def test_triplet_loss_on_mined_triplets_matches_torch():
    torch = pytest.importorskip("torch", reason="PyTorch is the optional oracle")
    e, y = batch(seed=5, n=16)
    a, p, n = BatchHardMiner()(e, y)
    for kw in ({"margin": 0.7}, {"margin": 1.0, "p": 1.0, "swap": True}):
        se = sd.tensor(e, dtype=sd.float64, requires_grad=True)
        loss = sd.nn.TripletMarginLoss(**kw)(se[a], se[p], se[n])
        loss.backward()
        te = torch.tensor(e, requires_grad=True)
        ref = torch.nn.TripletMarginLoss(**kw)(te[a], te[p], te[n])
        ref.backward()
        assert loss.item() == pytest.approx(ref.item(), rel=1e-10)
        np.testing.assert_allclose(se.grad.numpy(), te.grad.numpy(), rtol=1e-8, atol=1e-12)


def test_balanced_batch_sampler_composition():
    y = np.repeat(np.arange(6), [5, 5, 5, 5, 5, 2])
    s = BalancedBatchSampler(y, classes_per_batch=3, samples_per_class=4, num_batches=20)
    assert len(s) == 20
    for b in s:
        counts = np.unique(y[b], return_counts=True)[1]
        assert len(b) == 12 and list(counts) == [4, 4, 4]
    with pytest.raises(ValueError, match="only 6"):
        BalancedBatchSampler(y, 7, 2)
