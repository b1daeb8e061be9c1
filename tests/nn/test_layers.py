"""Layer modules against PyTorch: a torch layer's state_dict loads into ours, and then the
forward output and the gradients w.r.t. the input and every parameter agree (float64,
1e-6), in training and eval mode. Plus finite-difference gradchecks, default-initialisation
statistics, reprs, and the layers torch does not have (DropConnect, Maxout, Step)."""
import math

import numpy as np
import pytest

import shendu as sd
import shendu.nn.functional as F
from shendu.nn import layers as L

# (layer name, constructor args, constructor kwargs, input shapes); built identically in
# shendu.nn.layers and torch.nn.
CASES = [
    ("Linear", (5, 3), {}, [(4, 5)]),
    ("Linear", (5, 3), {"bias": False}, [(2, 3, 5)]),
    ("Bilinear", (3, 4, 2), {}, [(5, 3), (5, 4)]),
    ("Conv1d", (4, 6, 3), {"stride": 2, "padding": 1, "groups": 2}, [(2, 4, 9)]),
    ("Conv1d", (3, 2, 4), {"padding": "same", "dilation": 2}, [(2, 3, 11)]),
    ("Conv1d", (2, 3, 3), {"padding": 2, "padding_mode": "circular"}, [(2, 2, 7)]),
    ("Conv2d", (3, 6, 5), {}, [(2, 3, 8, 8)]),
    ("Conv2d", (4, 6, 3), {"stride": 2, "padding": 1, "groups": 2, "bias": False},
     [(2, 4, 7, 6)]),
    ("Conv2d", (2, 4, (2, 3)), {"padding": "same", "dilation": (2, 1)}, [(1, 2, 6, 5)]),
    ("Conv2d", (2, 3, 3), {"padding": "valid", "stride": (1, 2)}, [(2, 6, 7)]),
    ("Conv2d", (2, 3, 3), {"padding": (1, 2), "padding_mode": "reflect"}, [(1, 2, 5, 6)]),
    ("Conv2d", (2, 3, 3), {"padding": 1, "padding_mode": "replicate"}, [(1, 2, 4, 5)]),
    ("Conv2d", (2, 3, 3), {"padding": "same", "padding_mode": "circular"}, [(1, 2, 4, 5)]),
    ("ConvTranspose2d", (4, 6, 3), {"stride": 2, "padding": 1, "output_padding": 1,
                                    "groups": 2}, [(2, 4, 4, 5)]),
    ("ConvTranspose2d", (3, 2, (2, 3)), {"dilation": 2, "bias": False}, [(1, 3, 3, 3)]),
    ("ConvTranspose1d", (4, 2, 4), {"stride": 2, "padding": 1}, [(2, 4, 5)]),
    ("MaxPool2d", (2,), {}, [(2, 3, 6, 6)]),
    ("MaxPool2d", (3,), {"stride": 2, "padding": 1, "ceil_mode": True}, [(2, 2, 7, 6)]),
    ("MaxPool2d", (2,), {"dilation": 2}, [(1, 2, 7, 7)]),
    ("MaxPool1d", (3, 2, 1), {}, [(2, 3, 9)]),
    ("AvgPool2d", (3, 2, 1), {"count_include_pad": False}, [(2, 3, 7, 6)]),
    ("AvgPool2d", (2,), {"ceil_mode": True, "divisor_override": 3}, [(1, 2, 5, 5)]),
    ("AvgPool1d", (3, 2, 1), {}, [(2, 3, 9)]),
    ("AdaptiveAvgPool2d", ((3, 2),), {}, [(2, 3, 7, 5)]),
    ("AdaptiveAvgPool2d", ((None, 2),), {}, [(2, 3, 4, 6)]),
    ("AdaptiveAvgPool2d", (1,), {}, [(2, 3, 4, 5)]),
    ("AdaptiveMaxPool2d", ((3, 2),), {}, [(2, 3, 7, 5)]),
    ("AdaptiveMaxPool2d", (2,), {}, [(1, 2, 4, 4)]),
    ("AdaptiveAvgPool1d", (3,), {}, [(2, 3, 7)]),
    ("AdaptiveMaxPool1d", (3,), {}, [(2, 3, 7)]),
    ("Upsample", (), {"scale_factor": 2}, [(1, 2, 3, 4)]),
    ("Upsample", (), {"size": (5, 7), "mode": "bilinear"}, [(1, 2, 3, 4)]),
    ("Upsample", (), {"scale_factor": 2, "mode": "bilinear", "align_corners": True},
     [(1, 2, 3, 4)]),
    ("BatchNorm1d", (3,), {}, [(8, 3)]),
    ("BatchNorm1d", (3,), {"momentum": None, "affine": False}, [(4, 3, 5)]),
    ("BatchNorm2d", (4,), {"eps": 1e-3, "momentum": 0.3}, [(3, 4, 3, 3)]),
    ("BatchNorm2d", (4,), {"track_running_stats": False}, [(3, 4, 2, 3)]),
    ("LayerNorm", ((3, 4),), {}, [(2, 5, 3, 4)]),
    ("LayerNorm", (5,), {"elementwise_affine": False}, [(2, 5)]),
    ("LayerNorm", (5,), {"bias": False}, [(3, 5)]),
    ("GroupNorm", (2, 6), {}, [(2, 6, 3, 2)]),
    ("GroupNorm", (3, 6), {"affine": False}, [(2, 6, 4)]),
    ("GroupNorm", (3, 6), {"bias": False}, [(2, 6, 4)]),
    ("BatchNorm1d", (3,), {"bias": False}, [(5, 3, 2)]),
    ("LocalResponseNorm", (3,), {"alpha": 0.1, "beta": 0.6, "k": 2.0}, [(2, 5, 3, 3)]),
    ("LocalResponseNorm", (2,), {}, [(2, 4, 6)]),
    ("ReLU", (), {}, [(3, 4)]), ("LeakyReLU", (0.2,), {}, [(3, 4)]),
    ("ELU", (0.7,), {}, [(3, 4)]), ("SELU", (), {}, [(3, 4)]),
    ("GELU", (), {}, [(3, 4)]), ("GELU", (), {"approximate": "tanh"}, [(3, 4)]),
    ("SiLU", (), {}, [(3, 4)]), ("Mish", (), {}, [(3, 4)]), ("Sigmoid", (), {}, [(3, 4)]),
    ("Tanh", (), {}, [(3, 4)]), ("Softsign", (), {}, [(3, 4)]),
    ("LogSigmoid", (), {}, [(3, 4)]), ("Softplus", (2.0, 1.0), {}, [(3, 4)]),
    ("Hardtanh", (-0.5, 0.8), {}, [(3, 4)]), ("ReLU6", (), {}, [(3, 4)]),
    ("Softmax", (), {"dim": 1}, [(3, 4)]), ("LogSoftmax", (), {"dim": -1}, [(2, 3, 4)]),
    ("Softmin", (), {"dim": 0}, [(3, 4)]), ("GLU", (), {}, [(3, 4)]),
]
IDS = [f"{name}-{i}" for i, (name, *_) in enumerate(CASES)]


