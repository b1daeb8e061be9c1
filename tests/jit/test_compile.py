"""sd.compile: the cache per signature, equality with eager (forward and gradients), and
training through a compiled module."""
import os

import numpy as np
import pytest

import shendu as sd
from shendu import nn
from shendu.vision import models

# Kept out of the default run for time (SHENDU_FULL_ZOO=1 runs them): AlexNet and the VGGs
# (57-144 M parameters) use only ops the smaller models cover; ResNet-34 and ResNet-101
# repeat the blocks ResNet-18 and ResNet-50 check.
_HEAVY = {"alexnet", "vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn",
          "vgg19_bn", "resnet34", "resnet101"}


def _zoo():
    """LeNet-5, the MLP, every model of the zoo (list_models()), and the recurrent and
    attention blocks; each with the smallest input it accepts."""
    known = {"LeNet5": (models.LeNet5, (2, 1, 28, 28)),
             "MLP": (lambda: models.MLP(784, (64, 32), num_classes=10), (3, 784))}
    names = [*known, *models.list_models()]
    if not os.environ.get("SHENDU_FULL_ZOO"):
        names = [n for n in names if n not in _HEAVY]
    out = []
    for name in names:
        if name in known:
            make, shape = known[name]
        else:  # the zoo's image classifiers at their smallest input, 10 classes
            def make(name=name):
                model = models.get_model(name, num_classes=10)
                # dropout draws differ between two runs; eval() keeps both deterministic
                has_dropout = any(isinstance(m, nn.Dropout) for m in model.modules())
                return model.eval() if has_dropout else model
            probe = models.get_model(name, num_classes=10)
            size = max(getattr(probe, "min_input_size", 32), 32)
            in_ch = 1 if name == "nin" else 3
            shape = (2, in_ch, size, size)
        out.append((name, make, shape))
    out.append(("LSTM", lambda: nn.LSTM(6, 8, num_layers=2, batch_first=True), (2, 5, 6)))
    out.append(("TransformerEncoderLayer",
                lambda: nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, batch_first=True),
                (2, 5, 16)))
    return out


def _first(out):
    return out[0] if isinstance(out, tuple) else out


@pytest.mark.parametrize("name, make, shape", _zoo(), ids=[z[0] for z in _zoo()])
def test_compiled_equals_eager_float64(name, make, shape):
    """Forward and parameter gradients within 1e-10 (relative) of eager in float64: fusion
    reuses each op's own rules, so only a Linear+ReLU's bias order may differ (1 ulp)."""
    sd.manual_seed(0)
    model = make().to(sd.float64)
    x = sd.randn(*shape, dtype=sd.float64)
    compiled = sd.compile(model)
    got = _first(compiled(x))
    ref = _first(model(x))
    np.testing.assert_allclose(got.detach().numpy(), ref.detach().numpy(), rtol=1e-10,
                               atol=1e-12)
    (ref * ref).sum().backward()
    # parameters outside the forward (GoogLeNet's auxiliary heads in eval) get no grad
    eager = [None if p.grad is None else p.grad.numpy().copy() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    (got * got).sum().backward()
    for p, g in zip(model.parameters(), eager):
        if g is None:
            assert p.grad is None
        else:
            # a sum reassociated by fusion errs relative to its terms, not its result: an
            # entry that cancels to ~0 is held to the scale of the whole gradient
            np.testing.assert_allclose(p.grad.numpy(), g, rtol=1e-10,
                                       atol=1e-12 + 1e-13 * np.abs(g).max())


def test_float32_within_documented_tolerance():
    """float32: the fused bias+ReLU adds the bias after the GEMM rather than inside it;
    each output differs by at most a rounding of the sum (|y| * 2^-23) plus the bias."""
    model = models.MLP(784, (64, 32), num_classes=10)
    x = sd.randn(16, 784)
    got, ref = sd.compile(model)(x), model(x)
    np.testing.assert_allclose(got.detach().numpy(), ref.detach().numpy(), rtol=1e-5,
                               atol=1e-5)


def test_cache_per_signature_and_mode():
    net = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5), nn.ReLU())
    c = sd.compile(net)
    x = sd.randn(3, 4)
    c(x)
    c(sd.randn(3, 4))
    assert len(c.graphs) == 1
    c(sd.randn(5, 4))
    assert len(c.graphs) == 2
    net.eval()
    out = c(x)
    assert len(c.graphs) == 3
    eval_graph = c.graphs[c._compiled.signature((x,))]
    assert "dropout" not in [n.op for n in eval_graph]
    np.testing.assert_array_equal(out.detach().numpy(), net(x).detach().numpy())
    with sd.no_grad():
        c(x)
    assert len(c.graphs) == 4  # grad mode is part of the key too
    net.train()
    train_graph = c.graphs[c._compiled.signature((x,))]
    assert "dropout" in [n.op for n in train_graph]
    a, b = c(x).detach().numpy(), c(x).detach().numpy()
    assert not np.array_equal(a, b)  # a new mask each call


