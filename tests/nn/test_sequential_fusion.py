"""nn.Sequential runs the modules it holds; Linear/Conv2d + ReLU fusion is the explicit
step ``nn.utils.fuse``, visible in ``print`` and in the paths the ops take."""
import numpy as np

import shendu as sd
import shendu.nn as nn


def _net():
    sd.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(3 * 4 * 4, 5), nn.ReLU(), nn.Linear(5, 2))


def _step(net, x):
    net.zero_grad()
    out = net(x)
    out.sum().backward()
    return [out.detach().numpy()] + [p.grad.numpy() for p in net.parameters()]


def test_sequential_runs_every_module_it_holds():
    net = _net()
    seen = []
    for m in net:
        m.register_forward_hook(lambda m, args, out: seen.append(type(m).__name__))
    with sd.backend.trace_paths() as log:
        net(sd.randn(2, 1, 8, 8))
    assert seen == ["Conv2d", "ReLU", "MaxPool2d", "Flatten", "Linear", "ReLU", "Linear"]
    ops = [op for op, _ in log]
    assert ops.count("relu") == 2 and "bias_relu" not in ops


def test_fused_model_gives_the_plain_results():
    x = sd.randn(4, 1, 8, 8)
    net = _net()
    plain = _step(net, x)
    fused = _step(nn.utils.fuse(net), x)
    for a, b in zip(fused, plain):
        # the same sums in the same order; a fused kernel may only reorder the products'
        # float32 additions, well inside this bound for these small sums
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_fuse_is_shown_shares_parameters_and_keeps_state_dict_names():
    net = _net()
    fused = nn.utils.fuse(net)
    assert [type(m).__name__ for m in fused] == ["FusedConv2dReLU", "MaxPool2d", "Flatten",
                                                  "FusedLinearReLU", "Linear"]
    text = repr(fused)
    assert "(0): FusedConv2dReLU(1, 3, kernel_size=(3, 3)" in text
    assert "(4): FusedLinearReLU(in_features=48, out_features=5, bias=True)" in text
    assert [type(m).__name__ for m in net][:2] == ["Conv2d", "ReLU"]  # the original is kept
    assert list(fused.state_dict()) == list(net.state_dict())
    assert all(a is b for a, b in zip(fused.parameters(), net.parameters()))
    with sd.backend.trace_paths() as log:
        fused(sd.randn(2, 1, 8, 8))
    assert "relu" not in [op for op, _ in log]  # the ReLUs ran inside the fused ops


def test_which_pairs_fuse():
    def kinds(*mods):
        return [type(m).__name__ for m in nn.utils.fuse(nn.Sequential(*mods))]

    assert kinds(nn.Linear(2, 2), nn.ReLU()) == ["FusedLinearReLU"]
    assert kinds(nn.Conv2d(1, 1, 3), nn.ReLU()) == ["FusedConv2dReLU"]
    assert kinds(nn.Linear(2, 2), nn.Tanh()) == ["Linear", "Tanh"]
    assert kinds(nn.Conv1d(1, 1, 3), nn.ReLU()) == ["Conv1d", "ReLU"]
    assert kinds(nn.ReLU(), nn.Linear(2, 2)) == ["ReLU", "Linear"]

    class MyLinear(nn.Linear):  # may change forward: left alone
        pass

    assert kinds(MyLinear(2, 2), nn.ReLU()) == ["MyLinear", "ReLU"]
    hooked = nn.ReLU()
    hooked.register_forward_hook(lambda m, args, out: None)  # must see its own call
    assert kinds(nn.Linear(2, 2), hooked) == ["Linear", "ReLU"]


def test_fuse_reaches_sequentials_inside_other_modules():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(3, 4), nn.ReLU())
            self.head = nn.Linear(4, 1)

        def forward(self, x):
            return self.head(self.body(x))

    net = Net()
    fused = nn.utils.fuse(net)
    assert type(fused) is Net and type(fused.body[0]).__name__ == "FusedLinearReLU"
    assert type(net.body[0]) is nn.Linear  # unchanged
    x = sd.randn(5, 3)
    np.testing.assert_allclose(fused(x).detach().numpy(), net(x).detach().numpy(),
                               rtol=1e-6, atol=1e-6)
    assert list(fused.state_dict()) == list(net.state_dict())


def test_fused_model_in_eval_and_no_grad():
    net = _net().eval()
    fused = nn.utils.fuse(net)
    assert not fused.training
    x = sd.randn(2, 1, 8, 8)
    with sd.no_grad():
        a = fused(x).numpy()
        b = net(x).numpy()
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