def _np(t):
    """A tensor's values (shendu or torch, requiring grad or not) as a NumPy array."""
    return np.asarray(t.detach())


def _pair(name, args, kwargs, torch):
    theirs = getattr(torch.nn, name)(*args, **kwargs).double()
    ours = getattr(L, name)(*args, **kwargs).double()
    ours.load_state_dict({k: _np(v) for k, v in theirs.state_dict().items()})
    return ours, theirs


def _compare(ours, theirs, xs, torch, rng):
    """Forward and backward of both on the same inputs; assert everything agrees."""
    sx = [sd.tensor(x, requires_grad=True) for x in xs]
    tx = [torch.tensor(x, requires_grad=True) for x in xs]
    so, to = ours(*sx), theirs(*tx)
    np.testing.assert_allclose(_np(so), _np(to), atol=1e-6, rtol=1e-6)
    g = rng.standard_normal(so.shape)
    so.backward(sd.tensor(g))
    to.backward(torch.tensor(g))
    for i, (a, b) in enumerate(zip(sx, tx)):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), atol=1e-6, rtol=1e-6,
                                   err_msg=f"gradient of input {i}")
    tparams = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), tparams[name].grad.numpy(), atol=1e-6,
                                   rtol=1e-6, err_msg=f"gradient of {name}")
        p.grad, tparams[name].grad = None, None
    tstate = theirs.state_dict()
    for name, b in ours.state_dict().items():  # running statistics, num_batches_tracked
        np.testing.assert_allclose(b.numpy(), tstate[name].numpy(), atol=1e-6, rtol=1e-6,
                                   err_msg=f"state {name}")


