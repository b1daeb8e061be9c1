"""PixelShuffle/Unshuffle, the padding layers and F.pad's modes, PReLU, InstanceNorm,
Identity, Unflatten and Bilinear: forward against NumPy references written from the
definitions, gradients against finite differences (float64), and both against PyTorch."""
import numpy as np
import pytest
from op_helper import Arg, check_op, torch

import shendu as sd
import shendu.nn as nn
import shendu.nn.functional as F

rng = np.random.default_rng(0)
TF = torch and torch.nn.functional


def r(*shape):
    return rng.standard_normal(shape)


def needs_torch():
    return pytest.importorskip("torch", reason="PyTorch is the oracle for this test")


# ----------------------------------------------------------------------------- pixel shuffle
def np_pixel_shuffle(x, s):
    *lead, c, h, w = x.shape
    out = np.empty((*lead, c // (s * s), h * s, w * s))
    for k in range(c // (s * s)):
        for i in range(s):
            for j in range(s):
                out[..., k, i::s, j::s] = x[..., k * s * s + i * s + j, :, :]
    return out


def np_pixel_unshuffle(x, s):
    *lead, c, h, w = x.shape
    out = np.empty((*lead, c * s * s, h // s, w // s))
    for k in range(c):
        for i in range(s):
            for j in range(s):
                out[..., k * s * s + i * s + j, :, :] = x[..., k, i::s, j::s]
    return out


@pytest.mark.parametrize("shape,s", [((2, 8, 2, 3), 2), ((9, 1, 2), 3), ((2, 1, 4, 1, 1), 2)])
def test_pixel_shuffle(shape, s):
    check_op(lambda x: F.pixel_shuffle(x, s), [r(*shape)], lambda x: np_pixel_shuffle(x, s),
             TF and (lambda x: TF.pixel_shuffle(x, s)))


@pytest.mark.parametrize("shape,s", [((2, 2, 4, 6), 2), ((1, 3, 3), 3)])
def test_pixel_unshuffle(shape, s):
    check_op(lambda x: F.pixel_unshuffle(x, s), [r(*shape)],
             lambda x: np_pixel_unshuffle(x, s), TF and (lambda x: TF.pixel_unshuffle(x, s)))


def test_pixel_shuffle_modules_and_errors():
    x = sd.tensor(r(1, 4, 3, 3))
    assert repr(nn.PixelShuffle(2)) == "PixelShuffle(upscale_factor=2)"
    assert repr(nn.PixelUnshuffle(3)) == "PixelUnshuffle(downscale_factor=3)"
    np.testing.assert_array_equal(nn.PixelUnshuffle(2)(nn.PixelShuffle(2)(x)).numpy(),
                                  x.numpy())
    with pytest.raises(ValueError, match=r"pixel_shuffle: the channel dimension \(3"):
        F.pixel_shuffle(sd.ones(1, 3, 2, 2), 2)
    with pytest.raises(ValueError, match="pixel_unshuffle: height and width"):
        F.pixel_unshuffle(sd.ones(1, 1, 3, 4), 2)
    with pytest.raises(ValueError, match="positive int"):
        F.pixel_shuffle(sd.ones(1, 4, 2, 2), 0)


# ----------------------------------------------------------------------------- padding
def _source_index(i, n, mode):
    """Which input index output position ``i`` (relative to the unpadded start) copies."""
    if mode == "reflect":
        while i < 0 or i >= n:
            i = -i if i < 0 else 2 * (n - 1) - i
        return i
    if mode == "replicate":
        return min(max(i, 0), n - 1)
    return i % n  # circular


def np_pad(x, pad, mode, value=0.0):
    """F.pad from its definition: one output index at a time, last dim first in ``pad``."""
    widths = [(0, 0)] * x.ndim
    for k in range(len(pad) // 2):
        widths[x.ndim - 1 - k] = (pad[2 * k], pad[2 * k + 1])
    out_shape = tuple(n + lo + hi for n, (lo, hi) in zip(x.shape, widths))
    out = np.empty(out_shape)
    for idx in np.ndindex(*out_shape):
        src = []
        for i, n, (lo, _) in zip(idx, x.shape, widths):
            j = i - lo
            if mode == "constant":
                src.append(j if 0 <= j < n else None)
            else:
                src.append(_source_index(j, n, mode))
        out[idx] = value if None in src else x[tuple(src)]
    return out


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("shape,pad", [((2, 2, 5), (2, 1)), ((1, 2, 3, 4), (1, 3, 2, 0)),
                                       ((2, 4), (3, 3))])
def test_f_pad_modes(mode, shape, pad):
    if mode == "reflect" and max(pad) >= min(shape[-1], shape[-2] if len(pad) == 4 else 99):
        pad = tuple(min(p, 2) for p in pad)
    value = 1.5 if mode == "constant" else 0.0
    kw = {"value": value} if mode == "constant" else {}
    check_op(lambda x: F.pad(x, pad, mode, **kw), [r(*shape)],
             lambda x: np_pad(x, pad, mode, value),
             TF and (lambda x: TF.pad(x, pad, mode, **kw)))


def test_f_pad_refuses_what_pytorch_refuses():
    x = sd.ones(1, 2, 3)
    with pytest.raises(ValueError, match=r"reflect padding \(3, 0\) of dimension 2.*less than"):
        F.pad(x, (3, 0), "reflect")
    with pytest.raises(ValueError, match="circular padding .* wraps around once"):
        F.pad(x, (4, 0), "circular")
    assert F.pad(x, (3, 3), "circular").shape == (1, 2, 9)  # exactly one wrap is fine
    with pytest.raises(ValueError, match="replicate padding .* non-empty"):
        F.pad(sd.ones(1, 2, 0), (1, 1), "replicate")


PAD_LAYERS = [
    ("ReflectionPad1d", (2, 1), {}, (2, 3, 5), "reflect"),
    ("ReflectionPad2d", 1, {}, (1, 2, 4, 3), "reflect"),
    ("ReflectionPad2d", (1, 0, 2, 1), {}, (2, 4, 3), "reflect"),
    ("ReplicationPad1d", 3, {}, (1, 2, 2), "replicate"),
    ("ReplicationPad2d", (0, 2, 1, 3), {}, (1, 1, 2, 2), "replicate"),
    ("ZeroPad1d", (1, 2), {}, (2, 3), "constant"),
    ("ZeroPad2d", 2, {}, (1, 1, 2, 3), "constant"),
    ("ConstantPad1d", 2, {"value": -3.5}, (1, 2, 4), "constant"),
    ("ConstantPad2d", (1, 2, 0, 1), {"value": 0.5}, (2, 1, 2, 2), "constant"),
    ("ReflectionPad3d", 1, {}, (1, 1, 2, 3, 2), "reflect"),
    ("ReplicationPad3d", (1, 0, 0, 2, 1, 1), {}, (1, 2, 2, 2), "replicate"),
    ("CircularPad1d", (2, 1), {}, (2, 2, 3), "circular"),
    ("CircularPad2d", (1, 2, 2, 0), {}, (1, 2, 2, 3), "circular"),
    ("CircularPad3d", 1, {}, (1, 1, 2, 2, 2), "circular"),
    ("ZeroPad3d", (1, 0, 0, 1, 1, 0), {}, (1, 2, 2, 2), "constant"),
    ("ConstantPad3d", 1, {"value": 2.0}, (1, 1, 2, 2, 1), "constant"),
]


@pytest.mark.parametrize("name,padding,kw,shape,mode", PAD_LAYERS)
def test_padding_layers(name, padding, kw, shape, mode):
    layer = getattr(nn, name)(padding, **kw)
    nd = int(name[-2])
    pad = (padding,) * (2 * nd) if isinstance(padding, int) else padding
    check_op(layer, [r(*shape)], lambda x: np_pad(x, pad, mode, kw.get("value", 0.0)),
             torch and (lambda x: getattr(torch.nn, name)(padding, **kw)(x)))
    if torch is not None:
        assert repr(layer) == repr(getattr(torch.nn, name)(padding, **kw))


def test_padding_layer_errors():
    with pytest.raises(ValueError, match=r"ReflectionPad2d: padding must be an int or a 4-tuple"):
        nn.ReflectionPad2d((1, 2))
    with pytest.raises(ValueError, match="ZeroPad2d: expected a 4-D batched or 3-D unbatched"):
        nn.ZeroPad2d(1)(sd.ones(3, 3))


# ----------------------------------------------------------------------------- PReLU
@pytest.mark.parametrize("xshape,n", [((4, 3), 3), ((2, 3, 5, 2), 3), ((6,), 1), ((2, 4, 3), 1),
                                      ((), 1)])
def test_prelu(xshape, n):
    x = r(*xshape)
    x[np.abs(x) < 0.05] = 0.3  # keep finite differences off the kink
    w = rng.uniform(0.05, 0.5, n)

    def ref(x, w):
        ws = w.reshape((n,) + (1,) * (x.ndim - 2)) if n > 1 else w.reshape(())
        return np.where(x > 0, x, ws * x)

    check_op(F.prelu, [x, w], ref, TF and TF.prelu)


def test_prelu_module():
    m = nn.PReLU(3, init=0.1)
    assert repr(m) == "PReLU(num_parameters=3)" and list(m.state_dict()) == ["weight"]
    np.testing.assert_allclose(m.weight.detach().numpy(), [0.1] * 3, rtol=1e-6)
    y = m(sd.tensor([[-1.0, 2.0, -3.0]]))
    np.testing.assert_allclose(y.detach().numpy(), [[-0.1, 2.0, -0.3]], rtol=1e-6)
    y.sum().backward()
    np.testing.assert_allclose(m.weight.grad.numpy(), [-1.0, 0.0, -3.0])
    with pytest.raises(ValueError, match="prelu: weight has 3 slopes but input of shape"):
        m(sd.ones(2, 4))
    if torch is not None:
        assert repr(torch.nn.PReLU(3, init=0.1)) == repr(m)
        tm = torch.nn.PReLU(3)
        m.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
        x = r(4, 3, 2)
        np.testing.assert_allclose(m(sd.tensor(x)).detach().numpy(),
                                   tm(torch.tensor(x, dtype=torch.float32)).detach().numpy(),
                                   rtol=1e-6)


# ----------------------------------------------------------------------------- instance norm
def np_instance_norm(x, w=None, b=None, eps=1e-5):
    axes = tuple(range(2, x.ndim))
    y = (x - x.mean(axes, keepdims=True)) / np.sqrt(x.var(axes, keepdims=True) + eps)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    if w is not None:
        y = y * w.reshape(shape)
    if b is not None:
        y = y + b.reshape(shape)
    return y


@pytest.mark.parametrize("shape", [(2, 3, 5), (2, 2, 3, 4)])
def test_f_instance_norm(shape):
    c = shape[1]
    check_op(F.instance_norm, [r(*shape)], np_instance_norm, TF and TF.instance_norm)
    check_op(lambda x, w, b: F.instance_norm(x, weight=w, bias=b), [r(*shape), r(c), r(c)],
             np_instance_norm, TF and (lambda x, w, b: TF.instance_norm(x, weight=w, bias=b)))


def test_f_instance_norm_running_stats():
    x = r(4, 3, 6)
    rm, rv = sd.tensor(r(3)), sd.tensor(np.abs(r(3)) + 0.5)
    rm0, rv0 = rm.numpy().copy(), rv.numpy().copy()
    F.instance_norm(sd.tensor(x), rm, rv, momentum=0.2)
    # running = 0.8 running + 0.2 * (batch mean of each instance's mean / unbiased variance)
    np.testing.assert_allclose(rm.numpy(), 0.8 * rm0 + 0.2 * x.mean(2).mean(0), rtol=1e-12)
    np.testing.assert_allclose(rv.numpy(), 0.8 * rv0 + 0.2 * x.var(2, ddof=1).mean(0),
                               rtol=1e-12)
    y = F.instance_norm(sd.tensor(x), rm, rv, use_input_stats=False)
    np.testing.assert_allclose(
        y.numpy(), (x - rm.numpy()[:, None]) / np.sqrt(rv.numpy()[:, None] + 1e-5), rtol=1e-10)
    if torch is not None:
        trm, trv = torch.tensor(rm0), torch.tensor(rv0)
        TF.instance_norm(torch.tensor(x), trm, trv, momentum=0.2)
        np.testing.assert_allclose(trm.numpy(), 0.8 * rm0 + 0.2 * x.mean(2).mean(0),
                                   rtol=1e-12)
        np.testing.assert_allclose(trv.numpy(), rv0 * 0.8 + 0.2 * x.var(2, ddof=1).mean(0),
                                   rtol=1e-12)
    with pytest.raises(ValueError, match="more than 1 spatial element"):
        F.instance_norm(sd.ones(2, 3, 1))
    with pytest.raises(ValueError, match=r"running_mean must have shape \(3,\)"):
        F.instance_norm(sd.ones(2, 3, 4), sd.zeros(2), sd.ones(2))


def test_instance_norm3d_matches_its_definition():
    x = r(2, 3, 2, 3, 4)
    y = nn.InstanceNorm3d(3, eps=1e-5)(sd.tensor(x)).numpy()
    mean = x.mean(axis=(2, 3, 4), keepdims=True)
    var = x.var(axis=(2, 3, 4), keepdims=True)  # biased, as in training
    np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + 1e-5), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name,shape", [("InstanceNorm1d", (3, 4, 5)),
                                        ("InstanceNorm2d", (2, 4, 3, 3)),
                                        ("InstanceNorm3d", (2, 3, 2, 2, 3))])
@pytest.mark.parametrize("affine,track", [(False, False), (True, False), (True, True),
                                          (False, True)])
def test_instance_norm_modules_match_torch(name, shape, affine, track):
    torch = needs_torch()
    c = shape[1]
    m = getattr(nn, name)(c, affine=affine, track_running_stats=track, momentum=0.3)
    tm = getattr(torch.nn, name)(c, affine=affine, track_running_stats=track, momentum=0.3)
    assert repr(m) == repr(tm)
    assert list(m.state_dict()) == list(tm.state_dict())
    if affine:  # non-trivial parameters, shared
        with torch.no_grad():
            tm.weight.uniform_(0.5, 1.5)
            tm.bias.uniform_(-0.5, 0.5)
    m.load_state_dict({k: v.numpy() for k, v in tm.state_dict().items()})
    m.double()
    tm.double()
    for mode in ("train", "eval", "train"):
        getattr(m, mode)()
        getattr(tm, mode)()
        x = r(*shape) * 2 + 1
        xs = sd.tensor(x, requires_grad=True)
        xt = torch.tensor(x, requires_grad=True)
        y, yt = m(xs), tm(xt)
        np.testing.assert_allclose(y.detach().numpy(), yt.detach().numpy(), rtol=1e-9,
                                   atol=1e-12)
        g = r(*shape)
        y.backward(sd.tensor(g))
        yt.backward(torch.tensor(g))
        np.testing.assert_allclose(xs.grad.numpy(), xt.grad.numpy(), rtol=1e-8, atol=1e-10)
        for k, v in tm.state_dict().items():
            np.testing.assert_allclose(m.state_dict()[k].numpy(), v.numpy(), rtol=1e-12)
    # unbatched input (C, ...) is one instance
    x = r(*shape[1:])
    np.testing.assert_allclose(m(sd.tensor(x)).detach().numpy(),
                               tm(torch.tensor(x)).detach().numpy(), rtol=1e-9, atol=1e-12)


def test_instance_norm_defaults_and_errors():
    m = nn.InstanceNorm2d(3)
    assert m.affine is False and m.track_running_stats is False
    assert m.weight is None and m.running_mean is None and list(m.state_dict()) == []
    with pytest.raises(ValueError, match="InstanceNorm2d: expected 4-D"):
        m(sd.ones(2, 3))
    with pytest.raises(ValueError, match=r"InstanceNorm1d\(3\): expected input with 3"):
        nn.InstanceNorm1d(3, affine=True)(sd.ones(2, 4, 5))
    with pytest.warns(UserWarning, match="does not match num_features"):
        nn.InstanceNorm1d(3)(sd.ones(2, 4, 5))


# ----------------------------------------------------------------------------- existing shape
# helpers and Bilinear, checked against PyTorch here
def test_identity_unflatten_bilinear_against_torch():
    torch = needs_torch()
    x = r(2, 12)
    np.testing.assert_array_equal(nn.Identity(3, foo=1)(sd.tensor(x)).numpy(),
                                  torch.nn.Identity(3, foo=1)(torch.tensor(x)).numpy())
    u, tu = nn.Unflatten(1, (3, -1)), torch.nn.Unflatten(1, (3, -1))
    np.testing.assert_array_equal(u(sd.tensor(x)).numpy(), tu(torch.tensor(x)).numpy())
    assert repr(nn.Unflatten(1, (3, 4))) == repr(torch.nn.Unflatten(1, (3, 4)))
    tb = torch.nn.Bilinear(3, 4, 2).double()
    b = nn.Bilinear(3, 4, 2).double()
    b.load_state_dict({k: v.detach().numpy() for k, v in tb.state_dict().items()})
    assert repr(b) == repr(tb)
    x1, x2 = r(5, 3), r(5, 4)
    np.testing.assert_allclose(b(sd.tensor(x1), sd.tensor(x2)).detach().numpy(),
                               tb(torch.tensor(x1), torch.tensor(x2)).detach().numpy(),
                               rtol=1e-12)


def test_f_bilinear():
    def ref(x1, x2, w, b):
        return np.einsum("ni,kij,nj->nk", x1, w, x2) + b

    check_op(F.bilinear, [r(4, 3), r(4, 2), r(5, 3, 2), r(5)], ref, TF and TF.bilinear)
    check_op(F.bilinear, [r(2, 3, 3), r(2, 3, 2), r(1, 3, 2)],
             lambda x1, x2, w: np.einsum("abi,kij,abj->abk", x1, w, x2),
             TF and TF.bilinear)


def test_pixel_shuffle_factor_as_argument():
    check_op(lambda x, s: F.pixel_shuffle(x, s), [r(1, 4, 1, 1), Arg(2)],
             lambda x, s: np_pixel_shuffle(x, s), TF and TF.pixel_shuffle)
