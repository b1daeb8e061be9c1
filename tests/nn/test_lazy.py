"""Lazy modules: shapes from the first batch, placeholders before it, in-place
materialization (optimizers built early keep working), state dicts before and after, and
d2l-style networks built from lazy layers that train. Checked against PyTorch's lazy
modules where it is installed."""
import copy
import math

import numpy as np
import pytest

import shendu as sd
import shendu.nn as nn
from shendu.nn import UninitializedBuffer, UninitializedParameter
from shendu.nn.parameter import UninitializedError

rng = np.random.default_rng(0)

# (lazy class, constructor args, input shape, regular class, expected parameter shapes)
CASES = [
    ("LazyLinear", (4,), (3, 5), "Linear", {"weight": (4, 5), "bias": (4,)}),
    ("LazyLinear", (2,), (2, 3, 7), "Linear", {"weight": (2, 7), "bias": (2,)}),
    ("LazyConv1d", (6, 3), (2, 4, 9), "Conv1d", {"weight": (6, 4, 3), "bias": (6,)}),
    ("LazyConv2d", (6, 5), (2, 3, 8, 8), "Conv2d", {"weight": (6, 3, 5, 5), "bias": (6,)}),
    ("LazyConv2d", (4, 3), (2, 9, 9), "Conv2d", {"weight": (4, 1, 3, 3), "bias": (4,)}),
    ("LazyConvTranspose1d", (3, 4), (1, 2, 5), "ConvTranspose1d",
     {"weight": (2, 3, 4), "bias": (3,)}),
    ("LazyConvTranspose2d", (5, 2), (2, 4, 3, 3), "ConvTranspose2d",
     {"weight": (4, 5, 2, 2), "bias": (5,)}),
    ("LazyBatchNorm1d", (), (8, 3), "BatchNorm1d",
     {"weight": (3,), "bias": (3,), "running_mean": (3,), "running_var": (3,),
      "num_batches_tracked": ()}),
    ("LazyBatchNorm2d", (), (4, 5, 3, 3), "BatchNorm2d",
     {"weight": (5,), "bias": (5,), "running_mean": (5,), "running_var": (5,),
      "num_batches_tracked": ()}),
    ("LazyBatchNorm3d", (), (2, 2, 3, 3, 3), "BatchNorm3d",
     {"weight": (2,), "bias": (2,), "running_mean": (2,), "running_var": (2,),
      "num_batches_tracked": ()}),
]
IDS = [f"{c[0]}-{c[2]}" for c in CASES]


@pytest.mark.parametrize("lazy,args,shape,regular,shapes", CASES, ids=IDS)
def test_first_call_infers_shapes_and_becomes_regular(lazy, args, shape, regular, shapes):
    m = getattr(nn, lazy)(*args)
    if lazy == "LazyConv2d" and len(shape) == 3:
        m = nn.LazyConv2d(*args, groups=2)  # unbatched input, grouped
    assert type(m).__name__ == lazy
    for name, t in m.state_dict().items():
        if name != "num_batches_tracked":
            assert isinstance(t, (UninitializedParameter, UninitializedBuffer)), name
    assert m.has_uninitialized_params()
    y = m(sd.tensor(rng.standard_normal(shape).astype(np.float32)))
    assert type(m) is getattr(nn, regular)
    assert {k: tuple(v.shape) for k, v in m.state_dict().items()} == shapes
    assert all(type(p) is nn.Parameter for p in m.parameters())
    assert not hasattr(m, "_lazy_hook") and not m._forward_pre_hooks
    # the regular layer built with the inferred sizes gives the same output for the same
    # parameters
    ref = copy.deepcopy(m)
    np.testing.assert_array_equal(ref(sd.tensor(np.ones(shape, np.float32))).detach().numpy(),
                                  m(sd.tensor(np.ones(shape, np.float32))).detach().numpy())
    assert y.dtype == sd.float32