@pytest.mark.parametrize("name, args, kwargs, shapes", CASES, ids=IDS)
def test_matches_torch(name, args, kwargs, shapes):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    ours, theirs = _pair(name, args, kwargs, torch)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert repr(ours) == repr(theirs)
    for _ in range(3):  # several training steps: BatchNorm's running statistics accumulate
        _compare(ours.train(), theirs.train(), [rng.standard_normal(s) * 2 + 0.5
                                               for s in shapes], torch, rng)
    _compare(ours.eval(), theirs.eval(), [rng.standard_normal(s) for s in shapes], torch, rng)


def test_unbatched_and_output_size_match_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    ours, theirs = _pair("Conv2d", (2, 3, 3), {"padding": 1}, torch)
    _compare(ours, theirs, [rng.standard_normal((2, 5, 4))], torch, rng)
    ours, theirs = _pair("ConvTranspose2d", (2, 3, 3), {"stride": 3}, torch)
    x = rng.standard_normal((1, 2, 4, 4))
    for size in [(12, 12), (13, 14), (1, 3, 14, 12)]:
        out = ours(sd.tensor(x), output_size=size)
        ref = theirs(torch.tensor(x), output_size=size)
        np.testing.assert_allclose(_np(out), _np(ref), atol=1e-9)
    with pytest.raises(ValueError, match="output_size"):
        ours(sd.tensor(x), output_size=(15, 12))
    pool, tpool = L.MaxPool2d(2, return_indices=True), torch.nn.MaxPool2d(2, return_indices=True)
    out, idx = pool(sd.tensor(x))
    tout, tidx = tpool(torch.tensor(x))
    assert np.array_equal(idx.numpy(), tidx.numpy())
    x1 = rng.standard_normal((2, 3, 9))
    _, idx = L.MaxPool1d(3, 2, 1, return_indices=True)(sd.tensor(x1))
    _, tidx = torch.nn.MaxPool1d(3, 2, 1, return_indices=True)(torch.tensor(x1))
    assert np.array_equal(idx.numpy(), tidx.numpy())


def test_embedding_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    idx = np.array([[1, 0, 4], [4, 4, 2]])
    for kwargs in [{}, {"padding_idx": 0}, {"padding_idx": -1, "scale_grad_by_freq": True},
                   {"max_norm": 1.0}, {"max_norm": 0.5, "norm_type": 1.0}]:
        theirs = torch.nn.Embedding(5, 3, **kwargs).double()
        ours = L.Embedding(5, 3, **kwargs).double()
        assert repr(ours) == repr(theirs)
        ours.load_state_dict({"weight": _np(theirs.weight)})
        so, to = ours(sd.tensor(idx)), theirs(torch.tensor(idx))
        np.testing.assert_allclose(_np(so), _np(to), atol=1e-7)
        g = rng.standard_normal(so.shape)
        so.backward(sd.tensor(g))
        to.backward(torch.tensor(g))
        np.testing.assert_allclose(ours.weight.grad.numpy(), theirs.weight.grad.numpy(),
                                   atol=1e-7, err_msg=str(kwargs))
        # max_norm renormalises the looked-up rows of the table in place, as torch does
        np.testing.assert_allclose(_np(ours.weight), _np(theirs.weight), atol=1e-6)