def test_batchnorm_train_and_eval_through_compile():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU())
    c = sd.compile(net)
    x = sd.randn(4, 1, 6, 6) * 3 + 1
    c(x)
    assert not np.allclose(net[1].running_mean.numpy(), 0)  # running stats moved
    mean = net[1].running_mean.numpy().copy()
    net.eval()
    np.testing.assert_allclose(c(x).detach().numpy(), net(x).detach().numpy(), rtol=1e-6)
    np.testing.assert_array_equal(net[1].running_mean.numpy(), mean)


def test_training_through_compiled_module_matches_eager():
    sd.manual_seed(1)
    a = models.LeNet5()
    b = models.LeNet5()
    b.load_state_dict(a.state_dict())
    ca = sd.compile(a)
    oa, ob = sd.optim.SGD(a.parameters(), lr=0.05), sd.optim.SGD(b.parameters(), lr=0.05)
    x, y = sd.randn(8, 1, 28, 28), sd.randint(0, 10, (8,))
    for _ in range(3):
        for model, opt in ((ca, oa), (b, ob)):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
    assert len(ca.graphs) == 1
    for p, q in zip(a.parameters(), b.parameters()):
        np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=1e-4,
                                   atol=1e-6)
    assert "_orig_mod.features.0.weight" in ca.state_dict()


def test_compile_a_function_and_bad_arguments():
    f = sd.compile(lambda x, y: (x * y).tanh().sum(dim=1))
    x, y = sd.randn(3, 4, dtype=sd.float64), sd.randn(3, 4, dtype=sd.float64)
    # no grad recorded: the fused group may run as a numba loop, whose tanh is libm's (a few
    # ulp from NumPy's)
    np.testing.assert_allclose(f(x, y).numpy(), (x * y).tanh().sum(dim=1).numpy(),
                               rtol=1e-13)
    assert isinstance(f, sd.jit.CompiledFunction)
    with pytest.raises(sd.jit.TraceError, match="inputs must be tensors, got float"):
        f(x, 2.0)
    with pytest.raises(TypeError, match="expected a module or a function"):
        sd.compile(3)


def test_losses_with_index_targets_are_recorded_not_frozen():
    """cross_entropy/nll_loss turn the targets into raw arrays: they are leaf nodes whose
    target is a graph input, so a new target gives a new loss."""
    F = nn.functional
    m = nn.Linear(4, 3)
    f = sd.compile(lambda x, y: F.cross_entropy(m(x), y))
    x = sd.randn(5, 4)
    for y in (sd.tensor([0, 1, 2, 0, 1]), sd.tensor([2, 2, 2, 2, 2])):
        np.testing.assert_allclose(float(f(x, y)), float(F.cross_entropy(m(x), y)), rtol=1e-6)
    node = next(iter(f.graphs.values()))[-1]
    assert node.op == "cross_entropy" and [v.name for v in node.inputs][1] == "y"
    g = sd.compile(lambda x, y: F.nll_loss(F.log_softmax(m(x), dim=1), y))
    for y in (sd.tensor([0, 1, 2, 0, 1]), sd.tensor([1, 1, 0, 0, 2])):
        np.testing.assert_allclose(float(g(x, y)),
                                   float(F.nll_loss(F.log_softmax(m(x), dim=1), y)), rtol=1e-6)
