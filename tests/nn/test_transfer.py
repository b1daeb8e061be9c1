"""Transfer learning helpers: freezing stops updates, replace_head swaps the right layer,
discriminative_lr gives each group its rate, GradualUnfreezing thaws on schedule inside
fit, and MultiTask's loss is the weighted sum with gradients from every head."""
import numpy as np
import pytest

import shendu as sd
import shendu.nn.functional as F
from shendu.data import DataLoader, TensorDataset
from shendu.models import MultiTask, MultiTaskLoss
from shendu.nn.utils import discriminative_lr, freeze, is_frozen, replace_head, unfreeze
from shendu.train import GradualUnfreezing, fit


def small_net():
    sd.manual_seed(0)
    return sd.nn.Sequential(sd.nn.Linear(4, 8), sd.nn.BatchNorm1d(8), sd.nn.ReLU(),
                            sd.nn.Linear(8, 8), sd.nn.ReLU(), sd.nn.Linear(8, 3))


def test_freeze_stops_updates_and_unfreeze_restores():
    net = small_net()
    freeze(net[0])
    assert is_frozen(net[0]) and not is_frozen(net)
    before = net[0].weight.detach().numpy().copy()
    head_before = net[5].weight.detach().numpy().copy()
    opt = sd.optim.SGD(net.parameters(), lr=0.5)
    loss = F.cross_entropy(net(sd.randn(16, 4)), sd.randint(0, 3, (16,)))
    loss.backward()
    assert net[0].weight.grad is None
    opt.step()
    np.testing.assert_array_equal(net[0].weight.detach().numpy(), before)
    assert not np.array_equal(net[5].weight.detach().numpy(), head_before)
    unfreeze(net[0])
    assert net[0].weight.requires_grad and not is_frozen(net[0])


def test_freeze_train_bn_keeps_batchnorm_trainable():
    net = small_net()
    freeze(net, train_bn=True)
    assert net[1].weight.requires_grad and not net[0].weight.requires_grad
    assert [n for n, p in net.named_parameters() if p.requires_grad] == ["1.weight", "1.bias"]


def test_replace_head_default_named_and_custom():
    net = small_net()
    freeze(net)
    head = replace_head(net, 5)
    assert net[5] is head and head.in_features == 8 and head.out_features == 5
    assert head.weight.requires_grad and net(sd.randn(2, 4)).shape == (2, 5)
    other = replace_head(net, 7, name="3")
    assert net[3] is other and other.out_features == 7
    custom = sd.nn.Sequential(sd.nn.Linear(8, 2))
    assert replace_head(net, 0, name="5", head=custom) is net[5]
    with pytest.raises(ValueError, match="not a Linear"):
        replace_head(net, 2, name="2")
    with pytest.raises(ValueError, match="no Linear layer"):
        replace_head(sd.nn.Sequential(sd.nn.ReLU()), 2)


def test_discriminative_lr_groups_and_update_sizes():
    net = small_net()
    groups = discriminative_lr([net[0], net[3], net[5]], 0.1, factor=10, weight_decay=0.0)
    assert [g["lr"] for g in groups] == pytest.approx([0.001, 0.01, 0.1])
    assert [len(g["params"]) for g in groups] == [2, 2, 2]
    # a shared module listed twice contributes its parameters once
    assert len(discriminative_lr([net[0], net[0]], 0.1)[1]["params"]) == 0
    opt = sd.optim.SGD(groups)
    w0, w5 = net[0].weight.detach().numpy().copy(), net[5].weight.detach().numpy().copy()
    net[0].weight.grad = sd.ones_like(net[0].weight)
    net[5].weight.grad = sd.ones_like(net[5].weight)
    opt.step()
    # float32 weights near 1: the difference carries ~1e-7 absolute rounding
    np.testing.assert_allclose(w0 - net[0].weight.detach().numpy(), 0.001, atol=1e-6)
    np.testing.assert_allclose(w5 - net[5].weight.detach().numpy(), 0.1, atol=1e-6)
    with pytest.raises(ValueError, match="factor"):
        discriminative_lr([net[0]], 0.1, factor=0)