def test_embedding_padding_from_pretrained_and_errors():
    emb = L.Embedding(6, 4, padding_idx=-2)
    assert emb.padding_idx == 4 and emb.weight[4].abs().sum().item() == 0
    table = sd.randn(3, 2)
    frozen = L.Embedding.from_pretrained(table)
    assert not frozen.weight.requires_grad and np.array_equal(frozen.weight.numpy(),
                                                              table.numpy())
    assert frozen.weight._data is not table._data  # a copy, as torch's clone
    assert L.Embedding.from_pretrained(table, freeze=False).weight.requires_grad
    arr = np.ones((3, 2))
    from_np = L.Embedding.from_pretrained(arr)
    arr[0] = 5  # copied, not shared
    assert from_np.weight.shape == (3, 2) and float(from_np.weight.sum()) == 6
    with pytest.raises(ValueError, match="2-D"):
        L.Embedding.from_pretrained(sd.randn(3))
    with pytest.raises(ValueError, match="padding_idx 6"):
        L.Embedding(6, 4, padding_idx=6)
    with pytest.raises(IndexError, match="out of range for 6 embeddings"):
        L.Embedding(6, 4)(sd.tensor([6]))


def _gradcheck_layer(layer, *shapes, seed=0):
    layer.double()
    rng = np.random.default_rng(seed)
    xs = [sd.tensor(rng.standard_normal(s), requires_grad=True) for s in shapes]
    inputs = xs + list(layer.parameters())  # perturbed in place, so the layer sees them
    n = sum(t.numel() for t in inputs)

    def fn(*args):
        return layer(*args[:len(xs)])
    if n <= 80:
        assert sd.autograd.gradcheck(fn, inputs)
    for s in range(3):
        assert sd.autograd.gradcheck_random(fn, inputs, seed=s)


@pytest.mark.parametrize("make, shapes", [
    (lambda: L.Linear(4, 3), [(2, 4)]),
    (lambda: L.Bilinear(3, 2, 2), [(2, 3), (2, 2)]),
    (lambda: L.Conv1d(2, 3, 3, padding=1, padding_mode="reflect"), [(2, 2, 5)]),
    (lambda: L.Conv2d(4, 2, 3, stride=2, padding=1, groups=2), [(1, 4, 5, 5)]),
    (lambda: L.ConvTranspose2d(2, 2, 3, stride=2, output_padding=1), [(1, 2, 3, 3)]),
    (lambda: L.ConvTranspose1d(2, 3, 2, stride=2), [(2, 2, 3)]),
    (lambda: L.BatchNorm1d(3), [(5, 3)]),
    (lambda: L.BatchNorm2d(2).eval(), [(2, 2, 3, 3)]),
    (lambda: L.LayerNorm((2, 3)), [(2, 2, 3)]),
    (lambda: L.GroupNorm(2, 4), [(2, 4, 3)]),
    (lambda: L.LocalResponseNorm(3, alpha=0.5), [(2, 4, 3)]),
    (lambda: L.Embedding(5, 3), []),  # (padding_idx, scale_grad_by_freq: not true grads)
    (lambda: L.Maxout(3, 2, pool_size=3), [(4, 3)]),
    (lambda: L.DropConnect(3, 2).eval(), [(4, 3)]),
], ids=lambda v: "" if callable(v) else None)
def test_gradcheck(make, shapes):
    layer = make()
    if isinstance(layer, L.Embedding):
        idx = sd.tensor([[0, 3, 3], [1, 0, 3]])
        layer.double()
        assert sd.autograd.gradcheck(lambda w: layer(idx), [layer.weight])
        return
    _gradcheck_layer(layer, *shapes)