@pytest.mark.parametrize("lazy,args,shape,regular,shapes", CASES, ids=IDS)
def test_matches_torch_lazy_module(lazy, args, shape, regular, shapes):
    torch = pytest.importorskip("torch", reason="PyTorch is the oracle for this test")
    m = getattr(nn, lazy)(*args)
    tm = getattr(torch.nn, lazy)(*args)
    if lazy == "LazyConv2d" and len(shape) == 3:
        m, tm = nn.LazyConv2d(*args, groups=2), torch.nn.LazyConv2d(*args, groups=2)
    assert repr(m) == repr(tm)
    assert list(m.state_dict()) == list(tm.state_dict())
    x = rng.standard_normal(shape).astype(np.float32)
    tm(torch.tensor(x))
    m(sd.tensor(x))
    assert repr(m) == repr(tm) and type(m).__name__ == type(tm).__name__
    # PyTorch's weights load into ours and both give the same output
    tsd = tm.state_dict()
    assert {k: tuple(v.shape) for k, v in m.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in tsd.items()}
    m.load_state_dict({k: v.numpy() for k, v in tsd.items()})
    m.eval()
    tm.eval()
    np.testing.assert_allclose(m(sd.tensor(x)).detach().numpy(),
                               tm(torch.tensor(x)).detach().numpy(), rtol=1e-5, atol=1e-5)


def test_default_initialisation_is_the_regular_layers():
    sd.manual_seed(0)
    m = nn.LazyLinear(300)
    m(sd.ones(2, 50))
    bound = 1 / math.sqrt(50)  # kaiming_uniform(a=sqrt(5)) gives U(-1/sqrt(fan_in), ...)
    w = m.weight.detach().numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.02 * bound
    bn = nn.LazyBatchNorm1d()
    bn.eval()(sd.ones(2, 4))
    np.testing.assert_array_equal(bn.weight.detach().numpy(), np.ones(4))
    np.testing.assert_array_equal(bn.running_var.numpy(), np.ones(4))
    np.testing.assert_array_equal(bn.running_mean.numpy(), np.zeros(4))


def test_use_before_first_call_raises_a_clear_error():
    m = nn.LazyLinear(3)
    assert repr(m.weight) == "<UninitializedParameter>"
    for use in (lambda: m.weight.numel(), lambda: m.weight.shape, lambda: m.weight + 1,
                lambda: m.num_parameters(), lambda: sd.ones(2) * m.bias,
                lambda: m.weight.sum()):
        with pytest.raises(UninitializedError, match="(?i)uninitialized"):
            use()
    with pytest.raises(ValueError):  # both ValueError (PyTorch's op error) ...
        m.weight.numel()
    with pytest.raises(RuntimeError):  # ... and RuntimeError (PyTorch's .shape error)
        _ = m.weight.shape
    with pytest.raises(ValueError, match="LazyConv2d: expected a 4-D batched or 3-D"):
        nn.LazyConv2d(2, 3)(sd.ones(4, 4))
    with pytest.raises(ValueError, match="not divisible by groups=2"):
        nn.LazyConv2d(4, 3, groups=2)(sd.ones(1, 3, 5, 5))


def test_optimizer_built_before_the_first_call_updates_the_parameters():
    net = nn.Sequential(nn.LazyLinear(4), nn.ReLU(), nn.LazyLinear(1))
    params = list(net.parameters())
    opt = sd.optim.SGD(net.parameters(), lr=0.1)
    x = sd.tensor(rng.standard_normal((6, 3)).astype(np.float32))
    loss = (net(x) ** 2).mean()
    assert [p is q for p, q in zip(params, net.parameters())] == [True] * 4
    before = [p.detach().numpy().copy() for p in params]
    loss.backward()
    grads = [p.grad.numpy().copy() for p in params]
    opt.step()
    for p, b, g in zip(params, before, grads):
        np.testing.assert_allclose(p.detach().numpy(), b - 0.1 * g, rtol=1e-6, atol=1e-7)
    assert any(np.abs(g).max() > 0 for g in grads)
    adam = sd.optim.Adam(nn.LazyLinear(2).parameters())  # Adam state after materializing
    m = adam.param_groups[0]["params"]
    assert len(m) == 2


