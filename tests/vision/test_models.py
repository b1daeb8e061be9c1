"""LeNet-5 and MLP: shapes, layer structure, and that they learn."""
import numpy as np
import pytest

import shendu as sd
import shendu.nn.functional as F
from shendu.data import DataLoader, TensorDataset
from shendu.data.datasets import make_xor
from shendu.nn.layers import AvgPool2d, Dropout, MaxPool2d, ReLU, Tanh
from shendu.train import fit
from shendu.vision.models import MLP, LeNet5


def _types(model):
    return [type(m) for m in model.modules()]


def test_lenet5_modern_matches_the_reference_workload():
    net = LeNet5()
    assert net(sd.zeros(3, 1, 28, 28)).shape == (3, 10)
    assert net.num_parameters() == 61706  # 156 + 2416 + 48120 + 10164 + 850
    c1, c2 = net.features[0], net.features[3]
    assert (c1.out_channels, c1.kernel_size, c1.padding) == (6, (5, 5), (2, 2))
    assert (c2.in_channels, c2.out_channels, c2.padding) == (6, 16, (0, 0))
    assert [m.out_features for m in net.classifier if hasattr(m, "out_features")] == \
        [120, 84, 10]
    assert ReLU in _types(net) and MaxPool2d in _types(net) and Dropout not in _types(net)


def test_lenet5_classic_dropout_and_colour_inputs():
    classic = LeNet5(classic=True)
    assert Tanh in _types(classic) and AvgPool2d in _types(classic)
    assert ReLU not in _types(classic) and MaxPool2d not in _types(classic)
    drop = LeNet5(num_classes=5, dropout=0.5)
    assert sum(isinstance(m, Dropout) for m in drop.modules()) == 2
    assert drop(sd.zeros(2, 1, 28, 28)).shape == (2, 5)
    cifar = LeNet5(in_channels=3, input_size=32)
    assert cifar(sd.zeros(2, 3, 32, 32)).shape == (2, 10)
    assert cifar.features[0].padding == (0, 0) and cifar.num_parameters() == 62006
    with pytest.raises(ValueError, match="input_size"):
        LeNet5(input_size=8)


def test_lenet5_backward_reaches_every_parameter():
    net = LeNet5(dropout=0.1)
    F.cross_entropy(net(sd.randn(4, 1, 28, 28)), sd.tensor([0, 1, 2, 3])).backward()
    assert all(p.grad is not None and np.isfinite(p.grad.numpy()).all()
               for p in net.parameters())


def test_lenet5_learns_digits_subset():
    from shendu.data.datasets import load_digits
    X, y = load_digits("train", normalize=True)
    loader = DataLoader(TensorDataset(X[:160, None], y[:160]), batch_size=32, shuffle=True)
    net = LeNet5()
    hist = fit(net, F.cross_entropy, sd.optim.Adam(net.parameters(), lr=5e-3), loader, 5,
               progress=False)
    assert hist["train_acc"][-1] >= 0.5 and hist["train_loss"][-1] < 0.6 * hist["train_loss"][0]


def test_mlp_structure_and_options():
    net = MLP(784, (64, 32), num_classes=10, activation="tanh", dropout=0.2)
    assert net(sd.zeros(5, 1, 28, 28)).shape == (5, 10)  # flattens images
    assert net.num_parameters() == 784 * 64 + 64 + 64 * 32 + 32 + 32 * 10 + 10
    assert sum(isinstance(m, Tanh) for m in net.modules()) == 2
    assert sum(isinstance(m, Dropout) for m in net.modules()) == 2
    assert MLP(3, (), num_classes=2).num_parameters() == 8  # softmax regression
    with pytest.raises(ValueError, match="activation"):
        MLP(3, (4,), activation="swish2")


def test_two_two_one_mlp_solves_xor():
    # A 2-2-1 net can stall in a local minimum (about 4 runs in 10 here), so, as in
    # practice, restart from a new initialisation until one run fits all four points.
    X, y = make_xor(4, noise=0.0)
    Xt, yt = sd.tensor(X), sd.tensor(y).float()
    for restart in range(6):
        sd.manual_seed(restart)
        net = MLP(2, (2,), num_classes=1, activation="tanh")
        opt = sd.optim.Adam(net.parameters(), lr=0.1)
        for _ in range(300):
            opt.zero_grad()
            F.binary_cross_entropy_with_logits(net(Xt).reshape(-1), yt).backward()
            opt.step()
        with sd.no_grad():
            pred = (net(Xt).reshape(-1).numpy() > 0).astype(int)
        if pred.tolist() == [0, 1, 1, 0]:
            break
    assert pred.tolist() == [0, 1, 1, 0] and net.num_parameters() == 9