@pytest.mark.parametrize("name, args, kwargs", [
    ("Linear", (300, 200), {}), ("Bilinear", (20, 30, 40), {}),
    ("Conv1d", (8, 64, 5), {}), ("Conv2d", (16, 32, 3), {"groups": 2}),
    ("ConvTranspose2d", (16, 32, 3), {"groups": 4}), ("Embedding", (100, 50), {}),
    ("BatchNorm2d", (8,), {}), ("LayerNorm", (6,), {}), ("GroupNorm", (2, 8), {}),
])
def test_default_init_matches_torch(name, args, kwargs):
    """Same parameter shapes and the same initial distributions as PyTorch's defaults."""
    torch = pytest.importorskip("torch")
    stats = pytest.importorskip("scipy.stats")
    torch.manual_seed(0)
    sd.manual_seed(0)
    ours = getattr(L, name)(*args, **kwargs)
    theirs = getattr(torch.nn, name)(*args, **kwargs)
    tstate = theirs.state_dict()
    assert list(ours.state_dict()) == list(tstate)
    for key, v in ours.state_dict().items():
        a, b = v.numpy(), tstate[key].numpy()
        assert a.shape == b.shape and a.dtype == b.dtype, key
        if np.all(b == b.flat[0]):  # constants: ones, zeros, counters
            assert np.array_equal(a, b), key
        else:  # same distribution: two-sample Kolmogorov-Smirnov test
            assert stats.ks_2samp(a.ravel(), b.ravel()).pvalue > 1e-3, key


def test_linear_and_conv_init_bounds():
    lin = L.Linear(400, 50)
    bound = 1 / math.sqrt(400)  # kaiming_uniform(a=sqrt(5)) gives U(-1/sqrt(fan_in), ...)
    w = _np(lin.weight)
    assert w.dtype == np.float32 and np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.02 * bound
    assert np.abs(_np(lin.bias)).max() <= bound
    conv = L.Conv2d(6, 9, 5, groups=3)  # fan_in = 6 / 3 * 5 * 5
    assert np.abs(_np(conv.weight)).max() <= 1 / math.sqrt(50)
    assert conv.weight.shape == (9, 2, 5, 5)
    up = L.ConvTranspose2d(6, 8, 3, groups=2)
    assert up.weight.shape == (6, 4, 3, 3)
    assert L.Linear(3, 2, dtype=sd.float64).weight.dtype == sd.float64
    sd.manual_seed(3)
    a = _np(L.Linear(5, 5).weight).copy()
    sd.manual_seed(3)
    assert np.array_equal(a, _np(L.Linear(5, 5).weight))  # seeded: reproducible


def test_errors_name_the_layer_and_shapes():
    with pytest.raises(ValueError, match="input has 1 channels but weight expects 3"):
        L.Conv2d(3, 6, 5)(sd.zeros(1, 1, 28, 28))
    with pytest.raises(ValueError, match="linear: input of shape"):
        L.Linear(4, 2)(sd.zeros(3, 5))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        L.BatchNorm1d(3)(sd.zeros(1, 3))
    L.BatchNorm1d(3).eval()(sd.zeros(1, 3))  # eval mode uses running stats: fine
    with pytest.raises(ValueError, match=r"BatchNorm1d\(3\): expected 2-D .* got shape"):
        L.BatchNorm1d(3)(sd.zeros(2, 3, 4, 4))
    with pytest.raises(ValueError, match=r"BatchNorm2d\(4\).*C=4, got shape \(2, 3, 5, 5\)"):
        L.BatchNorm2d(4)(sd.zeros(2, 3, 5, 5))
    with pytest.raises(ValueError, match="strided"):
        L.Conv2d(2, 2, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="divisible by groups"):
        L.Conv2d(3, 6, 3, groups=2)
    with pytest.raises(ValueError, match="padding_mode"):
        L.Conv2d(3, 6, 3, padding_mode="mirror")
    with pytest.raises(ValueError, match="divisible by num_groups"):
        L.GroupNorm(4, 6)
    with pytest.raises(ValueError, match="between 0 and 1"):
        L.Dropout(1.5)
    with pytest.raises(ValueError, match="exactly one of size and scale_factor"):
        L.Upsample()
    with pytest.raises(ValueError, match="pool_size 2"):
        F.maxout(sd.zeros(2, 5), 2)
    with pytest.raises(NotImplementedError, match="return_indices"):
        L.AdaptiveMaxPool2d(2, return_indices=True)
    with pytest.raises(ValueError, match=r"Bilinear: expected inputs \(\.\.\., 3\)"):
        L.Bilinear(3, 4, 2)(sd.ones(5, 3), sd.ones(5, 5))