def test_state_dict_round_trip_and_loading_into_a_lazy_module():
    src = nn.Sequential(nn.LazyConv2d(3, 3), nn.LazyBatchNorm2d(), nn.Flatten(),
                        nn.LazyLinear(2))
    x = sd.tensor(rng.standard_normal((2, 1, 5, 5)).astype(np.float32))
    src(x)
    state = src.state_dict()
    dst = nn.Sequential(nn.LazyConv2d(3, 3), nn.LazyBatchNorm2d(), nn.Flatten(),
                        nn.LazyLinear(2))
    opt = sd.optim.SGD(dst.parameters(), lr=0.1)  # built on the placeholders
    assert str(dst.load_state_dict(state)) == "<All keys matched successfully>"
    assert [type(m).__name__ for m in dst] == ["Conv2d", "BatchNorm2d", "Flatten", "Linear"]
    assert dst[0].in_channels == 1 and dst[3].in_features == 27 and dst[1].num_features == 3
    for k, v in dst.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), state[k].numpy())
    src.eval()
    dst.eval()
    np.testing.assert_array_equal(dst(x).detach().numpy(), src(x).detach().numpy())
    dst.train()
    dst(x).sum().backward()
    w = dst[3].weight.detach().numpy().copy()
    opt.step()
    assert not np.array_equal(dst[3].weight.detach().numpy(), w)
    # an uninitialized module's state dict loads into another uninitialized one (no-op) ...
    lazy = nn.LazyLinear(2)
    lazy.load_state_dict(nn.LazyLinear(2).state_dict())
    assert lazy.has_uninitialized_params()
    # ... but not into an initialized one
    with pytest.raises(RuntimeError, match="uninitialized placeholder"):
        nn.Linear(3, 2).load_state_dict(nn.LazyLinear(2).state_dict())


def test_partial_load_then_forward_keeps_the_loaded_values():
    m = nn.LazyLinear(2)
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    res = m.load_state_dict({"weight": w}, strict=False)
    assert res.missing_keys == ["bias"]
    assert type(m) is nn.LazyLinear and m.in_features == 3
    m(sd.ones(1, 3))
    assert type(m) is nn.Linear
    np.testing.assert_array_equal(m.weight.detach().numpy(), w)
    assert m.bias.shape == (2,)


def test_to_dtype_before_the_first_call():
    m = nn.Sequential(nn.LazyLinear(3), nn.LazyBatchNorm1d()).to(sd.float64)
    y = m(sd.tensor(rng.standard_normal((4, 2))))
    assert y.dtype == sd.float64 and m[0].weight.dtype == sd.float64
    assert m[1].running_mean.dtype == sd.float64
    assert nn.LazyLinear(2, dtype=sd.float64)(sd.ones(1, 2, dtype=sd.float64)).dtype == \
        sd.float64
    c = copy.deepcopy(nn.LazyLinear(2))  # placeholders copy too
    assert c.has_uninitialized_params()
    c(sd.ones(1, 4))
    assert c.weight.shape == (2, 4)


def test_lazy_batchnorm_without_affine_or_stats():
    bn = nn.LazyBatchNorm1d(affine=False, track_running_stats=False)
    x = rng.standard_normal((6, 3)) * 3 + 2
    y = bn(sd.tensor(x)).numpy()
    np.testing.assert_allclose(y, (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5), rtol=1e-10)
    assert type(bn) is nn.BatchNorm1d and bn.num_features == 3


def _train(net, x, y, lr, steps, opt_cls=sd.optim.SGD):
    opt = None
    losses = []
    for _ in range(steps):
        loss = nn.functional.cross_entropy(net(x), y)
        if opt is None:  # d2l builds the optimizer after a dummy forward; either way works
            opt = opt_cls(net.parameters(), lr=lr)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_d2l_style_mlp_from_lazy_layers_trains():
    sd.manual_seed(1)
    n = 256
    x = rng.standard_normal((n, 10)).astype(np.float32)
    y = (x[:, 0] * x[:, 1] > 0).astype(np.int64) + 2 * (x[:, 2] > 0)  # 4 classes, not linear
    net = nn.Sequential(nn.Flatten(), nn.LazyLinear(64), nn.ReLU(), nn.LazyLinear(4))
    losses = _train(net, sd.tensor(x), sd.tensor(y), 0.5, 150)
    acc = float((net(sd.tensor(x)).argmax(1).numpy() == y).mean())
    assert losses[-1] < 0.35 * losses[0] and acc > 0.9, (losses[0], losses[-1], acc)