def test_gradual_unfreezing_inside_fit():
    net = small_net()
    body, head = net[:5], net[5]
    freeze(net[0])
    freeze(net[3])
    opt = sd.optim.Adam(discriminative_lr([net[0], net[3], head], 1e-2))
    x, y = sd.randn(32, 4), sd.randint(0, 3, (32,))
    w0 = net[0].weight.detach().numpy().copy()
    hist = fit(net, F.cross_entropy, opt, DataLoader(TensorDataset(x, y), batch_size=16), 3,
               callbacks=[GradualUnfreezing([net[3], net[0]], every=1)], progress=False)
    head_n = head.weight.numel() + head.bias.numel()
    bn_n = 16
    mid_n = 8 * 8 + 8
    first_n = 4 * 8 + 8
    assert hist["trainable"] == [head_n + bn_n, head_n + bn_n + mid_n,
                                 head_n + bn_n + mid_n + first_n]
    assert not np.array_equal(w0, net[0].weight.detach().numpy())  # thawed in epoch 3
    assert body is not None
    with pytest.raises(ValueError, match="every"):
        GradualUnfreezing([net[0]], every=0)


def test_multitask_weighted_sum_and_gradients():
    sd.manual_seed(0)
    trunk = sd.nn.Sequential(sd.nn.Linear(4, 6), sd.nn.ReLU())
    net = MultiTask(trunk, {"cls": sd.nn.Linear(6, 3), "reg": sd.nn.Linear(6, 1)})
    x, yc, yr = sd.randn(10, 4), sd.randint(0, 3, (10,)), sd.randn(10, 1)
    out = net(x)
    crit = MultiTaskLoss({"cls": F.cross_entropy, "reg": F.mse_loss}, {"reg": 0.25})
    loss = crit(out, {"cls": yc, "reg": yr})
    expect = F.cross_entropy(out["cls"], yc).item() + 0.25 * F.mse_loss(out["reg"], yr).item()
    assert loss.item() == pytest.approx(expect, rel=1e-6)
    assert crit.last["reg"] == pytest.approx(F.mse_loss(out["reg"], yr).item(), rel=1e-6)
    loss.backward()
    g_both = trunk[0].weight.grad.numpy().copy()
    # the trunk's gradient is the weighted sum of the two tasks' gradients
    parts = []
    for task, fn, t, w in (("cls", F.cross_entropy, yc, 1.0), ("reg", F.mse_loss, yr, 0.25)):
        net.zero_grad()
        (fn(net(x)[task], t) * w).backward()
        parts.append(trunk[0].weight.grad.numpy().copy())
    np.testing.assert_allclose(g_both, parts[0] + parts[1], rtol=1e-4, atol=1e-6)
    assert net.head("reg").out_features == 1
    with pytest.raises(KeyError, match="no task"):
        net.head("nope")
    with pytest.raises(ValueError, match="unknown tasks"):
        MultiTaskLoss({"a": F.mse_loss}, {"b": 1.0})
    with pytest.raises(KeyError, match="missing"):
        crit(out, {"cls": yc})


def test_assigning_a_submodule_keeps_its_position():
    # PyTorch keeps a replaced child (and parameter) where it was registered
    net = small_net()
    names = [n for n, _ in net.named_parameters()]
    setattr(net, "3", sd.nn.Linear(8, 8))
    assert [n for n, _ in net.named_parameters()] == names
    assert isinstance(net[3], sd.nn.Linear) and isinstance(net[4], sd.nn.ReLU)
    lin = sd.nn.Linear(2, 2)
    lin.weight = sd.nn.Parameter(sd.zeros(2, 2))
    assert list(lin.state_dict()) == ["weight", "bias"]