def test_torch_network_state_dict_loads_and_agrees():
    """A whole PyTorch CNN's state_dict (conv, batch norm, linear) runs the same in shendu."""
    torch = pytest.importorskip("torch")
    from shendu.nn.containers import Flatten, Sequential

    def build(nn, seq, flatten):
        return seq(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                   nn.MaxPool2d(2), nn.Conv2d(4, 6, 3), nn.GroupNorm(2, 6), nn.GELU(),
                   nn.AdaptiveAvgPool2d(2), flatten(), nn.Linear(24, 10), nn.LayerNorm(10),
                   nn.Dropout(0.3), nn.Linear(10, 3))

    theirs = build(torch.nn, torch.nn.Sequential, torch.nn.Flatten).double()
    x = np.random.default_rng(0).standard_normal((5, 1, 10, 10))
    theirs.train()(torch.tensor(x))  # move the running statistics off their defaults
    ours = build(L, Sequential, Flatten).double()
    ours.load_state_dict({k: _np(v) for k, v in theirs.state_dict().items()})
    np.testing.assert_allclose(_np(ours.eval()(sd.tensor(x))),
                               _np(theirs.eval()(torch.tensor(x))), atol=1e-9)


def test_dropout_statistics_mask_and_modes():
    sd.manual_seed(0)  # statistical bounds: seeded, so they cannot flake
    x = sd.randn(200, 500, dtype=sd.float64, requires_grad=True)
    drop = L.Dropout(0.3)
    y = drop(x)
    kept = _np(y) != 0
    assert abs(1 - kept.mean() - 0.3) < 0.01  # ~30% zeroed
    np.testing.assert_allclose(_np(y)[kept], _np(x)[kept] / 0.7)  # inverted scaling
    y.sum().backward()  # the same mask in backward: d y / d x = mask / (1 - p)
    np.testing.assert_allclose(_np(x.grad), kept / 0.7)
    assert abs(float(drop(sd.ones(100000)).mean()) - 1) < 0.02  # unbiased in expectation
    assert drop.eval()(x) is x and L.Dropout(0.0)(x) is x
    assert float(L.Dropout(1.0)(x).abs().sum()) == 0
    y2 = L.Dropout2d(0.5)(sd.ones(4, 64, 3, 3))
    per_channel = _np(y2).reshape(4, 64, 9)
    assert np.all((per_channel == 0).all(-1) | (per_channel == 2).all(-1))  # whole channels
    assert 0.3 < (per_channel == 0).all(-1).mean() < 0.7
    y1 = _np(L.Dropout1d(0.5)(sd.ones(8, 16, 5)))
    assert np.all((y1 == 0).all(-1) | (y1 == 2).all(-1))
    h = sd.ones(3, 4, requires_grad=True) * 1.0
    out = L.Dropout(0.5, inplace=True)(h)
    assert out is h and set(np.unique(_np(h))) <= {0.0, 2.0}
    assert repr(L.Dropout(0.2)) == "Dropout(p=0.2, inplace=False)"