def test_d2l_lenet_from_lazy_layers_trains():
    sd.manual_seed(2)
    n = 64
    y = rng.integers(0, 4, n)
    x = rng.standard_normal((n, 1, 28, 28)).astype(np.float32) * 0.3
    for i, c in enumerate(y):  # class = which quadrant holds a bright square
        r0, c0 = 4 + 12 * (c // 2), 4 + 12 * (c % 2)
        x[i, 0, r0:r0 + 8, c0:c0 + 8] += 2.0
    net = nn.Sequential(  # d2l's LeNet (ReLU for a short run)
        nn.LazyConv2d(6, kernel_size=5, padding=2), nn.ReLU(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.LazyConv2d(16, kernel_size=5), nn.ReLU(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Flatten(),
        nn.LazyLinear(120), nn.ReLU(),
        nn.LazyLinear(84), nn.ReLU(),
        nn.LazyLinear(4))
    losses = _train(net, sd.tensor(x), sd.tensor(y), 0.01, 12, sd.optim.Adam)
    assert [type(m).__name__ for m in net][0] == "Conv2d" and net[7].in_features == 400
    acc = float((net(sd.tensor(x)).argmax(1).numpy() == y).mean())
    assert losses[-1] < 0.2 * losses[0] and acc > 0.95, (losses[0], losses[-1], acc)


LAZY = ["LazyLinear", "LazyConv1d", "LazyConv2d", "LazyConvTranspose1d", "LazyConvTranspose2d",
        "LazyBatchNorm1d", "LazyBatchNorm2d", "LazyBatchNorm3d"]


@pytest.mark.parametrize("name", LAZY)
def test_constructor_arguments_are_torchs(name):
    torch = pytest.importorskip("torch", reason="PyTorch is the oracle for this test")
    import inspect

    def sig(cls):
        return [(p.name, p.default) for p in
                list(inspect.signature(cls.__init__).parameters.values())[1:]]

    assert sig(getattr(nn, name)) == sig(getattr(torch.nn, name))


def test_lazy_batchnorm_without_bias_matches_torch():
    torch = pytest.importorskip("torch", reason="PyTorch is the oracle for this test")
    m, tm = nn.LazyBatchNorm2d(bias=False), torch.nn.LazyBatchNorm2d(bias=False)
    x = rng.standard_normal((2, 3, 2, 2)).astype(np.float32)
    m(sd.tensor(x))
    tm(torch.tensor(x))
    assert repr(m) == repr(tm) and list(m.state_dict()) == list(tm.state_dict())


class LazyAffine(nn.LazyModuleMixin, nn.Module):
    """A user-defined lazy module written the way PyTorch's documentation shows."""

    def __init__(self):
        super().__init__()
        self.scale = UninitializedParameter()
        self.register_buffer("shift", UninitializedBuffer())

    def initialize_parameters(self, x):
        if self.has_uninitialized_params():
            with sd.no_grad():
                self.scale.materialize((x.shape[-1],))
                self.shift.materialize((x.shape[-1],))
                self.scale.fill_(3.0)
                self.shift.fill_(1.0)

    def forward(self, x):
        return x * self.scale + self.shift


def test_user_defined_lazy_module():
    m = LazyAffine()
    assert isinstance(m, nn.LazyModuleMixin) and m.has_uninitialized_params()
    opt = sd.optim.SGD(m.parameters(), lr=0.5)
    x = sd.tensor([[1.0, 2.0]])
    np.testing.assert_array_equal(m(x).detach().numpy(), [[4.0, 7.0]])
    assert type(m) is LazyAffine and not m.has_uninitialized_params()
    m(x).sum().backward()
    opt.step()
    np.testing.assert_array_equal(m.scale.detach().numpy(), [2.5, 2.0])
    # loading a checkpoint materializes a fresh one without a forward call
    fresh = LazyAffine()
    fresh.load_state_dict(m.state_dict())
    np.testing.assert_array_equal(fresh.shift.numpy(), [1.0, 1.0])
    np.testing.assert_array_equal(fresh(x).detach().numpy(), m(x).detach().numpy())
