"""nn.Sequential runs Linear/Conv2d followed by ReLU as one fused op, invisibly."""
import numpy as np

import shendu as sd
import shendu.nn as nn
from shendu.nn import containers


def _net():
    sd.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(3 * 4 * 4, 5), nn.ReLU(), nn.Linear(5, 2))


def _step(net, x):
    net.zero_grad()
    out = net(x)
    out.sum().backward()
    return [out.detach().numpy()] + [p.grad.numpy() for p in net.parameters()]


def test_fused_sequential_gives_the_unfused_results(monkeypatch):
    x = sd.randn(4, 1, 8, 8)
    net = _net()
    fused = _step(net, x)
    monkeypatch.setattr(containers, "_fuses_with_relu", lambda m, nxt: False)
    plain = _step(net, x)
    for a, b in zip(fused, plain):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_which_pairs_fuse():
    lin, relu = nn.Linear(2, 2), nn.ReLU()
    assert containers._fuses_with_relu(lin, relu)
    assert containers._fuses_with_relu(nn.Conv2d(1, 1, 3), relu)
    assert not containers._fuses_with_relu(lin, nn.Tanh())
    assert not containers._fuses_with_relu(nn.Conv1d(1, 1, 3), relu)

    class MyLinear(nn.Linear):  # may change forward: left alone
        pass

    assert not containers._fuses_with_relu(MyLinear(2, 2), relu)


def test_hooks_see_every_module_of_a_fusable_pair():
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU())
    seen = []
    net[1].register_forward_hook(lambda m, args, out: seen.append(type(m).__name__))
    out = net(sd.randn(2, 3))
    assert seen == ["ReLU"]
    assert (out.detach().numpy() >= 0).all()
    assert not containers._fuses_with_relu(net[0], net[1])


def test_fused_pair_in_eval_and_no_grad():
    net = _net().eval()
    x = sd.randn(2, 1, 8, 8)
    with sd.no_grad():
        a = net(x).numpy()
    b = net[6](net[5](net[4](net[3](net[2](net[1](net[0](x))))))).detach().numpy()
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