def test_dropconnect_drops_weights_not_activations():
    torch = pytest.importorskip("torch")
    sd.manual_seed(0)  # statistical bounds: seeded, so they cannot flake
    layer = L.DropConnect(30, 20, p=0.4).double()
    ref = torch.nn.Linear(30, 20).double()
    layer.load_state_dict({k: _np(v) for k, v in ref.state_dict().items()})  # Linear layout
    x = np.random.default_rng(0).standard_normal((8, 30))
    np.testing.assert_allclose(_np(layer.eval()(sd.tensor(x))), _np(ref(torch.tensor(x))),
                               atol=1e-12)  # eval: the plain linear layer
    layer.train()
    xs = sd.tensor(x, requires_grad=True)
    y = layer(xs)
    g = np.random.default_rng(1).standard_normal(y.shape)
    y.backward(sd.tensor(g))
    mask = _np(layer.weight.grad) != 0  # dropped weights get exactly zero gradient
    assert abs(1 - mask.mean() - 0.4) < 0.06
    w_eff = _np(layer.weight) * mask / 0.6  # inverted scaling of the kept weights
    np.testing.assert_allclose(_np(y), x @ w_eff.T + _np(layer.bias), atol=1e-12)
    np.testing.assert_allclose(_np(xs.grad), g @ w_eff, atol=1e-12)
    np.testing.assert_allclose(_np(layer.bias.grad), g.sum(0))  # the bias is never dropped
    # one mask per forward call, shared by the batch: rows of y see the same weights
    y2 = _np(layer(sd.tensor(np.repeat(x[:1], 2, 0))))
    assert np.array_equal(y2[0], y2[1]) and not np.allclose(y2[0], _np(y)[0])
    mean = np.mean([_np(layer(sd.tensor(x[:1]))) for _ in range(2000)], axis=0)
    np.testing.assert_allclose(mean, _np(ref(torch.tensor(x[:1]))), atol=0.1)  # unbiased
    assert repr(L.DropConnect(3, 2)) == \
        "DropConnect(in_features=3, out_features=2, bias=True, p=0.5)"


def test_maxout_is_max_over_linear_pieces():
    m = L.Maxout(4, 3, pool_size=2).double()
    x = np.random.default_rng(0).standard_normal((5, 4))
    z = x @ _np(m.weight).T + _np(m.bias)
    np.testing.assert_allclose(_np(m(sd.tensor(x))), z.reshape(5, 3, 2).max(-1))
    assert m.weight.shape == (6, 4) and np.abs(_np(m.weight)).max() <= 0.5
    # two pieces w and -w give |w x|: maxout learns convex activations such as abs and ReLU
    absunit = L.Maxout(1, 1, 2, bias=False).double()
    absunit.load_state_dict({"weight": np.array([[1.0], [-1.0]])})
    t = sd.tensor([[-2.0], [3.0]], dtype=sd.float64)
    np.testing.assert_allclose(_np(absunit(t)), [[2.0], [3.0]])
    with pytest.raises(ValueError, match="pool_size"):
        L.Maxout(4, 3, 0)


def test_step_and_inplace_activations():
    assert _np(L.Step()(sd.tensor([-1.0, 0.0, 0.5]))).tolist() == [0.0, 0.0, 1.0]
    for layer in [L.ReLU(True), L.LeakyReLU(0.1, True), L.ELU(inplace=True), L.SiLU(True),
                  L.Hardtanh(inplace=True), L.ReLU6(True), L.Mish(True), L.SELU(True)]:
        x = sd.randn(3, 4, dtype=sd.float64, requires_grad=True)
        h = x * 1.0
        out = layer(h)
        assert out is h  # the input itself was overwritten
        ref = type(layer)() if not isinstance(layer, L.LeakyReLU) else L.LeakyReLU(0.1)
        np.testing.assert_allclose(_np(h), _np(ref(x)))
        out.sum().backward()  # gradients still flow through the in-place op
        assert sd.autograd.gradcheck_random(lambda x, f=layer: f(x * 1.0), [x])
    with pytest.raises(RuntimeError, match="leaf"):
        L.ReLU(inplace=True)(sd.randn(2, requires_grad=True))
    assert repr(L.ReLU(inplace=True)) == "ReLU(inplace=True)"


@pytest.mark.parametrize("shape, kw", [
    ((1, 2, 5, 7), dict(scale_factor=1.7, mode="bilinear")),
    ((1, 2, 5, 7), dict(scale_factor=1.7, mode="bilinear", recompute_scale_factor=True)),
    ((1, 2, 5, 7), dict(scale_factor=2.3)),
    ((1, 2, 5), dict(scale_factor=1.5, mode="linear", align_corners=True)),
    ((1, 1, 3, 4, 5), dict(size=(4, 6, 7), mode="trilinear")),
])
def test_upsample_modes_match_torch(shape, kw):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal(shape)
    ours = sd.nn.Upsample(**kw)(sd.tensor(x)).numpy()
    theirs = torch.nn.Upsample(**kw)(torch.tensor(x)).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)
